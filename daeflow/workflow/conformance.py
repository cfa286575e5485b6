"""Conformance kit for architecture and objective authors (public as `daeflow.testing`).

For each set of hyperparameters, it builds the architecture for several input shapes
and channel counts and checks that the output keeps the input shape, that outputs
suit the declared range, that no Lambda layer is used and that a `.keras` save/load round
trip (safe mode) gives identical outputs; for the first shape, that an image of several
tiles denoised tile by tile, with the declared receptive radius as margin, equals the
untiled output (when the architecture declares one), that a few training steps lower the
loss and that the model built under each mixed-precision policy outputs float32 and
reloads from its float32 save; then that every set's model, saved as daeflow logs it,
reloads through `mlflow.pyfunc.load_model` in one fresh Python process and predicts the same.
For an architecture that declares 3D (`dims`), the same for a small volume of each set: it
builds for (depth, height, width, channels) and keeps the shape, outputs suit the range, no
Lambda layer, the save/load round trip, a training step that changes the weights with a
finite loss, and for each axis in turn a volume of 3 tiles along it denoised tile by tile
with the declared radius as margin equals the untiled output.

For a training objective (`check_objective`), for each set of parameters and for grayscale
and colour pieces of the images its data kind names: `batch`, traced as the input pipeline
traces it (a tf.function, the batch dimension unknown), returns inputs of the pieces' count
and channels and targets of the inputs' height and width, finite float32; the same seed
gives the same batch and another seed another (unless it hands the images through
unchanged, as supervised does); its loss (or the mean squared error) is a finite scalar
whose gradients reach the weights of a small Keras model.
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
    """An architecture or objective that does not meet the plugin contract."""


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


def _volume_shape(arch) -> tuple[int, int, int, int]:
    """A small volume the architecture must take: depth a multiple of size_multiple of at
    least 8, height and width twice that, one channel (or the first it declares)."""
    m = arch.size_multiple
    depth = m * -(-8 // m)
    return depth, 2 * depth, 2 * depth, (arch.channels or (1,))[0]


def _volume_batch(shape, pieces=2, seed=0):
    """`pieces` smooth (depth, height, width, channels) volumes and noisy copies."""
    rng = np.random.default_rng(seed)
    *spatial, channels = shape
    zz, yy, xx = np.meshgrid(*(np.arange(s) / max(spatial) for s in spatial), indexing="ij")
    wave = np.sin(2 * np.pi * (xx + yy + 0.5 * zz))[None, ..., None]
    clean = 0.5 + 0.3 * wave * rng.uniform(0.5, 1, (pieces, 1, 1, 1, 1))
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


def _metadata(provided, values: dict) -> dict:
    """What a run stores with the model about its architecture."""
    spec, radius = provided.spec, provided.spec.radius(values)
    found = {"arch": spec.name, "size_multiple": spec.size_multiple}
    return found if radius is None else {**found, "receptive_radius": radius}


TILING_TOLERANCE = 1e-4  # float32, times the output's scale


def randomise_weights(model, seed: int = 0):
    """Draw every weight of `model` at random (kernels scaled by their fan-in, the rest
    small), in place, and return it: every path then carries signal, which a freshly built
    model whose blocks start as the identity (zero-initialised convs) does not."""
    rng = np.random.default_rng(seed)
    weights = []
    for w in model.get_weights():
        scale = 1 / np.sqrt(np.prod(w.shape[:-1])) if w.ndim > 1 else 0.1
        weights.append(rng.normal(0, scale, w.shape).astype(w.dtype))
    model.set_weights(weights)
    return model


def _check_tiling(provided, model, values, channels, where) -> int | None:
    """With the declared radius as margin, an image of 3 x 3 tiles, each window cut inside
    the image, denoised tile by tile equals the untiled output, all weights drawn at random
    (so that no path is silent). Returns the radius."""
    from daeflow.infer.tiling import denoise_image, predict

    arch = provided.spec
    radius = _declared_radius(arch, values, where)
    if radius is None:
        return None
    multiple = arch.size_multiple
    core = (-(-radius // multiple) + 1) * multiple  # a multiple, wider than the margin
    image = _batch((3 * core, 3 * core, channels))[0][0]
    built = model.get_weights()
    randomise_weights(model)
    untiled = predict(model, image[None], multiple)[0]
    tiled = denoise_image(model, image, core, radius, multiple)
    model.set_weights(built)
    gap = float(np.max(np.abs(tiled - untiled)))
    if gap > TILING_TOLERANCE * max(1.0, float(np.max(np.abs(untiled)))):
        raise ConformanceError(
            f"{where}: the declared receptive radius {radius} is too small: tiles with it as "
            f"margin differ from the untiled output by {gap:.3g}. Return an upper bound of how "
            "far, in input pixels, an output pixel sees."
        )
    return radius


def _check_volume_tiling(provided, model, values, channels, where) -> int | None:
    """For each axis in turn, a volume of 3 tiles along that axis (one size multiple across
    the others), all weights drawn at random, denoised tile by tile with the declared radius
    as margin equals the untiled output. Returns the radius."""
    from daeflow.infer.tiling import denoise_image

    radius = _declared_radius(provided.spec, values, where)
    if radius is None:
        return None
    multiple = provided.spec.size_multiple
    core = (-(-radius // multiple) + 1) * multiple  # a multiple, wider than the margin
    built = model.get_weights()
    randomise_weights(model)
    try:
        for axis, name in enumerate(("depth", "height", "width")):
            shape = [multiple] * 3 + [channels]
            shape[axis] = 3 * core
            volume = _volume_batch(tuple(shape), pieces=1)[0][0]
            untiled = np.asarray(model(volume[None], training=False))[0]
            tiled = denoise_image(model, volume, core, radius, multiple)
            gap = float(np.max(np.abs(tiled - untiled)))
            if gap > TILING_TOLERANCE * max(1.0, float(np.max(np.abs(untiled)))):
                raise ConformanceError(
                    f"{where}: the declared receptive radius {radius} is too small along the "
                    f"{name}: tiles of a volume with it as margin differ from the untiled "
                    f"output by {gap:.3g}. Return an upper bound of how far, in voxels along "
                    "any axis, an output voxel sees."
                )
    finally:
        model.set_weights(built)
    return radius


def _declared_radius(arch, values, where) -> int | None:
    radius = arch.radius(values)
    if radius is not None and (
        not isinstance(radius, int) or isinstance(radius, bool) or radius < 0
    ):
        raise ConformanceError(
            f"{where}: receptive_radius must return an int >= 0. Received: {radius!r}"
        )
    return radius


def _check_training_step(model, noisy, clean, where):
    """One training step on a batch gives a finite loss and changes the weights."""
    import keras

    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    before = [np.array(w) for w in model.trainable_weights]
    loss = float(model.train_on_batch(noisy, clean))
    if not np.isfinite(loss):
        raise ConformanceError(f"{where}: a training step gave the loss {loss}.")
    after = [np.asarray(w) for w in model.trainable_weights]
    if not any(not np.array_equal(a, b) for a, b in zip(before, after, strict=True)):
        raise ConformanceError(
            f"{where}: a training step changed no weight. Check that the output depends on "
            "trainable weights."
        )


def _check_volumes(provided, values, label, report) -> None:
    """The checks of one set on a small volume: builds for 3D and keeps the shape, range,
    no Lambda, save/load round trip, tiling along each axis, one training step."""
    from daeflow.plugin.building import build_checked

    arch, shape = provided.spec, _volume_shape(provided.spec)
    where = f"Architecture {arch.name!r} from plugin {report.plugin}, {label}, 3D {shape}"
    try:
        model = build_checked(provided, values, shape[-1], shape[:3])
    except ArchitectureError as exc:
        raise ConformanceError(f"{where}: {exc}") from None
    noisy, clean = _volume_batch(shape)
    output = np.asarray(model(noisy, training=False))
    if output.shape != noisy.shape:
        raise ConformanceError(
            f"{where}: the model maps volumes of shape {noisy.shape} to {output.shape}; a "
            "denoiser must keep the input shape."
        )
    report.passed.append(f"{label}: builds in 3D and keeps shape {shape}")
    _check_range(arch, output, where)
    report.passed.append(f"{label}: output range '{arch.output_range}' 3D {shape}")
    _check_no_lambda(model, where)
    report.passed.append(f"{label}: no Lambda layer 3D {shape}")
    _check_round_trip(model, noisy, where)
    report.passed.append(f"{label}: .keras save/load round trip 3D {shape}")
    radius = _check_volume_tiling(provided, model, values, shape[-1], where)
    if radius is not None:
        report.passed.append(f"{label}: volume tiles with margin {radius} = untiled, every axis")
    _check_training_step(model, noisy, clean, where)
    report.passed.append(f"{label}: a training step on volumes {shape}")


def _check_pyfunc_reloads(jobs: list, provided, new_process: bool = True) -> None:
    """Save each (model, noisy, where, values) as daeflow logs models, reload them all with
    mlflow.pyfunc (in one new process), compare the predictions (clipped to the data range
    by the pyfunc, as by `daeflow denoise`)."""
    from daeflow.track.flavor import load_pyfunc, save_local

    expected = [np.clip(job[0](job[1], training=False), 0, 1) for job in jobs]
    with tempfile.TemporaryDirectory() as tmp:
        arguments = []
        for number, (model, noisy, _, values) in enumerate(jobs):
            folder, inputs = Path(tmp) / f"model{number}", Path(tmp) / f"x{number}.npy"
            metadata = _metadata(provided, values)
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
    for number, (_, _, where, _) in enumerate(jobs):
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
        metadata = _metadata(provided, values)
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
    dims: tuple[int, ...] | None = None,
) -> Report:
    """Run every check for each hyperparameter set; the first failure raises ConformanceError.

    `params` is one set (default: the declared defaults); `param_sets` several. The model is
    also built and reloaded under each mixed-precision policy in `policies`. With
    `new_process=False` the logged model is reloaded through mlflow.pyfunc in this process.
    `dims` the spatial dimensions checked (default: every one the architecture declares);
    volumes get the checks `_check_volumes` lists.
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
    dims = arch.dims if dims is None else dims
    undeclared = sorted(set(dims) - set(arch.dims))
    if undeclared:
        raise ConformanceError(
            f"Architecture {arch.name!r} from plugin {report.plugin} declares dims={arch.dims}, "
            f"not {undeclared[0]}."
        )
    sets = param_sets or [params or {}]
    resolved = [resolve(arch.hyperparams, given, f"Architecture {arch.name!r}") for given in sets]
    reloads, how = [], "in a new process" if new_process else "in this process"
    for given, values in zip(sets, resolved, strict=True):
        label = " ".join(f"{k}={v}" for k, v in given.items()) or "defaults"
        for number, shape in enumerate(_shapes(arch) if 2 in dims else []):
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
            radius = _check_tiling(provided, model, values, shape[-1], where)
            if radius is not None:
                report.passed.append(f"{label}: tiles with margin {radius} = untiled {shape}")
            _check_training_lowers_loss(model, noisy, clean, where)
            report.passed.append(f"{label}: training lowers the loss {shape}")
            for policy in policies:
                _check_policy(provided, values, shape, policy, where)
                report.passed.append(f"{label}: {policy}: float32 output, saved in float32")
            passed = f"{label}: MLflow pyfunc reload {how} {shape}"
            reloads.append((model, noisy, where, values, passed))
        if 3 in dims:
            _check_volumes(provided, values, label, report)
    # Last, the slowest check: every set's model in one new Python process (seconds).
    if reloads:
        _check_pyfunc_reloads([job[:4] for job in reloads], provided, new_process)
    report.passed += [job[4] for job in reloads]
    return report


