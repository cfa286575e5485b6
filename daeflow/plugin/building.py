"""Build an architecture and refuse what a plugin returns if it is not a usable model."""

import numpy as np

from daeflow.errors import ArchitectureError


def _blame(provided) -> str:
    plugin = provided.plugin
    return f"architecture {provided.name!r} from plugin {plugin.name!r} ({plugin.distribution})"


def build_checked(
    provided, params: dict, channels: int, probe_size: tuple[int, ...], policy: str = "float32"
):
    """Build with open spatial sizes in the Keras dtype `policy` (the output float32), then
    check that one forward pass keeps the input shape. `probe_size` is (height, width) for
    a 2D network, (depth, height, width) for a 3D one; an architecture that does not declare
    that many dimensions is refused in one line."""
    from daeflow.plugin.specs import require_dims
    from daeflow.runtime import precision
    from daeflow.runtime.backend import load_keras

    require_dims(provided.spec, len(probe_size))
    keras = load_keras()
    with precision.policy(policy):
        model = _built(provided, params, (None,) * len(probe_size) + (channels,))
        if isinstance(model, keras.Model):
            model = precision.with_float32_output(model)
    if not isinstance(model, keras.Model):
        raise ArchitectureError(
            f"The builder of {_blame(provided)} returned {type(model).__name__}, not a "
            "keras.Model. Report it to the plugin's authors or choose another --arch."
        )
    probe = np.zeros((1, *probe_size, channels), dtype=np.float32)
    try:
        output_shape = tuple(model(probe, training=False).shape)
    except Exception as exc:
        raise ArchitectureError(
            f"The model of {_blame(provided)} fails on a {probe.shape} input: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0]}. Choose another --arch."
        ) from None
    if output_shape != probe.shape:
        raise ArchitectureError(
            f"The model of {_blame(provided)} maps shape {probe.shape} to {output_shape}; a "
            "denoiser must keep the input shape. Report it to the plugin's authors."
        )
    return model


def _built(provided, params: dict, input_shape: tuple):
    try:
        return provided.spec.build(input_shape, dict(params))
    except Exception as exc:
        said = (str(exc).strip().splitlines() or [""])[0]
        raise ArchitectureError(
            f"The builder of {_blame(provided)} raised {type(exc).__name__}: {said} "
            f"(input_shape {input_shape}). "
            "Report it to the plugin's authors or choose another --arch."
        ) from None


def probe_size(
    image_shape, multiple: int, patch_size: int | tuple[int, ...] | None = None
) -> tuple[int, ...]:
    """A small size the model must accept, one per spatial axis of `image_shape` (its sizes
    then channels: (H, W, C) or (Z, Y, X, C)): the patch (one size for every axis, or one per
    axis), or the image rounded up, at most 64."""
    spatial = tuple(image_shape[:-1])
    if isinstance(patch_size, tuple | list) and len(patch_size) > 1:
        return tuple(patch_size)
    if isinstance(patch_size, tuple | list):
        patch_size = patch_size[0]
    if patch_size:
        return (patch_size,) * len(spatial)
    return tuple(
        min(-(-s // multiple) * multiple, max(multiple, 64 // multiple * multiple)) for s in spatial
    )
