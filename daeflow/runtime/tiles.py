"""How large images are cut for inference: the default tile and margin, in one place for
the library, the CLI, the pyfunc and exported models (no heavy imports: the CLI reads it)."""

import math

TILE = 1024  # tile core size in pixels; the margins cost 13 % more pixels (27 % at 512)
MARGIN = 32  # the least context around each tile, wider than the receptive fields of most


def margin_for(radius: float | None) -> int:
    """The tile margin of a model whose output pixels see `radius` input pixels away (None:
    undeclared): at least MARGIN. Tiling rounds it up to the size multiple."""
    return MARGIN if radius is None else max(MARGIN, math.ceil(radius))
