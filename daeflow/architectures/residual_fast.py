"""residual_fast: residual CNN whose body works at half resolution, with a full-resolution skip."""

from daeflow import Architecture, HyperParam, hookimpl
from daeflow.architectures.layers_nd import layers_for


def receptive_radius(params) -> int:
    """Three full-size convs, and `depth` half-size ones between a 2x2 strided conv and a
    2x2 transposed conv (which together reach one full-size pixel more); in 3D the same
    with 2x2x2 ones."""
    r = (params["kernel_size"] - 1) // 2
    return 3 * r + 2 * params["depth"] * r + 1


def build(input_shape, params):
    """Conv at full size, 2x2 strided conv down, `depth` convs at half size with twice the
    filters (in residual blocks of two if asked), transposed conv up plus the full-size
    features, one more conv; input - noise. Volumes: Conv3D, 2x2x2 strided and transposed."""
    import keras
    from keras import layers

    width, k, depth = params["width"], params["kernel_size"], params["depth"]
    nd = layers_for(input_shape)
    blocks = depth // 2 if params["residual_blocks"] else 0

    def conv(x, filters, name):
        return nd.Conv(filters, k, padding="same", activation="relu", name=name)(x)

    inputs = keras.Input(shape=input_shape, name="noisy")
    full = conv(inputs, width, "full_conv")
    x = nd.Conv(2 * width, 2, strides=2, activation="relu", name="down_conv")(full)
    for i in range(1, depth - 2 * blocks + 1):
        x = conv(x, 2 * width, f"half{i}_conv")
    # skip_init: each block starts as the identity (SkipInit), and the sum passes unchanged
    second = {"kernel_initializer": "zeros"} if params["skip_init"] else {}
    for i in range(1, blocks + 1):
        y = conv(x, 2 * width, f"block{i}_conv1")
        y = nd.Conv(2 * width, k, padding="same", name=f"block{i}_conv2", **second)(y)
        x = layers.Add(name=f"block{i}_add")([x, y])
        if not params["skip_init"]:
            x = layers.Activation("relu", name=f"block{i}_relu")(x)
    up = nd.ConvTranspose(width, 2, strides=2, name="up_convt")(x)
    x = layers.Activation("relu", name="skip_relu")(layers.Add(name="skip")([up, full]))
    x = conv(x, width, "refine_conv")
    noise = nd.Conv(input_shape[-1], k, padding="same", name="noise_conv")(x)
    outputs = layers.Subtract(name="denoised")([inputs, noise])
    return keras.Model(inputs, outputs, name="residual_fast")


ARCHITECTURE = Architecture(
    name="residual_fast",
    description="Residual CNN: half-resolution body, full-resolution skip; any even size.",
    build=build,
    hyperparams=(
        HyperParam("depth", "int", 6, "Convs at half resolution.", min=1, max=30),
        HyperParam("width", "int", 32, "Filters at full size (twice that at half).", min=4),
        HyperParam("kernel_size", "int", 3, "Square kernel size of every conv.", choices=(3, 5)),
        HyperParam(
            "residual_blocks",
            "bool",
            False,
            "Pair the half-size convs into blocks x + conv(conv(x)); an odd one stays plain.",
        ),
        HyperParam(
            "skip_init",
            "bool",
            False,
            "With residual_blocks: each block starts as the identity, its second conv "
            "zero-initialised and no ReLU after the sum (SkipInit; DRUNet's blocks).",
        ),
    ),
    size_multiple=2,
    output_range="any",
    receptive_radius=receptive_radius,
    dims=(2, 3),
)


@hookimpl
def register_architectures():
    return [ARCHITECTURE]