@dataclass
class ObjectiveReport:
    """The checks an objective passed."""

    objective: str
    plugin: str
    passed: list[str] = field(default_factory=list)


OBJECTIVE_SHAPES = ((16, 16, 1), (20, 28, 3))
PIECES = 8  # per batch: enough that a random choice per piece differs between two seeds
SEEDS = ((3, 5), (3, 6))  # a seed, and another


def _objective_images(objective, shape) -> tuple[np.ndarray, ...]:
    """The images a batch of the objective gets, in OBJECTIVE_DATA's order, in [0, 1]."""
    from daeflow.train.objectives import roles

    clean = np.concatenate([_batch(shape, 0)[1], _batch(shape, 1)[1]])
    made = {"clean": clean}
    for number, role in enumerate(("noisy", "noisy2")):
        rng = np.random.default_rng(10 + number)
        made[role] = np.clip(clean + rng.normal(0, 0.1, clean.shape), 0, 1).astype(np.float32)
    return tuple(made[role] for role in roles(objective))


def _gaussian_variance(values):
    """The variance of Gaussian noise of sigma 0.1 on the [0, 1] scale, at every value."""
    import tensorflow as tf

    return tf.fill(tf.shape(values), tf.constant(0.01, values.dtype))


def _traced_batch(objective, params, shape, images):
    """The objective's batch as the input pipeline runs it: a tf.function whose pieces have
    an unknown count; called with `seed`, it returns (inputs, targets) as numpy arrays."""
    import tensorflow as tf

    variance = _gaussian_variance if objective.data == "noisy_and_model" else None
    signature = [tf.TensorSpec([None, *shape], tf.float32) for _ in images]

    @tf.function(input_signature=[tf.TensorSpec([2], tf.int64), *signature])
    def batch(seed, *pieces):
        return objective.batch(tuple(pieces), seed, params, variance)

    def run(seed):
        return batch(tf.constant(seed, tf.int64), *(tf.constant(x) for x in images))

    return run


