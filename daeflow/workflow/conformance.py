"""Conformance kit for architecture authors (public as `daeflow.testing`).

For each set of hyperparameters, it builds the architecture for several input shapes
and channel counts and checks that the output keeps the input shape, that outputs
suit the declared range, that no Lambda layer is used and that a `.keras` save/load round
trip (safe mode) gives identical outputs; for the first shape, that a few training steps
lower the loss and that the model built under each mixed-precision policy outputs float32
and reloads from its float32 save; then that every set's model, saved as daeflow logs it,
reloads through `mlflow.pyfunc.load_model` in one fresh Python process and predicts the same.
"""

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from daeflow.errors import ArchitectureError
from daeflow.runtime.backend import walk_layers

CHANNELS = (1, 3)
RELOAD = """
import json, sys
import numpy as np
from mlflow.pyfunc import load_model
for folder, inputs in zip(sys.argv[1::2], sys.argv[2::2]):
    model = load_model(folder)
    prediction = model.predict(np.load(inputs), params={"data_range": 1.0})
    print(json.dumps(np.asarray(prediction).tolist()), flush=True)
"""


class ConformanceError(AssertionError):
    """An architecture that does not meet the plugin contract."""


@dataclass
class Report:
    """The checks that ran, each with its outcome."""

    arch: str
    plugin: str
    passed: list[str] = field(default_factory=list)


def _shapes(arch) -> list[tuple[int, int, int]]:
    m = arch.size_multiple
    sizes = [(4 * m, 4 * m), (4 * m, 6 * m)] if m > 1 else [(16, 16), (20, 28)]
    channels = arch.channels or CHANNELS
    return [(*sizes[i % 2], c) for i, c in enumerate(channels)]


def _batch(shape, seed=0):
    rng = np.random.default_rng(seed)
    height, width, channels = shape
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    clean = 0.5 + 0.3 * np.sin(2 * np.pi * (xx + yy))[None, ..., None] * rng.uniform(
        0.5, 1, (4, 1, 1, 1)
    )
    clean = np.repeat(clean, channels, axis=-1).astype(np.float32)
    noisy = clean + rng.normal(0, 0.1, clean.shape).astype(np.float32)
    return noisy, clean


def _check_range(arch, output, where):
    if not np.all(np.isfinite(output)):
        raise ConformanceError(f"{where}: the output holds NaN or Inf.")
    if arch.output_range == "unit" and (output.min() < -1e-6 or output.max() > 1 + 1e-6):
        raise ConformanceError(
            f"{where}: output_range='unit' is declared, but outputs span "
            f"[{output.min():.3g}, {output.max():.3g}]. Use a sigmoid output or declare 'any'."
        )


def _check_training_lowers_loss(model, noisy, clean, where):
    import keras

    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    losses = [float(model.train_on_batch(noisy, clean)) for _ in range(8)]
    if not losses[-1] < losses[0]:
        raise ConformanceError(
            f"{where}: 8 training steps did not lower the loss ({losses[0]:.4g} -> "
            f"{losses[-1]:.4g}). Check that the output depends on trainable weights."
        )


def _check_round_trip(model, noisy, where):
    from daeflow.errors import ModelLoadError

    expected = np.asarray(model(noisy, training=False))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        try:
            from daeflow.runtime.backend import load_keras_file

            loaded = load_keras_file(path)
        except ModelLoadError as exc:
            raise ConformanceError(
                f"{where}: the saved model does not load back with safe_mode=True ({exc}). "
                "Register custom layers with keras.saving.register_keras_serializable and "
                "implement get_config()."
            ) from None
    actual = np.asarray(loaded(noisy, training=False))
    if not np.allclose(actual, expected, atol=1e-6):
        raise ConformanceError(f"{where}: outputs differ after a .keras save/load round trip.")


def _check_no_lambda(model, where):
    for layer in walk_layers(model):
        if type(layer).__name__ == "Lambda":
            raise ConformanceError(
                f"{where}: layer {layer.name!r} is a Lambda layer, which safe-mode loading "
                "refuses. Write a registered custom layer instead."
            )


