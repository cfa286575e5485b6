"""How large images are cut for inference: the default tile and margin, in one place for
the library, the CLI, the pyfunc and exported models (no heavy imports: the CLI reads it)."""

TILE = 1024  # tile core size in pixels; the margins cost 13 % more pixels (27 % at 512)
MARGIN = 32  # context around each tile, wider than the receptive fields of the built-ins
