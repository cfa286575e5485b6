"""Conformance kit for architecture authors: call `check_architecture` from your tests.

    from daeflow.testing import check_architecture

    def test_my_arch_conforms():
        check_architecture("my_arch")

It builds the architecture for several input shapes and channel counts and checks
that the output keeps the input shape, that outputs suit the declared range, that a
few training steps lower the loss, that a `.keras` save/load round trip (safe mode)
gives identical outputs, and that no Lambda layer is used.
"""

import os
import tempfile
from dataclasses import dataclass, field

import numpy as np

from daeflow.errors import ArchitectureError

CHANNELS = (1, 3)


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
    import keras

    expected = np.asarray(model(noisy, training=False))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        try:
            loaded = keras.saving.load_model(path, safe_mode=True)
        except Exception as exc:
            raise ConformanceError(
                f"{where}: the saved model does not load back with safe_mode=True "
                f"({type(exc).__name__}: {str(exc).splitlines()[0]}). Register custom layers "
                "with keras.saving.register_keras_serializable and implement get_config()."
            ) from None
    actual = np.asarray(loaded(noisy, training=False))
    if not np.allclose(actual, expected, atol=1e-6):
        raise ConformanceError(f"{where}: outputs differ after a .keras save/load round trip.")


def _check_no_lambda(model, where):
    pending = list(model.layers)
    while pending:
        layer = pending.pop()
        if type(layer).__name__ == "Lambda":
            raise ConformanceError(
                f"{where}: layer {layer.name!r} is a Lambda layer, which safe-mode loading "
                "refuses. Write a registered custom layer instead."
            )
        pending.extend(getattr(layer, "layers", []))


def check_architecture(name_or_provided, params: dict | None = None) -> Report:
    """Run every conformance check; the first failure raises ConformanceError naming the plugin."""
    from daeflow.building import build_checked
    from daeflow.hyperparams import resolve
    from daeflow.registry import get_architecture

    provided = (
        get_architecture(name_or_provided)
        if isinstance(name_or_provided, str)
        else name_or_provided
    )
    arch = provided.spec
    report = Report(arch.name, f"{provided.plugin.name} ({provided.plugin.distribution})")
    values = resolve(arch.hyperparams, params or {}, f"Architecture {arch.name!r}")
    for shape in _shapes(arch):
        where = f"Architecture {arch.name!r} from plugin {report.plugin}, input {shape}"
        try:
            model = build_checked(provided, values, shape[-1], shape[:2])
        except ArchitectureError as exc:
            raise ConformanceError(str(exc)) from None
        report.passed.append(f"builds and keeps shape {shape}")
        noisy, clean = _batch(shape)
        _check_range(arch, np.asarray(model(noisy, training=False)), where)
        report.passed.append(f"output range '{arch.output_range}' {shape}")
        _check_no_lambda(model, where)
        _check_round_trip(model, noisy, where)
        report.passed.append(f"save/load round trip {shape}")
        _check_training_lowers_loss(model, noisy, clean, where)
        report.passed.append(f"training lowers the loss {shape}")
    return report