def _check_pyfunc_reloads(jobs: list, provided, new_process: bool = True) -> None:
    """Save each (model, noisy, where) as daeflow logs models, reload them all with
    mlflow.pyfunc (in one new process), compare the predictions (clipped to the data range
    by the pyfunc, as by `daeflow denoise`)."""
    from daeflow.track.flavor import load_pyfunc, save_local

    metadata = {"arch": provided.spec.name, "size_multiple": provided.spec.size_multiple}
    expected = [np.clip(model(noisy, training=False), 0, 1) for model, noisy, _ in jobs]
    with tempfile.TemporaryDirectory() as tmp:
        arguments = []
        for number, (model, noisy, _) in enumerate(jobs):
            folder, inputs = Path(tmp) / f"model{number}", Path(tmp) / f"x{number}.npy"
            save_local(model, folder, metadata, provided.plugin.distribution)
            np.save(inputs, noisy)
            arguments += [str(folder), str(inputs)]
        if not new_process:
            for job, folder, wanted in zip(jobs, arguments[::2], expected, strict=True):
                pyfunc = load_pyfunc(folder)
                reloaded = np.asarray(pyfunc.predict(job[1], params={"data_range": 1.0}))
                _compare_reloaded(reloaded, wanted, job[2])
            return
        done = subprocess.run(
            [sys.executable, "-c", RELOAD, *arguments],
            capture_output=True,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
    printed = [line for line in done.stdout.splitlines() if line.startswith("[")]
    for number, (_, _, where) in enumerate(jobs):
        if number >= len(printed):
            last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise ConformanceError(
                f"{where}: the logged model does not reload with mlflow.pyfunc.load_model in a "
                f"new process: {last}"
            )
        actual = np.array(json.loads(printed[number]), dtype=np.float32)
        _compare_reloaded(actual, expected[number], where)


def _compare_reloaded(actual, expected, where):
    if actual.shape != expected.shape or not np.allclose(actual, expected, atol=1e-5):
        raise ConformanceError(f"{where}: the reloaded pyfunc model predicts something else.")


MIXED_POLICIES = ("mixed_bfloat16", "mixed_float16")
MIXED_TOLERANCE = {"mixed_bfloat16": 0.05, "mixed_float16": 0.01}  # on outputs near [0, 1]


def _check_policy(provided, values, shape, policy, where):
    """Built in a mixed policy, the model gives finite float32 outputs; saved as daeflow logs
    models (float32), it reloads, predicts within the policy's rounding, and runs again in it."""
    from daeflow.plugin.building import build_checked
    from daeflow.runtime import precision
    from daeflow.track.flavor import load_model_folder, save_local

    where = f"{where}, {policy}"
    try:
        model = build_checked(provided, values, shape[-1], shape[:2], policy)
    except ArchitectureError as exc:
        raise ConformanceError(f"{where}: {exc}") from None
    noisy, _ = _batch(shape)
    output = np.asarray(model(noisy, training=False))
    if output.dtype != np.float32:
        raise ConformanceError(f"{where}: the output is {output.dtype}, not float32.")
    _check_range(provided.spec, output, where)
    with tempfile.TemporaryDirectory() as tmp:
        metadata = {"arch": provided.spec.name, "size_multiple": provided.spec.size_multiple}
        save_local(model, Path(tmp) / "model", metadata, provided.plugin.distribution)
        loaded, folder = load_model_folder(Path(tmp) / "model")
    if (
        folder.metadata.get("trained_precision") != policy
        or precision.training_policy(loaded) != "float32"
    ):
        raise ConformanceError(f"{where}: the saved model does not compute in float32.")
    gap = float(np.max(np.abs(np.asarray(loaded(noisy, training=False)) - output)))
    again = np.asarray(precision.in_policy(loaded, policy)(noisy, training=False))
    if gap > MIXED_TOLERANCE[policy] or not np.all(np.isfinite(again)):
        raise ConformanceError(
            f"{where}: the model saved in float32 predicts {gap:.3g} away from the {policy} "
            f"model (tolerance {MIXED_TOLERANCE[policy]})."
        )


def check_architecture(
    name_or_provided,
    params: dict | None = None,
    param_sets: list[dict] | None = None,
    policies: tuple[str, ...] = MIXED_POLICIES,
    new_process: bool = True,
) -> Report:
    """Run every check for each hyperparameter set; the first failure raises ConformanceError.

    `params` is one set (default: the declared defaults); `param_sets` several. The model is
    also built and reloaded under each mixed-precision policy in `policies`. With
    `new_process=False` the logged model is reloaded through mlflow.pyfunc in this process.
    """
    from daeflow.plugin.building import build_checked
    from daeflow.plugin.hyperparams import resolve
    from daeflow.plugin.registry import get_architecture

    provided = (
        get_architecture(name_or_provided)
        if isinstance(name_or_provided, str)
        else name_or_provided
    )
    arch = provided.spec
    report = Report(arch.name, f"{provided.plugin.name} ({provided.plugin.distribution})")
    sets = param_sets or [params or {}]
    resolved = [resolve(arch.hyperparams, given, f"Architecture {arch.name!r}") for given in sets]
    reloads, how = [], "in a new process" if new_process else "in this process"
    for given, values in zip(sets, resolved, strict=True):
        label = " ".join(f"{k}={v}" for k, v in given.items()) or "defaults"
        for number, shape in enumerate(_shapes(arch)):
            where = f"Architecture {arch.name!r} from plugin {report.plugin}, {label}, {shape}"
            try:
                model = build_checked(provided, values, shape[-1], shape[:2])
            except ArchitectureError as exc:
                raise ConformanceError(str(exc)) from None
            report.passed.append(f"{label}: builds and keeps shape {shape}")
            noisy, clean = _batch(shape)
            _check_range(arch, np.asarray(model(noisy, training=False)), where)
            report.passed.append(f"{label}: output range '{arch.output_range}' {shape}")
            _check_no_lambda(model, where)
            report.passed.append(f"{label}: no Lambda layer {shape}")
            _check_round_trip(model, noisy, where)
            report.passed.append(f"{label}: .keras save/load round trip {shape}")
            if number != 0:
                continue
            # Once per set (tracing a training step costs seconds): the first shape.
            _check_training_lowers_loss(model, noisy, clean, where)
            report.passed.append(f"{label}: training lowers the loss {shape}")
            for policy in policies:
                _check_policy(provided, values, shape, policy, where)
                report.passed.append(f"{label}: {policy}: float32 output, saved in float32")
            reloads.append((model, noisy, where, f"{label}: MLflow pyfunc reload {how} {shape}"))
    # Last, the slowest check: every set's model in one new Python process (seconds).
    _check_pyfunc_reloads([job[:3] for job in reloads], provided, new_process)
    report.passed += [job[3] for job in reloads]
    return report
