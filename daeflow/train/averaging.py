"""Adam that keeps a moving average of the weights (--ema-momentum), warmed up.

Keras's own average starts from the first step's weights with the full momentum, so after
t steps the weights of the first step still weigh momentum**t (0.28 after 1,260 steps at
0.999). Here the momentum after step t (counted from 0) is min(momentum, t / (t + 10)):
the first step's weights are copied, early on the average follows the weights, later it
spans roughly the last tenth of the steps, up to the window of the momentum itself.
"""

from daeflow.runtime.backend import load_keras

keras = load_keras()


@keras.saving.register_keras_serializable(package="daeflow")
class AveragingAdam(keras.optimizers.Adam):
    """keras.optimizers.Adam with use_ema=True and a warmed-up momentum (see the module)."""

    def __init__(self, ema_momentum=0.999, **kwargs):
        kwargs.update(use_ema=True, ema_momentum=ema_momentum)
        super().__init__(**kwargs)

    def _update_model_variables_moving_average(self, trainable_variables):
        ops = keras.ops
        steps = ops.cast(self.iterations, "float32")
        for variable, average in zip(
            trainable_variables, self._model_variables_moving_average, strict=True
        ):
            if average is None:
                continue
            momentum = ops.cast(
                ops.minimum(self.ema_momentum, steps / (steps + 10.0)), variable.dtype
            )
            average.assign(momentum * average + (1 - momentum) * variable)
