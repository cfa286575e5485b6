"""Self-supervised benchmark: each training objective on ONE fixed noisy train400, Set12 scored.

Protocol (issue 27): the 400 clean train400 images plus Gaussian noise of sigma 25 (0-255
scale) drawn ONCE from numpy.random.default_rng(--noise-seed), and a second, independent
realisation from default_rng(--noise-seed + 1) for noise2noise: the realistic case, where the
noisy images are all there is, not fresh noise for every batch. The arrays are stored as
float32 on 0-255, NOT clipped nor rounded, and passed with --data-range 255: clipping and
rounding to uint8 would bias the noise (no longer zero-mean near black and white, no longer
of variance sigma^2), which noise2noise's and r2r's derivations assume. Every objective
trains with bench/quality.py's recipe (network, patches, augmentation, schedule, warm-up,
seed, --precision) for the same --budget, one after another:
- supervised: --clean with --noisy, the fixed pairs (the reference);
- noise2noise: --noisy with --noisy2, the two realisations;
- r2r: --noisy with the noise model, --noise gaussian --noise-param sigma=25;
- noise2void-uniform, noise2void-median: --noisy, --objective-param strategy=uniform/median.
The self-supervised ones get no clean array at all; their validation and test splits of
train400 are noisy images, scored by the objective's loss. Every model is then scored on
Set12 here, exactly as bench/quality.py does (noise from default_rng(0) per image, not
clipped; output clipped; PSNR with data range 1 per image, then averaged). NLM (scikit-image,
daeflow's `nlm` baseline) on the same noisy Set12 images is there for orientation, its h
picked on the 20 validation images of train400 (the fixed noisy realisation).

    .venv/bin/python bench/self_supervised.py --budget 570s --markdown bench/out/ss.md
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

import argparse
import dataclasses
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from checkpoints import cpu_model  # noqa: E402
from quality import (  # noqa: E402
    DATA,
    ROOT,
    SIGMA,
    TEST_FRACTION,
    VAL_FRACTION,
    add_recipe_options,
    load_pngs,
    recipe_command,
    set12_scores,
)

EXPERIMENT = "self-supervised-benchmark"
NOISY = ("--data-range", "255")  # float32 on 0-255 that noise takes beyond it
OBJECTIVES = {
    "supervised": ("--objective", "supervised", "--clean", "{clean}", "--noisy", "{noisy}"),
    "noise2noise": ("--objective", "noise2noise", "--noisy", "{noisy}", "--noisy2", "{noisy2}"),
    "r2r": (
        "--objective", "r2r", "--noisy", "{noisy}",
        "--noise", "gaussian", "--noise-param", f"sigma={SIGMA:g}",
    ),
    "noise2void-uniform": (
        "--objective", "noise2void", "--noisy", "{noisy}", "--objective-param", "strategy=uniform",
    ),
    "noise2void-median": (
        "--objective", "noise2void", "--noisy", "{noisy}", "--objective-param", "strategy=median",
    ),
}  # fmt: skip


def objective_list(text: str) -> list[str]:
    """--objectives: comma-separated names of OBJECTIVES, in the order given."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in OBJECTIVES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown objective(s) {', '.join(unknown) or '(none)'}; choose from "
            f"{', '.join(OBJECTIVES)}"
        )
    return names


def write_arrays(out: Path, images: int | None, noise_seed: int) -> dict[str, Path]:
    """train400 (its first `images`) as clean.npy and two fixed noisy realisations, float32
    on 0-255, not clipped."""
    clean = np.stack(load_pngs(DATA / "train400")[:images]).astype(np.float32)
    files = {"clean": out / "clean.npy"}
    np.save(files["clean"], clean)
    for offset, role in enumerate(("noisy", "noisy2")):
        noise = np.random.default_rng(noise_seed + offset).normal(0, SIGMA, clean.shape)
        files[role] = out / f"{role}.npy"
        np.save(files[role], (clean + noise).astype(np.float32))
    return files


def newest_run(name: str):
    """The newest FINISHED run of objective `name` in the store, or None."""
    import mlflow

    runs = mlflow.search_runs(
        experiment_names=[EXPERIMENT],
        filter_string=f"tags.mlflow.runName = '{name}' and attributes.status = 'FINISHED'",
        order_by=["start_time DESC"],
        max_results=1,
        output_format="list",
    )
    return runs[0] if runs else None


def trained_with(params: dict) -> dict:
    """What a model's metadata says of its objective and noise model, from its run's params."""
    own = {k.split(".", 1)[1]: float(v) for k, v in params.items() if k.startswith("objective.")}
    noise = {k.split(".", 1)[1]: float(v) for k, v in params.items() if k.startswith("noise.")}
    return {
        "objective": params.get("objective"),
        "objective_params": own,
        "noise": params.get("data.noise"),
        "noise_params": noise,
    }