def _check_batch_output(made, shape, where) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(made, tuple | list) or len(made) != 2:
        raise ConformanceError(
            f"{where}: batch must return (inputs, targets). Received: {type(made).__name__}"
            + (f" of {len(made)}" if isinstance(made, tuple | list) else "")
        )
    inputs, targets = (np.asarray(x) for x in made)
    if inputs.ndim != 4 or (inputs.shape[0], inputs.shape[3]) != (PIECES, shape[2]):
        raise ConformanceError(
            f"{where}: batch returned inputs of shape {inputs.shape}; they must keep the "
            f"pieces' count and channels {(PIECES, shape[2])} (height and width may shrink, "
            "as a sub-sampler's do)."
        )
    if targets.ndim != 4 or targets.shape[:3] != inputs.shape[:3] or targets.shape[3] < shape[2]:
        raise ConformanceError(
            f"{where}: batch returned targets of shape {targets.shape}; they must have the "
            f"inputs' count, height and width {inputs.shape[:3]} and at least {shape[2]} "
            "channel(s) (extra channels, such as a mask, after the image's)."
        )
    for role, values in (("inputs", inputs), ("targets", targets)):
        if values.dtype != np.float32:
            raise ConformanceError(
                f"{where}: batch returned {role} of {values.dtype}, not float32."
            )
        if not np.all(np.isfinite(values)):
            raise ConformanceError(f"{where}: batch returned {role} holding NaN or Inf.")
    return inputs, targets


