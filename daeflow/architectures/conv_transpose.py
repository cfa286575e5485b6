"""conv_transpose: the baseline encoder with learned, strided Conv2DTranspose upsampling."""

from daeflow import Architecture, hookimpl
from daeflow.architectures.conv_baseline import HYPERPARAMS, encoder
from daeflow.architectures.layers_nd import layers_for


def receptive_radius(params) -> int:
    """As conv_baseline's, but a k x k stride-2 transposed conv reaches k fine pixels where
    an upsampling reaches one: each level adds 2 * inner + k."""
    k = params["kernel_size"]
    r = (k - 1) // 2
    level2 = r + 2 * r + k  # enc2 conv, the bottleneck, dec1_convt
    return r + 2 * level2 + k + r  # enc1 conv, level 2, dec2_convt, output conv


def build(input_shape, params):
    """Conv 32 > pool > conv 16 > pool > conv 8 > convT 16 (stride 2) > convT 32 > conv C;
    Conv3D and Conv3DTranspose for volumes."""
    import keras

    f, k = params["filters"], params["kernel_size"]
    nd = layers_for(input_shape)
    inputs = keras.Input(shape=input_shape, name="noisy")
    # Encoder
    x = encoder(inputs, f, k)
    # Decoder
    x = nd.ConvTranspose(
        f // 2, k, strides=2, activation="relu", padding="same", name="dec1_convt"
    )(x)
    x = nd.ConvTranspose(f, k, strides=2, activation="relu", padding="same", name="dec2_convt")(x)
    outputs = nd.Conv(input_shape[-1], k, activation="sigmoid", padding="same", name="output_conv")(
        x
    )
    return keras.Model(inputs, outputs, name="conv_transpose")


ARCHITECTURE = Architecture(
    name="conv_transpose",
    description="Baseline encoder with learned upsampling by strided Conv2DTranspose.",
    build=build,
    hyperparams=HYPERPARAMS,
    size_multiple=4,
    receptive_radius=receptive_radius,
    dims=(2, 3),
)


@hookimpl
def register_architectures():
    return [ARCHITECTURE]
