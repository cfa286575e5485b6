"""conv_transpose: the baseline encoder with learned, strided Conv2DTranspose upsampling."""

from daeflow import Architecture, hookimpl
from daeflow.architectures.conv_baseline import HYPERPARAMS, encoder


def receptive_radius(params) -> int:
    """As conv_baseline's, but a k x k stride-2 transposed conv reaches k fine pixels where
    an upsampling reaches one: each level adds 2 * inner + k."""
    k = params["kernel_size"]
    r = (k - 1) // 2
    level2 = r + 2 * r + k  # enc2 conv, the bottleneck, dec1_convt
    return r + 2 * level2 + k + r  # enc1 conv, level 2, dec2_convt, output conv


def build(input_shape, params):
    """Conv 32 > pool > conv 16 > pool > conv 8 > convT 16 (stride 2) > convT 32 > conv C."""
    import keras
    from keras import layers

    f, k = params["filters"], params["kernel_size"]
    inputs = keras.Input(shape=input_shape, name="noisy")
    # Encoder
    x = encoder(inputs, f, k)
    # Decoder
    x = layers.Conv2DTranspose(
        f // 2, k, strides=2, activation="relu", padding="same", name="dec1_convt"
    )(x)
    x = layers.Conv2DTranspose(
        f, k, strides=2, activation="relu", padding="same", name="dec2_convt"
    )(x)
    outputs = layers.Conv2D(
        input_shape[-1], k, activation="sigmoid", padding="same", name="output_conv"
    )(x)
    return keras.Model(inputs, outputs, name="conv_transpose")


ARCHITECTURE = Architecture(
    name="conv_transpose",
    description="Baseline encoder with learned upsampling by strided Conv2DTranspose.",
    build=build,
    hyperparams=HYPERPARAMS,
    size_multiple=4,
    receptive_radius=receptive_radius,
)


@hookimpl
def register_architectures():
    return [ARCHITECTURE]
