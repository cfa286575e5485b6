"""residual: a DnCNN-style network that predicts the noise and subtracts it from its input."""

from daeflow import Architecture, HyperParam, hookimpl
from daeflow.architectures.layers_nd import layers_for


def dilations(depth: int, widest: int) -> list[int]:
    """IRCNN's ramp 1, 2, ..., widest, ..., 2, 1 over `depth` layers (all 1 when widest is 1)."""
    return [max(1, min(i + 1, depth - i, widest)) for i in range(depth)]


def receptive_radius(params) -> int:
    """Each conv reaches (k - 1) / 2 times its dilation."""
    rates = dilations(params["depth"], params["dilation"])
    return (params["kernel_size"] - 1) // 2 * sum(rates)


def build(input_shape, params):
    """Conv-relu, (depth - 2) x conv(-BN)-relu, conv to C channels = noise; out = input - noise
    (Conv3D for volumes)."""
    import keras
    from keras import layers

    width, k, depth, bn = (
        params["width"],
        params["kernel_size"],
        params["depth"],
        params["batch_norm"],
    )
    rates = dilations(depth, params["dilation"])
    nd = layers_for(input_shape)
    inputs = keras.Input(shape=input_shape, name="noisy")
    x = nd.Conv(width, k, padding="same", activation="relu", name="block1_conv")(inputs)
    for i in range(2, depth):
        x = nd.Conv(
            width,
            k,
            padding="same",
            dilation_rate=rates[i - 1],
            use_bias=not bn,
            name=f"block{i}_conv",
        )(x)
        if bn:
            x = layers.BatchNormalization(name=f"block{i}_bn")(x)
        x = layers.Activation("relu", name=f"block{i}_relu")(x)
    noise = nd.Conv(input_shape[-1], k, padding="same", name="noise_conv")(x)
    outputs = layers.Subtract(name="denoised")([inputs, noise])
    return keras.Model(inputs, outputs, name="residual")


ARCHITECTURE = Architecture(
    name="residual",
    description="DnCNN-style residual CNN: predicts the noise and subtracts it; any image size.",
    build=build,
    hyperparams=(
        HyperParam("depth", "int", 10, "Number of conv layers.", min=3, max=30),
        HyperParam("width", "int", 48, "Filters of every hidden conv.", min=4),
        HyperParam("kernel_size", "int", 3, "Square kernel size of every conv.", choices=(3, 5)),
        HyperParam("batch_norm", "bool", False, "Batch-normalise hidden convs."),
        HyperParam(
            "dilation", "int", 1, "Widest dilation of IRCNN's 1, 2, .., 2, 1 ramp.", min=1, max=8
        ),
    ),
    size_multiple=1,
    output_range="any",
    receptive_radius=receptive_radius,
    dims=(2, 3),
)


@hookimpl
def register_architectures():
    return [ARCHITECTURE]