def _check_seeding(run, first, images, where) -> bool:
    """The same seed, the same batch; another seed, another batch, unless the batch is the
    images themselves. Whether the batch depends on the seed."""
    again = [np.asarray(x) for x in run(SEEDS[0])]
    if not all(np.array_equal(a, b) for a, b in zip(first, again, strict=True)):
        raise ConformanceError(
            f"{where}: the same seed gave a different batch. Draw random numbers only with "
            "tf.random.stateless_* and the seed batch is given (not tf.random.uniform, numpy "
            "or Python's random), so that a resumed run sees the same batches."
        )
    other = [np.asarray(x) for x in run(SEEDS[1])]
    if any(not np.array_equal(a, b) for a, b in zip(first, other, strict=True)):
        return True
    passed_through = first[0].shape == images[0].shape and np.array_equal(first[0], images[0])
    passed_through &= first[1].shape == images[-1].shape and np.array_equal(first[1], images[-1])
    if not passed_through:
        raise ConformanceError(
            f"{where}: two different seeds gave the same batch. Derive every random draw from "
            "the seed batch is given (a fixed seed makes every batch the same)."
        )
    return False


def _check_loss_and_gradients(objective, params, inputs, targets, shape, where) -> None:
    import tensorflow as tf

    from daeflow.runtime.backend import load_keras
    from daeflow.train.objectives import _mse

    keras = load_keras()
    loss = objective.loss or _mse
    traced = tf.function(lambda y_true, y_pred: loss(y_true, y_pred, params))  # as Keras runs it
    try:
        value = traced(tf.constant(targets), tf.constant(inputs))
    except Exception as exc:
        raise ConformanceError(
            f"{where}: the loss raised {type(exc).__name__} in a compiled training step: "
            f"{(str(exc).strip().splitlines() or [''])[0]}"
        ) from None
    value = np.asarray(value)
    if value.shape != () or not np.isfinite(value):
        raise ConformanceError(
            f"{where}: the loss must be a finite scalar. Received: shape {value.shape}, "
            f"value {value if value.size < 5 else '...'}"
        )
    model = keras.Sequential(
        [keras.Input(shape=shape), keras.layers.Conv2D(shape[-1], 3, padding="same")]
    )
    with tf.GradientTape() as tape:
        value = loss(tf.constant(targets), model(tf.constant(inputs), training=True), params)
    gradients = tape.gradient(value, model.trainable_variables)
    if any(g is None for g in gradients) or not any(np.any(np.asarray(g) != 0) for g in gradients):
        raise ConformanceError(
            f"{where}: the loss's gradients do not reach the model's weights. Compute it "
            "with TensorFlow operations on the predictions (no numpy, no tf.stop_gradient)."
        )
    if not all(np.all(np.isfinite(np.asarray(g))) for g in gradients):
        raise ConformanceError(f"{where}: the loss's gradients hold NaN or Inf.")


