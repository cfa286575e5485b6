"""Tune benchmark: a short `daeflow tune` study on train400 against the default recipe.

Protocol: the quality benchmark's data (train400 with fresh Gaussian noise, sigma 25) and
scoring (Set12 at full size, bench/quality.py). A study of --trials trials, each with a
--trial-budget time budget, once with 1 worker and once with 2; the best trial's model is
scored on Set12. The default recipe (bench/quality.py's) trains once for the same total
training time and is scored the same way. Each trial is a `daeflow run` child: its
validation split is the study's, Set12 is used once per scored model, at the end.

    .venv/bin/python bench/tune.py --trials 6 --trial-budget 45s
"""

import argparse
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import DATA, ROOT, SIGMA, load_pngs, print_table, set12_scores  # noqa: E402

DAEFLOW = str(ROOT / ".venv" / "bin" / "daeflow")
SPACE = [
    "learning_rate=loguniform:5e-4:5e-3",
    "arch.width=int:16:48:16",
    "arch.depth=int:4:8:2",
    "batch_size=choice:16,32",
]


def recipe(clean_path: Path, budget: str) -> list[str]:
    """The quality benchmark's data and training options, for tune and run alike."""
    return [
        "--clean", str(clean_path), "--noise", "gaussian", "--noise-param", f"sigma={SIGMA}",
        "--patch-size", "40", "--patches-per-image", "8", "--augment", "--lr-schedule", "cosine",
        "--time-budget", budget, "--epochs", "1000", "--val-fraction", "0.05",
        "--test-fraction", "0.05", "--seed", "0", "--no-jit-compile",
    ]  # fmt: skip


def timed(command: list[str], cwd: Path) -> float:
    print("$", shlex.join(command), flush=True)
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=cwd, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def score(run_id: str) -> float:
    from daeflow.infer.loading import load_denoiser

    rows, _ = set12_scores(load_denoiser(f"runs:/{run_id}/model").model)
    return print_table(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--trial-budget", default="45s")
    parser.add_argument("--workers", default="1,2", help="worker counts to time")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "tune")
    args = parser.parse_args()

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    store = f"sqlite:///{out / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = store
    import mlflow

    from daeflow.config import parse_duration

    clean_path = out / "train400.npy"
    np.save(clean_path, np.stack(load_pngs(DATA / "train400")))
    common = recipe(clean_path, args.trial_budget)
    results = []
    for workers in [int(w) for w in args.workers.split(",")]:
        study = f"bench-{workers}w-{int(time.time())}"
        command = [DAEFLOW, "tune", "--arch", "residual_fast", *common, "--study", study]
        command += ["--trials", str(args.trials), "--workers", str(workers)]
        command += ["--tracking-uri", store, "--experiment", "tune-benchmark"]
        for dimension in SPACE:
            command += ["--space", dimension]
        seconds = timed(command, out)
        (parent,) = mlflow.search_runs(
            experiment_names=["tune-benchmark"],
            filter_string=f"tags.`optuna.study` = '{study}' and tags.`daeflow.command` = 'tune'",
            output_format="list",
        )
        tags, metrics = parent.data.tags, parent.data.metrics
        print(f"\n{workers} worker(s): best trial {tags['best_trial']} ({tags['best_run_id']})")
        best = score(tags["best_run_id"])
        results.append((workers, seconds, metrics, best, tags))
    total = parse_duration(args.trial_budget) * args.trials
    command = [DAEFLOW, "run", "--arch", "residual_fast", *recipe(clean_path, f"{total:.0f}s")]
    command += ["--learning-rate", "2e-3", "--batch-size", "16", "--tracking-uri", store]
    command += ["--experiment", "tune-benchmark", "--run-name", "default recipe"]
    recipe_seconds = timed(command, out)
    (default,) = mlflow.search_runs(
        experiment_names=["tune-benchmark"],
        filter_string="attributes.run_name = 'default recipe'",
        order_by=["start_time DESC"],
        max_results=1,
        output_format="list",
    )
    print(f"\ndefault recipe, {total:.0f} s of training in one run:")
    default_psnr = score(default.info.run_id)

    print(f"\nSet12 sigma {SIGMA:g}, {args.trials} trials of {args.trial_budget} each:")
    for workers, seconds, metrics, best, tags in results:
        shown = " ".join(f"{k[5:]}={v}" for k, v in tags.items() if k.startswith("best."))
        print(
            f"  {workers} worker(s): wall {seconds:.0f} s, {int(metrics.get('tune/complete', 0))} "
            f"complete, {int(metrics.get('tune/pruned', 0))} pruned; best trial Set12 "
            f"{best:.2f} dB ({shown})"
        )
    print(f"  default recipe, {total:.0f} s budget: wall {recipe_seconds:.0f} s, "
          f"Set12 {default_psnr:.2f} dB")  # fmt: skip
    print("command:  $", shlex.join([sys.executable, *sys.argv]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
