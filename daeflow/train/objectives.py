"""A run's training objective at work: the images it reads, its Keras loss, the noise
variance it is given, and its loss on fixed images (validation without clean targets)."""

import functools
from dataclasses import dataclass

import numpy as np

from daeflow.errors import UsageError
from daeflow.plugin.specs import OBJECTIVE_DATA

LOSS_KEY = 23  # key of the seeds that fix an image's masks or re-noising for validation
SUPERVISED = "supervised"


def chosen(options):
    """The Objective spec that TrainOptions name."""
    from daeflow.plugin.registry import get_objective

    return get_objective(options.objective).spec


def described(name: str, params: dict, needs_clean: bool) -> str:
    """The objective in words, as reports and model cards say it: 'supervised', or
    'trained without clean images: noise2void (strategy=uniform, ...)'."""
    shown = ", ".join(f"{k}={v}" for k, v in sorted(params.items()))
    named = f"{name} ({shown})" if shown else name
    return named if needs_clean else f"trained without clean images: {named}"


def described_run(params: dict) -> str:
    """`described` of a logged run, from its MLflow params (runs logged before objectives
    existed trained supervised)."""
    from daeflow.config import OBJECTIVE_PREFIX
    from daeflow.data.prepare import CLEAN_TARGETS, CLEAN_USE

    own = {
        k[len(OBJECTIVE_PREFIX) :]: v for k, v in params.items() if k.startswith(OBJECTIVE_PREFIX)
    }
    needs_clean = params.get(CLEAN_USE, CLEAN_TARGETS) == CLEAN_TARGETS
    return described(params.get("objective", SUPERVISED), own, needs_clean)


def roles(objective) -> tuple[str, ...]:
    """The images a batch of the objective is made from, in order ('noisy', 'clean', ...)."""
    return OBJECTIVE_DATA[objective.data]


def monitor(objective) -> str:
    """What picks the best epoch: validation PSNR with clean targets, else the objective's
    validation loss."""
    return "val_psnr" if objective.needs_clean else "val_loss"


@dataclass(frozen=True)
class Ranking:
    """How the runs of a sweep or study are compared: a validation metric and its direction."""

    metric: str  # per epoch, as Keras logs it: val_psnr, val_ssim or val_loss
    higher_is_better: bool
    why: str  # in words, for the printed line

    @property
    def run_metric(self) -> str:
        """The run's metric at its best epoch (best_val_psnr, best_val_loss)."""
        return f"best_{self.metric}"

    def describe(self) -> str:
        """'best_val_loss (lower is better)', as the parent run's tag says it."""
        return f"{self.run_metric} ({'higher' if self.higher_is_better else 'lower'} is better)"


def ranking(objectives) -> Ranking:
    """How runs trained with these objective specs are compared: validation PSNR where each
    has clean targets, else the objective's validation loss, lower is better. Validation
    losses of different objectives measure different things: such a mix is refused."""
    names = sorted({o.name for o in objectives})
    without_clean = sorted({o.name for o in objectives if monitor(o) == "val_loss"})
    if not without_clean:
        return Ranking("val_psnr", True, "validation PSNR against the clean validation images")
    if len(names) > 1:
        raise UsageError(
            f"Objectives {', '.join(names)} cannot be ranked together: {without_clean[0]} has no "
            "clean validation images, and the validation losses of different objectives "
            "measure different things. Sweep or tune one objective at a time and compare "
            "their test scores with 'daeflow compare'."
        )
    return Ranking(
        "val_loss",
        False,
        f"the {names[0]} objective's validation loss, lower is better (no clean validation images)",
    )


def unit_variance(source):
    """The noise variance at each value on the [0, 1] scale, from the source's noise model
    (None when it has none or the model cannot say)."""
    if source.noise is None:
        return None
    return source.noise.unit_variance(dict(source.noise_params), float(source.data_range))


def keras_loss(objective, params: dict):
    """What Keras compiles: 'mse', or the objective's own loss with its parameters bound
    (a Keras Loss that names the objective, so that a checkpoint compiles again on load,
    in safe mode, without code from the file)."""
    if objective.loss is None:
        return "mse"
    return loss_class()(objective.name, params)


@functools.cache
def loss_class():
    """The Keras Loss of objectives with a loss of their own, registered with Keras's
    serialization (call before loading a compiled checkpoint)."""
    from daeflow.runtime.backend import load_keras

    keras = load_keras()

    @keras.saving.register_keras_serializable(package="daeflow")
    class ObjectiveLoss(keras.losses.Loss):
        """The loss of the objective called `objective`, looked up in the plugin registry."""

        def __init__(self, objective, params, name=None, reduction="sum_over_batch_size"):
            super().__init__(name=name or f"{objective}_loss", reduction=reduction)
            self.objective, self.objective_params = objective, dict(params)
            from daeflow.plugin.registry import get_objective

            self.loss = get_objective(objective).spec.loss

        def call(self, y_true, y_pred):
            return self.loss(y_true, y_pred, self.objective_params)

        def get_config(self):
            return {
                "objective": self.objective,
                "params": self.objective_params,
                "name": self.name,
                "reduction": self.reduction,
            }

    return ObjectiveLoss


def read(source, indices, names) -> list[np.ndarray]:
    """The named images of `indices` (noisy from the source's fixed noise when synthetic),
    float32 scaled to [0, 1]."""
    scale = np.float32(1.0 / source.data_range)
    out = []
    for name in names:
        if name == "noisy" and source.noisy is None:
            out.append(source.batch(indices)[0])
            continue
        images = getattr(source, name)
        out.append(images.read(indices).astype(np.float32) * scale)
    return out


def loss_per_image(model, source, indices, objective, params, seed, multiple=1) -> np.ndarray:
    """The objective's loss on each image, its masks or re-noising fixed per image by
    (seed, image index): the same numbers every epoch and however training is resumed."""
    import tensorflow as tf

    from daeflow.infer.tiling import predict

    variance = unit_variance(source)
    loss = objective.loss or _mse
    key = tf.constant([seed, LOSS_KEY], tf.int64)
    values = []
    for index in np.asarray(indices):
        images = read(source, [int(index)], roles(objective))
        image_seed = tf.random.experimental.stateless_fold_in(key, int(index))
        inputs, targets = objective.batch(
            tuple(tf.constant(x) for x in images), image_seed, params, variance
        )
        predictions = predict(model, np.asarray(inputs), multiple)
        values.append(float(loss(tf.constant(targets), tf.constant(predictions), params)))
    return np.array(values, dtype=np.float64)


def _mse(targets, predictions, params):
    import tensorflow as tf

    difference = tf.cast(predictions, tf.float32) - tf.cast(targets, tf.float32)
    return tf.reduce_mean(tf.square(difference))
