"""Small frozen records that plugins return: architectures, hyperparameters, noise models."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PARAM_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


@dataclass(frozen=True)
class HyperParam:
    """One tunable hyperparameter: its type, default, allowed values and a line of help."""

    name: str
    type: str
    default: Any
    help: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None

    def __post_init__(self):
        if self.type not in PARAM_TYPES:
            raise ValueError(
                f"HyperParam {self.name!r}: type must be one of {sorted(PARAM_TYPES)}. "
                f"Received: type={self.type!r}"
            )

    def describe_range(self) -> str:
        """Say which values are allowed, for help and error messages."""
        if self.choices is not None:
            return "one of " + ", ".join(map(str, self.choices))
        if self.type == "bool":
            return "true or false"
        if self.min is not None and self.max is not None:
            return f"{self.min} to {self.max}"
        if self.min is not None:
            return f">= {self.min}"
        if self.max is not None:
            return f"<= {self.max}"
        return f"any {self.type}"


@dataclass(frozen=True)
class Architecture:
    """A denoising architecture: a name, a builder and what it declares about itself.

    `build(input_shape, params)` gets `(height, width, channels)` (height and width
    may be None) and a dict holding every declared hyperparameter, and returns an
    uncompiled `keras.Model` whose output shape equals its input shape.
    `size_multiple` is what input height and width must be a multiple of.
    `output_range` is "unit" when outputs lie in [0, 1] (sigmoid) or "any".
    """

    name: str
    description: str
    build: Callable[..., Any]
    hyperparams: tuple[HyperParam, ...] = ()
    size_multiple: int = 1
    output_range: str = "unit"
    channels: tuple[int, ...] | None = None

    @property
    def defaults(self) -> dict[str, Any]:
        """The declared hyperparameters with their defaults."""
        return {p.name: p.default for p in self.hyperparams}


@dataclass(frozen=True)
class NoiseModel:
    """A synthetic noise model applied to clean data on its own scale.

    `apply(clean, rng, params, data_range)` gets a float32 array, a
    `numpy.random.Generator`, a dict of the declared parameters and the data range,
    and returns a noisy float32 array of the same shape.
    """

    name: str
    description: str
    apply: Callable[..., Any]
    params: tuple[HyperParam, ...] = ()

    @property
    def defaults(self) -> dict[str, Any]:
        """The declared parameters with their defaults."""
        return {p.name: p.default for p in self.params}
