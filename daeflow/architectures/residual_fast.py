"""residual_fast: FFDNet-style residual CNN that works at half resolution, 4x cheaper per layer."""

from daeflow import Architecture, HyperParam, hookimpl


def build(input_shape, params):
    """Strided conv down, (depth - 2) convs at half size, transposed conv up; input - noise."""
    import keras
    from keras import layers

    width, k, depth = params["width"], params["kernel_size"], params["depth"]
    inputs = keras.Input(shape=input_shape, name="noisy")
    # Encoder: one strided conv to half resolution
    x = layers.Conv2D(width, k, strides=2, padding="same", activation="relu", name="down_conv")(
        inputs
    )
    for i in range(1, depth - 1):
        x = layers.Conv2D(width, k, padding="same", activation="relu", name=f"block{i}_conv")(x)
    # Decoder: a transposed conv back to full resolution predicts the noise
    noise = layers.Conv2DTranspose(
        input_shape[-1], k, strides=2, padding="same", name="noise_convt"
    )(x)
    outputs = layers.Subtract(name="denoised")([inputs, noise])
    return keras.Model(inputs, outputs, name="residual_fast")


ARCHITECTURE = Architecture(
    name="residual_fast",
    description="FFDNet-style residual CNN at half resolution: wider field, 4x fewer pixels.",
    build=build,
    hyperparams=(
        HyperParam("depth", "int", 12, "Number of conv layers.", min=3, max=30),
        HyperParam("width", "int", 48, "Filters of every hidden conv.", min=4),
        HyperParam("kernel_size", "int", 3, "Square kernel size of every conv.", choices=(3, 5)),
    ),
    size_multiple=2,
    output_range="any",
)


@hookimpl
def register_architectures():
    return [ARCHITECTURE]
