"""daeflow-resunet: a small residual U-Net denoiser, registered as a daeflow plugin.

This module is what the entry point names, so it must stay cheap to import: Keras
and the custom layers are imported inside `build`, never here.
"""

from daeflow import Architecture, HyperParam, hookimpl

__version__ = "0.1.0"

# daeflow imports this module before loading a saved model, so the custom layers
# are registered with Keras and `keras.saving.load_model(..., safe_mode=True)` works.
CUSTOM_OBJECTS_MODULE = "daeflow_resunet.layers"

__all__ = ["ARCHITECTURE", "CUSTOM_OBJECTS_MODULE", "build", "register_architectures"]


def build(input_shape, params):
    """Two-level residual U-Net that predicts the noise; output = input - noise."""
    import keras
    from keras import layers

    from daeflow_resunet.layers import ResidualBlock

    f, k, convs = params["filters"], params["kernel_size"], params["depth"]
    inputs = keras.Input(shape=input_shape, name="noisy")
    # Encoder
    skip1 = ResidualBlock(f, k, convs, name="enc1_block")(inputs)
    x = layers.MaxPooling2D(2, name="enc1_pool")(skip1)
    skip2 = ResidualBlock(2 * f, k, convs, name="enc2_block")(x)
    x = layers.MaxPooling2D(2, name="enc2_pool")(skip2)
    x = ResidualBlock(4 * f, k, convs, name="bottleneck_block")(x)
    # Decoder
    x = layers.UpSampling2D(2, name="dec1_up")(x)
    x = layers.Concatenate(name="dec1_concat")([x, skip2])
    x = ResidualBlock(2 * f, k, convs, name="dec1_block")(x)
    x = layers.UpSampling2D(2, name="dec2_up")(x)
    x = layers.Concatenate(name="dec2_concat")([x, skip1])
    x = ResidualBlock(f, k, convs, name="dec2_block")(x)
    # Residual output: a linear conv predicts the noise, which is taken off the input.
    noise = layers.Conv2D(input_shape[-1], 1, padding="same", name="noise_conv")(x)
    outputs = layers.Subtract(name="denoised")([inputs, noise])
    return keras.Model(inputs, outputs, name="resunet")


ARCHITECTURE = Architecture(
    name="resunet",
    description="Residual U-Net: 2 pooling levels, skip connections, predicts the noise.",
    build=build,
    hyperparams=(
        HyperParam("filters", "int", 16, "Filters of the first level; each level doubles.", min=4),
        # Depth is per block, not the number of levels: the two pooling levels are what
        # keep `size_multiple` at 4 for every allowed value.
        HyperParam("depth", "int", 2, "Conv layers in each residual block.", min=1, max=4),
        HyperParam("kernel_size", "int", 3, "Square kernel size of every conv.", choices=(3, 5)),
    ),
    size_multiple=4,
    output_range="any",
)


@hookimpl
def register_architectures():
    return [ARCHITECTURE]
