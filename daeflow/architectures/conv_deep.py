"""conv_deep: a deeper autoencoder with more blocks, more filters and batch normalisation."""

from daeflow import Architecture, HyperParam, hookimpl


def _conv_block(x, filters, kernel_size, name):
    from keras import layers

    x = layers.Conv2D(filters, kernel_size, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def receptive_radius(params) -> int:
    """The bottleneck conv, wrapped per level in a conv, a pool, an upsampling and a conv;
    then the output conv."""
    from daeflow.architectures.conv_baseline import pooled

    r = (params["kernel_size"] - 1) // 2
    radius = r
    for _ in range(params["depth"]):
        radius = pooled(radius, r, r)
    return radius + r


def build(input_shape, params):
    """`depth` encoder blocks (conv-BN-relu, pool), a bottleneck, `depth` decoder blocks."""
    import keras
    from keras import layers

    f, k, depth = params["filters"], params["kernel_size"], params["depth"]
    inputs = keras.Input(shape=input_shape, name="noisy")
    x = inputs
    # Encoder
    for i in range(depth):
        x = _conv_block(x, f * 2**i, k, f"enc{i + 1}")
        x = layers.MaxPooling2D(2, padding="same", name=f"enc{i + 1}_pool")(x)
    x = _conv_block(x, f * 2**depth, k, "bottleneck")
    # Decoder
    for i in reversed(range(depth)):
        x = layers.UpSampling2D(2, name=f"dec{i + 1}_up")(x)
        x = _conv_block(x, f * 2**i, k, f"dec{i + 1}")
    outputs = layers.Conv2D(
        input_shape[-1], k, activation="sigmoid", padding="same", name="output_conv"
    )(x)
    return keras.Model(inputs, outputs, name="conv_deep")


ARCHITECTURE = Architecture(
    name="conv_deep",
    description="Deeper conv autoencoder: 3 conv-BN-relu blocks each way, 32-64-128 filters.",
    build=build,
    hyperparams=(
        HyperParam(
            "filters", "int", 32, "Filters of the first block; they double per block.", min=4
        ),
        HyperParam("depth", "int", 3, "Number of encoder (and decoder) blocks.", min=1, max=5),
        HyperParam("kernel_size", "int", 3, "Square kernel size of every conv.", choices=(3, 5)),
    ),
    size_multiple=8,
    receptive_radius=receptive_radius,
)


@hookimpl
def register_architectures():
    return [ARCHITECTURE]
