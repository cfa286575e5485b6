"""Custom Keras layers of the resunet architecture, registered for safe-mode loading.

Importing this module imports Keras, so only the builder (and daeflow, before it
loads a saved model) imports it; the plugin module itself stays light.
"""

import keras  # noqa: TID253 - this module is only ever imported lazily

__all__ = ["ResidualBlock"]


@keras.saving.register_keras_serializable(package="daeflow_resunet")
class ResidualBlock(keras.layers.Layer):
    """`convs` same-padded conv-relu layers plus a 1x1 projection shortcut, added, then relu.

    Args:
        filters: output channels of every conv in the block.
        kernel_size: square kernel size of the main-path convs.
        convs: number of convs on the main path (at least 1).
    """

    def __init__(self, filters, kernel_size=3, convs=2, **kwargs):
        super().__init__(**kwargs)
        if convs < 1:
            raise ValueError(f"ResidualBlock needs at least one conv. Received: convs={convs}")
        self.filters = filters
        self.kernel_size = kernel_size
        self.convs = convs
        # The last main-path conv stays linear so the relu comes after the addition.
        self.main = [
            keras.layers.Conv2D(
                filters,
                kernel_size,
                padding="same",
                activation="relu" if i < convs - 1 else None,
                name=f"conv{i + 1}",
            )
            for i in range(convs)
        ]
        self.shortcut = keras.layers.Conv2D(filters, 1, padding="same", name="shortcut")

    def build(self, input_shape):
        # Build sublayers explicitly so their weights exist before a saved model's are loaded.
        shape = tuple(input_shape)
        self.shortcut.build(shape)
        for conv in self.main:
            conv.build(shape)
            shape = shape[:-1] + (self.filters,)

    def call(self, inputs):
        x = inputs
        for conv in self.main:
            x = conv(x)
        return keras.ops.relu(x + self.shortcut(inputs))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)[:-1] + (self.filters,)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, kernel_size=self.kernel_size, convs=self.convs)
        return config
