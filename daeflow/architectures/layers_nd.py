"""The Keras layer classes for the rank of an input: 2D images or 3D volumes.

A builder gets `input_shape` `(None, None, C)` for images or `(None, None, None, C)` for
volumes; `layers_for(input_shape)` hands it Conv2D or Conv3D (and the matching pools,
upsamplings and transposed convs), so one builder serves both without if/else. Kernel sizes
and strides given as one int apply to every spatial axis. Plugins may use it too.
"""

from dataclasses import dataclass
from typing import Any

CLASSES = {
    "Conv": ("Conv2D", "Conv3D"),
    "ConvTranspose": ("Conv2DTranspose", "Conv3DTranspose"),
    "MaxPooling": ("MaxPooling2D", "MaxPooling3D"),
    "UpSampling": ("UpSampling2D", "UpSampling3D"),
}


def spatial_dims(input_shape) -> int:
    """The number of spatial axes of an input shape without the batch axis: 2 or 3."""
    dims = len(input_shape) - 1
    if dims not in (2, 3):
        raise ValueError(
            "input_shape must be (height, width, channels) or (depth, height, width, "
            f"channels). Received: {tuple(input_shape)!r}"
        )
    return dims


@dataclass(frozen=True)
class LayersND:
    """Conv, ConvTranspose, MaxPooling and UpSampling of one rank (`dims`: 2 or 3)."""

    dims: int
    Conv: Any
    ConvTranspose: Any
    MaxPooling: Any
    UpSampling: Any


def layers_for(input_shape) -> LayersND:
    """The layer classes for `input_shape`'s rank: Conv2D & co. for 2D, Conv3D & co. for 3D."""
    from keras import layers

    dims = spatial_dims(input_shape)
    return LayersND(
        dims, **{role: getattr(layers, names[dims - 2]) for role, names in CLASSES.items()}
    )