def score_run(run, limit: int | None, recorrupted: int = 0) -> dict:
    """Set12 mean PSNR/SSIM of the run's logged model (averaged over `recorrupted` re-noised
    inputs, as `daeflow denoise --recorrupted-average` does), with what the table shows of
    the run."""
    from daeflow.infer.loading import load_denoiser
    from daeflow.infer.recorrupted import averaged
    from daeflow.track.names import TAG_COMMAND_LINE, TAG_EPOCHS_DONE, TAG_STOP_REASON
    from daeflow.track.names import value as metric

    denoiser = load_denoiser(f"runs:/{run.info.run_id}/model")
    if recorrupted and denoiser.trained_with is None:  # logged before models recorded it
        denoiser = dataclasses.replace(denoiser, trained_with=trained_with(run.data.params))
    model = averaged(denoiser, recorrupted).model if recorrupted else denoiser.model
    rows, _ = set12_scores(model, limit)
    return {
        "psnr": float(np.mean([r[2] for r in rows])),
        "ssim": float(np.mean([r[3] for r in rows])),
        "noisy_psnr": float(np.mean([r[1] for r in rows])),
        "epochs": run.data.tags.get(TAG_EPOCHS_DONE, "?"),
        "seconds": metric(run.data.metrics, "train_seconds"),
        "stop": run.data.tags.get(TAG_STOP_REASON, "?"),
        "precision": run.data.params.get("precision.policy", "float32"),
        "budget": run.data.params.get("time_budget", "?"),
        "command": run.data.tags.get(TAG_COMMAND_LINE),
        "run": run.info.run_id,
    }


def nlm_scores(files: dict[str, Path], seed: int, limit: int | None, write=print) -> dict:
    """daeflow's NLM baseline on Set12, its h picked on the validation images that
    `daeflow run` holds out of train400 (same seed and fractions), fixed noisy realisation."""
    from daeflow.data.splits import split_indices
    from daeflow.quality.baselines import METHODS, apply
    from daeflow.quality.metrics import psnr

    nlm = METHODS["nlm"]
    clean, noisy = (np.load(files[role]) / 255 for role in ("clean", "noisy"))
    val = split_indices(len(clean), VAL_FRACTION, TEST_FRACTION, seed).val
    clean, noisy = clean[val][..., None], noisy[val][..., None]
    best, best_psnr = None, -np.inf
    for h in nlm.grid["h"]:
        denoised = np.clip(apply(nlm, noisy, {"h": h}), 0, 1)
        value = float(np.mean(psnr(clean, denoised, 1.0)))
        write(f"  NLM h={h}: {value:.2f} dB on {len(val)} noisy train400 validation images")
        if value > best_psnr:
            best, best_psnr = h, value
    rows, _ = set12_scores(lambda x, training=False: apply(nlm, x, {"h": best}), limit)
    return {
        "psnr": float(np.mean([r[2] for r in rows])),
        "ssim": float(np.mean([r[3] for r in rows])),
        "noisy_psnr": float(np.mean([r[1] for r in rows])),
        "epochs": "-",
        "seconds": None,
        "stop": f"h={best}",
        "precision": "float64",
        "run": "-",
    }


