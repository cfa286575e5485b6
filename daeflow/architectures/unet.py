"""unet: a DRUNet-style U-Net (residual blocks at every scale, strided convs down, transposed
convs up, additive skips, no batch normalisation), optionally behind an FFDNet-style
pixel-unshuffle head."""

from daeflow import Architecture, HyperParam, hookimpl
from daeflow.architectures.layers_nd import layers_for

MAX_SCALES = 4


def widths(params) -> list[int]:
    """Filters at each scale, finest first: `width`, doubled at every scale down."""
    return [params["width"] * 2**s for s in range(params["scales"])]


def full_width(params) -> int:
    """Filters of the full-size convs around the half-size scales (with `unshuffle`)."""
    return max(8, params["width"] // 2)


def receptive_radius(params) -> int:
    """How far, in input pixels, an output pixel can see (a safe upper bound)."""
    k, blocks, scales = params["kernel_size"], params["blocks"], params["scales"]
    half = (k - 1) // 2
    stride = 2 if params["unshuffle"] else 1
    # head conv (and the 2x2 conv down); tail conv (and the transposed conv, the refine conv)
    radius = (half + 1 + 1 + 2 * half) if params["unshuffle"] else 2 * half
    for s in range(scales):
        step = stride * 2**s
        convs = 2 * blocks * (2 if s < scales - 1 else 1)  # encoder and decoder blocks
        radius += convs * step * half
        if s < scales - 1:
            radius += 2 * step  # the 2x2 strided conv down and the transposed conv up
    return radius


def build(input_shape, params):
    """Head, then per scale `blocks` residual blocks and a 2x2 strided conv down; the
    bottom's blocks; per scale up a 2x2 transposed conv, plus the skip, then `blocks`
    residual blocks; a tail conv to C channels = the noise; output = input - noise.
    With `unshuffle` the scales start at half size, between a full-size conv and a 2x2
    strided conv in front and a transposed conv, the full-size features and a conv behind.
    Volumes: Conv3D, and 2x2x2 strided and transposed convs between scales."""
    import keras
    from keras import layers

    k, blocks, bias = params["kernel_size"], params["blocks"], params["bias"]
    nd = layers_for(input_shape)
    filters = widths(params)

    def conv(x, width, name, **kwargs):
        return nd.Conv(width, k, padding="same", use_bias=bias, name=name, **kwargs)(x)

    def scale_conv(layer, x, width, name, **kwargs):
        return layer(width, 2, strides=2, use_bias=bias, name=name, **kwargs)(x)

    def residual(x, width, name):
        for b in range(1, blocks + 1):
            y = conv(x, width, f"{name}_block{b}_conv1", activation="relu")
            # zeros: each block starts as the identity (SkipInit), which trains a deep
            # unnormalised stack of blocks faster
            y = conv(y, width, f"{name}_block{b}_conv2", kernel_initializer="zeros")
            x = layers.Add(name=f"{name}_block{b}_add")([x, y])
        return x

    inputs = keras.Input(shape=input_shape, name="noisy")
    if params["unshuffle"]:
        full = conv(inputs, full_width(params), "head_conv", activation="relu")
        x = scale_conv(nd.Conv, full, filters[0], "head_down", activation="relu")
    else:
        x = conv(inputs, filters[0], "head_conv")
    skips = []
    for s, width in enumerate(filters[:-1]):
        x = residual(x, width, f"down{s + 1}")
        skips.append(x)
        x = scale_conv(nd.Conv, x, filters[s + 1], f"down{s + 1}_conv")
    x = residual(x, filters[-1], "bottom")
    for s in reversed(range(len(filters) - 1)):
        x = scale_conv(nd.ConvTranspose, x, filters[s], f"up{s + 1}_convt")
        x = layers.Add(name=f"up{s + 1}_skip")([x, skips[s]])
        x = residual(x, filters[s], f"up{s + 1}")
    if params["unshuffle"]:
        x = scale_conv(nd.ConvTranspose, x, full_width(params), "tail_up")
        x = layers.Activation("relu", name="tail_relu")(layers.Add(name="tail_skip")([x, full]))
        x = conv(x, full_width(params), "tail_refine", activation="relu")
    noise = conv(x, input_shape[-1], "tail_conv")
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
            "Scales at half size behind a 2x2 strided conv (as FFDNet's pixel unshuffle), "
            "one full-size conv before them and two after.",
        ),
        HyperParam("bias", "bool", True, "Convolutions with bias (false: bias-free, as DRUNet)."),
        HyperParam("kernel_size", "int", 3, "Square kernel size of every conv.", choices=(3, 5)),
    ),
    # 2 for the unshuffle times 2 per scale below the finest: the largest any params need.
    size_multiple=2**MAX_SCALES,
    output_range="any",
    receptive_radius=receptive_radius,
    dims=(2, 3),
)


@hookimpl
def register_architectures():
    return [ARCHITECTURE]
