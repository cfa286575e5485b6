"""conv_baseline: the reference convolutional denoising autoencoder."""

from daeflow import Architecture, HyperParam, hookimpl
from daeflow.architectures.layers_nd import layers_for


def encoder(inputs, f: int, k: int):
    """Conv f > pool > conv f/2 > pool > conv f/4 (the bottleneck), in 2D or 3D as the
    input is; shared with conv_transpose."""
    nd = layers_for(inputs.shape[1:])
    x = nd.Conv(f, k, activation="relu", padding="same", name="enc1_conv")(inputs)
    x = nd.MaxPooling(2, padding="same", name="enc1_pool")(x)
    x = nd.Conv(f // 2, k, activation="relu", padding="same", name="enc2_conv")(x)
    x = nd.MaxPooling(2, padding="same", name="enc2_pool")(x)
    return nd.Conv(f // 4, k, activation="relu", padding="same", name="bottleneck_conv")(x)


def pooled(inner: int, before: int, after: int) -> int:
    """The radius, in pixels of one level, of `before` pixels of convs, a 2x2 pool (or a 2x2
    strided conv), what sees `inner` pixels at the coarser level, a 2x upsampling and `after`
    pixels of convs: the coarse pixels reach 2 * inner + 1 fine ones either way."""
    return before + 2 * inner + 1 + after


def receptive_radius(params) -> int:
    """Two pooling levels around the bottleneck, one conv before and after each (the same
    along every axis, in 2D and 3D)."""
    r = (params["kernel_size"] - 1) // 2
    return pooled(pooled(r, r, r), r, r)


def build(input_shape, params):
    """Conv 32 > pool > conv 16 > pool > conv 8 > up > conv 16 > up > conv C (sigmoid);
    Conv3D and 3D pools for volumes."""
    import keras

    f, k = params["filters"], params["kernel_size"]
    nd = layers_for(input_shape)
    inputs = keras.Input(shape=input_shape, name="noisy")
    # Encoder
    x = encoder(inputs, f, k)
    # Decoder
    x = nd.UpSampling(2, name="dec1_up")(x)
    x = nd.Conv(f // 2, k, activation="relu", padding="same", name="dec1_conv")(x)
    x = nd.UpSampling(2, name="dec2_up")(x)
    outputs = nd.Conv(input_shape[-1], k, activation="sigmoid", padding="same", name="output_conv")(
        x
    )
    return keras.Model(inputs, outputs, name="conv_baseline")


HYPERPARAMS = (
    HyperParam("filters", "int", 32, "Filters of the first conv; later ones halve.", min=4),
    HyperParam("kernel_size", "int", 3, "Square kernel size of every conv.", choices=(3, 5)),
)

ARCHITECTURE = Architecture(
    name="conv_baseline",
    description="Reference conv autoencoder: 32-16-8 encoder, upsampling decoder, sigmoid out.",
    build=build,
    hyperparams=HYPERPARAMS,
    size_multiple=4,
    receptive_radius=receptive_radius,
    dims=(2, 3),
)


@hookimpl
def register_architectures():
    return [ARCHITECTURE]
