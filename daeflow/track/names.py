"""The names of daeflow's metrics and tags in MLflow, and how to read runs logged before them.

MLflow's charts view sections metrics by the prefix before the last "/", sections in
alphabetical order, unprefixed metrics last. So the per-epoch curves live in `epoch/`,
which sorts before every other section daeflow writes (`model/`, `schedule/`, `sweep/`,
`test/`, `train/`): a run's first screen shows validation PSNR, SSIM and the losses.

daeflow's code keeps short internal keys (`test_psnr`, ...); they are also the names runs
had before, so `value(metrics, "test_psnr")` reads old and new runs alike.
"""

EPOCH_CURVES = {
    "loss": "epoch/loss",
    "val_loss": "epoch/val_loss",
    "val_psnr": "epoch/val_psnr",
    "val_ssim": "epoch/val_ssim",
    "learning_rate": "schedule/learning_rate",
}

FINAL = {
    "test_psnr": "test/psnr",
    "test_ssim": "test/ssim",
    "test_mse": "test/mse",
    "noisy_psnr": "test/noisy_psnr",
    "noisy_ssim": "test/noisy_ssim",
    "noisy_mse": "test/noisy_mse",
    "psnr_gain": "test/psnr_gain",
    "ssim_gain": "test/ssim_gain",
    "n_images": "test/n_images",
    **{f"test_{m}_p{q:02d}": f"test/{m}_p{q:02d}" for m in ("psnr", "ssim") for q in (5, 50, 95)},
    "best_epoch": "train/best_epoch",
    "best_val_psnr": "train/best_val_psnr",
    "best_val_loss": "train/best_val_loss",
    "test_objective_loss": "test/objective_loss",
    "train_seconds": "train/seconds",
    "train_images_per_second": "train/images_per_second",
    "peak_memory_mb": "train/peak_memory_mb",
    "trainable_params": "model/trainable_params",
    "inference_ms": "model/inference_ms",
    "inference_size": "model/inference_size",
}
NAMES = {**EPOCH_CURVES, **FINAL}


def epoch_metric(key: str) -> str:
    """The MLflow name of a per-epoch value from Keras's logs."""
    return EPOCH_CURVES.get(key, f"epoch/{key}")


def tracked(metrics: dict) -> dict:
    """Internal keys to MLflow names (keys without a name of their own are kept)."""
    return {NAMES.get(key, key): value for key, value in metrics.items()}


def value(run_metrics: dict, key: str):
    """A run's metric by internal key: its MLflow name, else the name of older runs."""
    name = NAMES.get(key, key)
    return run_metrics.get(name, run_metrics.get(key))


def internal(name: str) -> str:
    """The internal key of an MLflow metric name (`test/psnr` -> `test_psnr`)."""
    return {v: k for k, v in NAMES.items()}.get(name, name)


# Tags, declared once; every module reads and writes them by these names.
TAG_COMMAND = "daeflow.command"  # which command made the run: run, sweep, tune, baseline, ...
TAG_COMMAND_LINE = "daeflow.command_line"  # the command as typed
TAG_HOST = "daeflow.host"  # where the run's process trains
TAG_PID = "daeflow.pid"  # ... and its process id
TAG_HEARTBEAT = "daeflow.heartbeat"  # time.time() of the last finished epoch
TAG_EPOCHS = "daeflow.epochs"  # the epochs the run was asked for
TAG_EPOCHS_DONE = "daeflow.epochs_done"
TAG_RESUMED = "daeflow.resumed"  # how many times the run was resumed
TAG_RESUME_CHANGES = "daeflow.resume_changes"  # training options a resume changed
TAG_MODEL_CHECK = "daeflow.model_check"  # on a model version: "passed" the model check
TAG_RANKED_BY = "daeflow.ranked_by"  # on a sweep or study: the metric its runs are ranked by
TAG_STOP_REASON = "stop_reason"  # epochs, early_stopping, time_budget, interrupted, ...
TAG_DESCRIPTION = "mlflow.note.content"  # a run's description: the top of its page in the UI
# MLflow 3.17's UI keeps a saved view of an experiment's runs table (columns, sort) in an
# experiment tag named after its key, and opens it from a link with ?viewStateShareKey=KEY.
VIEW_KEY = "daeflow"
TAG_VIEW = f"mlflow.sharedViewState.{VIEW_KEY}"


def tag_digest(role: str) -> str:
    """The tag holding the SHA-256 of a data role: train, val, test, evaluation."""
    return f"data.{role}.sha256"


TAG_TRAIN_DIGEST = tag_digest("train")
TAG_EVALUATION_DIGEST = tag_digest("evaluation")
