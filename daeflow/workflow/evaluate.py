"""`daeflow evaluate`: score a trained model on new data, optionally as an MLflow run."""

import numpy as np

from daeflow.data.arrays import load_array, read_header
from daeflow.data.checks import validated_pair
from daeflow.data.image_folders import check_same_names
from daeflow.data.pairs import PairSource
from daeflow.data.profile import noise_profile, noisy_targets
from daeflow.data.ranges import RANGE_PARAM, RANGE_RULE
from daeflow.errors import DataError
from daeflow.infer.evaluation import evaluate
from daeflow.infer.images import check_layout, images_shape
from daeflow.quality.scores import summary
from daeflow.track.names import TAG_COMMAND, TAG_EVALUATION_DIGEST

BATCH = 8


def _reshaped(images, shape):
    """The images as the model reads them: a view, nothing is read (files with axes come
    in that layout already)."""
    if tuple(images.shape) == tuple(shape):
        return images
    return images.with_array(images.array.reshape(shape))


def evaluate_model(
    denoiser,
    clean_path,
    noisy_path,
    data_range,
    log=False,
    experiment="daeflow",
    write=print,
    axes: str | None = None,
):
    """Scores named like a training run's test metrics; with `log`, also an MLflow run.

    The files may have any shape `denoise` takes, or (N, H, W) as training data; TIFF,
    Zarr or folders of images too (`axes`: --axes)."""
    paths = {"clean": clean_path, "noisy": noisy_path}
    shapes, header_names = {}, {}
    for name, path in paths.items():  # before either is read
        header = read_header(path, name, axes=axes)
        check_layout(header, f"{name} array {path}")
        header_names[name] = header.names
        shapes[name] = images_shape(
            header.shape, denoiser.channels, f"{name} array", True, denoiser.spatial_dims
        )
    if shapes["clean"] != shapes["noisy"]:
        raise DataError(
            f"Clean and noisy shapes differ: {shapes['clean']} vs {shapes['noisy']}. "
            "Pass aligned arrays of the same shape."
        )
    check_same_names(header_names["clean"], header_names["noisy"], list(paths))
    clean, noisy = (load_array(path, name, axes=axes) for name, path in paths.items())
    clean, noisy = _reshaped(clean, shapes["clean"]), _reshaped(noisy, shapes["noisy"])
    clean, noisy, chosen = validated_pair(
        clean, noisy, data_range, denoiser.data_range, denoiser.data_dtype
    )
    data_range = chosen.value
    write(chosen.line)
    source = PairSource(clean, noisy, data_range)
    targets = noisy_targets(noise_profile(source))
    if targets:
        write(targets)
    indices = np.arange(len(clean))
    test, noisy_scores = evaluate(
        denoiser.model, source, indices, BATCH, denoiser.size_multiple, True, denoiser.margin
    )
    metrics = {**summary(test, noisy_scores), "n_images": len(clean)}
    outcome = {"metrics": metrics, "data_range": data_range}
    if log:
        from daeflow.track import logs, names, runs, view

        tags = {
            TAG_COMMAND: "evaluate",
            "model_uri": denoiser.uri,
            "arch": denoiser.arch or "unknown",
            **view.headline(metrics, f"evaluate:{denoiser.arch or 'unknown'}"),
        }
        from daeflow.data.digest import sha256_digest

        tags[TAG_EVALUATION_DIGEST] = sha256_digest(clean, noisy)
        with runs.tracked_run(experiment, None, tags) as run:
            logs.log_params(
                {
                    "model_uri": denoiser.uri,
                    "arch": denoiser.arch or "unknown",
                    "data.clean_path": clean_path,
                    "data.noisy_path": noisy_path,
                    RANGE_PARAM: data_range,
                    RANGE_RULE: chosen.rule,
                    "data.shape": str(clean.shape),
                    "data.dtype": str(clean.dtype),
                    "self_ensemble": denoiser.self_ensemble,
                }
            )
            logs.log_metrics(names.tracked(metrics))
        outcome["run_id"] = run.info.run_id
    return outcome