def check_objective(
    name_or_provided, params: dict | None = None, param_sets: list[dict] | None = None
) -> ObjectiveReport:
    """Run every objective check for each parameter set; the first failure raises
    ConformanceError. `params` is one set (default: the declared defaults); `param_sets`
    several."""
    from daeflow.plugin.hyperparams import resolve
    from daeflow.plugin.registry import get_objective
    from daeflow.runtime.backend import load_keras

    load_keras()  # sets the backend before TensorFlow's first use
    provided = (
        get_objective(name_or_provided) if isinstance(name_or_provided, str) else name_or_provided
    )
    objective = provided.spec
    report = ObjectiveReport(
        objective.name, f"{provided.plugin.name} ({provided.plugin.distribution})"
    )
    sets = param_sets or [params or {}]
    owner = f"Objective {objective.name!r}"
    for given in sets:
        values = resolve(objective.params, given, owner)
        label = " ".join(f"{k}={v}" for k, v in given.items()) or "defaults"
        for shape in OBJECTIVE_SHAPES:
            where = f"{owner} from plugin {report.plugin}, {label}, pieces {shape}"
            images = _objective_images(objective, shape)
            run = _traced_batch(objective, values, shape, images)
            try:
                first = run(SEEDS[0])
            except Exception as exc:
                raise ConformanceError(
                    f"{where}: batch raised {type(exc).__name__} in the input pipeline's graph: "
                    f"{(str(exc).strip().splitlines() or [''])[0]}"
                ) from None
            inputs, targets = _check_batch_output(first, shape, where)
            report.passed.append(f"{label}: batch shapes agree {shape}")
            seeded = _check_seeding(run, (inputs, targets), images, where)
            report.passed.append(
                f"{label}: the same seed, the same batch"
                + ("; another seed, another batch" if seeded else " (images as given)")
                + f" {shape}"
            )
            _check_loss_and_gradients(objective, values, inputs, targets, shape, where)
            report.passed.append(f"{label}: finite scalar loss, gradients reach the model {shape}")
    return report
