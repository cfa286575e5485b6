"""unet: a DRUNet-style U-Net (residual blocks at every scale, strided convs down, transposed
convs up, additive skips, no batch normalisation), optionally behind an FFDNet-style
pixel-unshuffle head."""

from daeflow import Architecture, HyperParam, hookimpl

MAX_SCALES = 4


def widths(params) -> list[int]:
    """Filters at each scale, finest first: `width`, doubled at every scale down."""
    return [params["width"] * 2**s for s in range(params["scales"])]


def receptive_radius(params) -> int:
    """How far, in input pixels, an output pixel can see (a safe upper bound)."""
    k, blocks, scales = params["kernel_size"], params["blocks"], params["scales"]
    stride = 2 if params["unshuffle"] else 1
    radius = stride - 1 if params["unshuffle"] else (k - 1) // 2  # head
    for s in range(scales):
        step = stride * 2**s
        convs = 2 * blocks * (2 if s < scales - 1 else 1)  # encoder and decoder blocks
        radius += convs * step * (k - 1) // 2
        if s < scales - 1:
            radius += 2 * step  # the 2x2 strided conv down and the transposed conv up
    return radius + (stride - 1 if params["unshuffle"] else (k - 1) // 2)  # tail


def build(input_shape, params):
    """Head, then per scale `blocks` residual blocks and a 2x2 strided conv down; the
    bottom's blocks; per scale up a 2x2 transposed conv, plus the skip, then `blocks`
    residual blocks; a tail conv to C channels = the noise; output = input - noise."""
    import keras
    from keras import layers

    k, blocks, bias = params["kernel_size"], params["blocks"], params["bias"]
    filters = widths(params)

    def conv(x, width, name, size=k, **kwargs):
        return layers.Conv2D(width, size, padding="same", use_bias=bias, name=name, **kwargs)(x)

    def residual(x, width, name):
        for b in range(1, blocks + 1):
            y = conv(x, width, f"{name}_block{b}_conv1", activation="relu")
            y = conv(y, width, f"{name}_block{b}_conv2")
            x = layers.Add(name=f"{name}_block{b}_add")([x, y])
        return x

    inputs = keras.Input(shape=input_shape, name="noisy")
    if params["unshuffle"]:  # pixel unshuffle and a 1x1 conv, as one 2x2 stride-2 conv
        x = layers.Conv2D(filters[0], 2, strides=2, use_bias=bias, name="head_unshuffle")(inputs)
    else:
        x = conv(inputs, filters[0], "head_conv")
    skips = []
    for s, width in enumerate(filters[:-1]):
        x = residual(x, width, f"down{s + 1}")
        skips.append(x)
        x = layers.Conv2D(filters[s + 1], 2, strides=2, use_bias=bias, name=f"down{s + 1}_conv")(x)
    x = residual(x, filters[-1], "bottom")
    for s in reversed(range(len(filters) - 1)):
        x = layers.Conv2DTranspose(
            filters[s], 2, strides=2, use_bias=bias, name=f"up{s + 1}_convt"
        )(x)
        x = layers.Add(name=f"up{s + 1}_skip")([x, skips[s]])
        x = residual(x, filters[s], f"up{s + 1}")
    channels = input_shape[-1]
    if params["unshuffle"]:  # a 1x1 conv and a pixel shuffle, as one 2x2 transposed conv
        noise = layers.Conv2DTranspose(channels, 2, strides=2, use_bias=bias, name="tail_shuffle")(
            x
        )
    else:
        noise = conv(x, channels, "tail_conv")
    outputs = layers.Subtract(name="denoised")([inputs, noise])
    return keras.Model(inputs, outputs, name="unet")


ARCHITECTURE = Architecture(
    name="unet",
    description=(
        "DRUNet-style U-Net: residual blocks per scale, strided convs down, transposed convs "
        "up, additive skips; optional pixel-unshuffle head."
    ),
    build=build,
    hyperparams=(
        HyperParam("width", "int", 32, "Filters at the finest scale (doubled per scale).", min=4),
        HyperParam("scales", "int", 3, "Scales, the finest included.", min=1, max=MAX_SCALES),
        HyperParam("blocks", "int", 2, "Residual blocks per scale, down and up.", min=1, max=8),
        HyperParam(
            "unshuffle",
            "bool",
            True,
            "FFDNet-style head: work at half resolution behind a 2x2 pixel unshuffle.",
        ),
        HyperParam("bias", "bool", True, "Convolutions with bias (false: bias-free, as DRUNet)."),
        HyperParam("kernel_size", "int", 3, "Square kernel size of every conv.", choices=(3, 5)),
    ),
    # 2 for the unshuffle times 2 per scale below the finest: the largest any params need.
    size_multiple=2**MAX_SCALES,
    output_range="any",
    receptive_radius=receptive_radius,
)


@hookimpl
def register_architectures():
    return [ARCHITECTURE]