def table(results: dict, markdown: bool) -> list[str]:
    """One line per objective (and NLM): PSNR, SSIM, epochs, difference to supervised."""
    reference = results.get("supervised") or {}
    header = ("objective", "Set12 PSNR dB", "SSIM", "epochs", "vs supervised dB", "train s", "")
    lines = []
    for name, found in results.items():
        if "error" in found:
            lines.append((name, "-", "-", "-", "-", "-", found["error"]))
            continue
        delta = found["psnr"] - reference["psnr"] if "psnr" in reference else None
        lines.append(
            (
                name,
                f"{found['psnr']:.2f}",
                f"{found['ssim']:.4f}",
                str(found["epochs"]),
                "-" if delta is None or name == "supervised" else f"{delta:+.2f}",
                "-" if found["seconds"] is None else f"{found['seconds']:.0f}",
                f"{found['stop']}; run {found['run'][:8]}"
                if found["run"] != "-"
                else found["stop"],
            )
        )
    if markdown:
        rows = [header[:-1] + ("notes",), ("---",) * len(header), *lines]
        return ["| " + " | ".join(row) + " |" for row in rows]
    widths = [max(len(row[i]) for row in (header, *lines)) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(w) if i in (0, 6) else cell.rjust(w) for i, (cell, w) in
                  enumerate(zip(row, widths, strict=True))).rstrip()
        for row in (header, *lines)
    ]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_recipe_options(parser)
    parser.add_argument(
        "--objectives",
        type=objective_list,
        default=list(OBJECTIVES),
        help=f"comma-separated, trained in this order (default: all: {','.join(OBJECTIVES)})",
    )
    parser.add_argument(
        "--noise-seed",
        type=int,
        default=1,
        help="numpy default_rng seed of the fixed noisy train400 (the second: this + 1)",
    )
    parser.add_argument(
        "--train-images", type=int, help="train on the first N train400 images (smoke tests)"
    )
    parser.add_argument(
        "--test-images", type=int, help="score the first N Set12 images only (smoke tests)"
    )
    parser.add_argument(
        "--r2r-average",
        type=int,
        default=8,
        metavar="K",
        help="also score r2r averaged over K re-noised inputs (R2R's test-time estimate; 0: no)",
    )
    parser.add_argument(
        "--objective-param",
        action="append",
        default=[],
        help="daeflow --objective-param K=V for every objective trained (repeat)",
    )
    parser.add_argument("--nlm", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--score-only",
        action="store_true",
        help="train nothing; score the newest finished run of each objective in --out's store",
    )
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown here")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "self_supervised")
    args = parser.parse_args()

    if not (DATA / "train400").is_dir() or not (DATA / "Set12").is_dir():
        print(
            f"error: {DATA} has no train400/ and Set12/: this benchmark needs the shared data "
            "folder ../shared/data beside the repository.",
            file=sys.stderr,
        )
        return 1
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    store = f"sqlite:///{args.out / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = store

    files = write_arrays(args.out, args.train_images, args.noise_seed)
    commands, results = {}, {}
    for name in args.objectives:
        data = [part.format(**files) for part in OBJECTIVES[name]] + list(NOISY)
        command = recipe_command(args, data, EXPERIMENT, store) + ["--run-name", name]
        for pair in args.objective_param:
            command += ["--objective-param", pair]
        commands[name] = shlex.join(command)
        if not args.score_only:
            print(f"\n== {name}\n$", shlex.join(command), flush=True)
            done = subprocess.run(command, cwd=args.out, check=False)
            if done.returncode:
                results[name] = {"error": f"daeflow run failed (exit {done.returncode})"}
                continue
        run = newest_run(name)
        if run is None:
            results[name] = {"error": f"no finished run named {name!r} in {store}"}
            continue
        results[name] = score_run(run, args.test_images)
        commands[name] = results[name]["command"] or shlex.join(command)  # what really ran
        print(f"{name}: Set12 {results[name]['psnr']:.2f} dB", flush=True)
        if name == "r2r" and args.r2r_average:
            averaged_name = f"r2r, {args.r2r_average} re-noised inputs averaged"
            results[averaged_name] = score_run(run, args.test_images, args.r2r_average)
            print(f"{averaged_name}: Set12 {results[averaged_name]['psnr']:.2f} dB", flush=True)
    if args.nlm:
        print("\nNLM (orientation):", flush=True)
        results["NLM"] = nlm_scores(files, args.seed, args.test_images)

    runs = [r for n, r in results.items() if n != "NLM" and "run" in r]
    precisions = sorted({r["precision"] for r in runs})
    budgets = sorted({f"{float(r['budget']):g} s" for r in runs if r["budget"] != "?"})
    images = f"first {args.test_images} of Set12" if args.test_images else "Set12"
    trained = f"first {args.train_images} of train400" if args.train_images else "train400"
    about = [
        f"CPU: {cpu_model()}, {os.cpu_count()} logical CPUs",
        f"{images}, Gaussian sigma {SIGMA:g}, one pass; trained on {trained}, one fixed noisy "
        f"realisation (default_rng({args.noise_seed}); noise2noise's second: "
        f"default_rng({args.noise_seed + 1})); budget {', '.join(budgets) or args.budget} each; "
        f"--precision {args.precision} (trained in {', '.join(precisions) or '-'}); noisy input "
        f"{next((r['noisy_psnr'] for r in results.values() if 'noisy_psnr' in r), 0):.2f} dB",
    ]
    lines = [shlex.join([sys.executable, *sys.argv]), *commands.values()]
    print("\n".join(["", *table(results, markdown=False), "", *about, "commands:"]))
    print("\n".join(f"  $ {line}" for line in lines))
    if args.markdown:
        text = [*table(results, markdown=True), "", *about, "", "```sh", *lines, "```"]
        args.markdown.write_text("\n".join(text) + "\n")
        print(f"Markdown table: {args.markdown}")
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
