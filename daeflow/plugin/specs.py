"""Small frozen records that plugins return: architectures, hyperparameters, noise models,
training objectives.

Each checks itself where it is declared, so a mistake in a plugin surfaces as that
plugin's failure, naming the field, instead of as a puzzling error during training.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from daeflow.errors import UsageError
from daeflow.runtime.tiles import margin_for

PARAM_TYPES = {"int": int, "float": float, "str": str, "bool": bool}
OUTPUT_RANGES = ("unit", "any")
SPATIAL_DIMS = (2, 3)  # images (N, Y, X, C) and volumes (N, Z, Y, X, C)


def _is_type(value: Any, type_name: str) -> bool:
    if type_name == "bool":
        return isinstance(value, bool)
    if type_name == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if type_name == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, str)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class HyperParam:
    """One tunable hyperparameter: its type, default, allowed values and a line of help.

    A default of None means "off" (e.g. no patch size); such a parameter also takes "none".
    """

    name: str
    type: str
    default: Any
    help: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier():
            self._refuse("name must be a Python identifier", name=self.name)
        if self.type not in PARAM_TYPES:
            self._refuse(f"type must be one of {sorted(PARAM_TYPES)}", type=self.type)
        for bound in ("min", "max"):
            value = getattr(self, bound)
            if value is not None and (self.type not in ("int", "float") or not _is_number(value)):
                self._refuse(
                    f"{bound} must be a finite number on an int or float", **{bound: value}
                )
        if self.min is not None and self.max is not None and self.min > self.max:
            self._refuse("min must not exceed max", min=self.min, max=self.max)
        if self.choices is not None:
            if isinstance(self.choices, list):
                object.__setattr__(self, "choices", tuple(self.choices))
            if not isinstance(self.choices, tuple) or not self.choices:
                self._refuse("choices must be a non-empty tuple", choices=self.choices)
            bad = [c for c in self.choices if not _is_type(c, self.type)]
            if bad:
                self._refuse(f"every choice must be {self.type}", choices=self.choices)
        if self.default is None:
            return
        if not _is_type(self.default, self.type) or (
            self.type == "float" and not math.isfinite(self.default)
        ):
            self._refuse(f"default must be {self.type}", default=self.default)
        if not self.allows(self.default):
            self._refuse(f"default must be {self.describe_range()}", default=self.default)

    def _refuse(self, what: str, **received) -> None:
        shown = ", ".join(f"{k}={v!r}" for k, v in received.items())
        raise ValueError(f"HyperParam {self.name!r}: {what}. Received: {shown}")

    def allows(self, value: Any) -> bool:
        """Whether a value of the right type lies within the bounds and choices."""
        if value is None:
            return self.default is None
        if self.choices is not None:
            return value in self.choices
        return not (
            (self.min is not None and value < self.min)
            or (self.max is not None and value > self.max)
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


class Range:
    """A noise parameter given as a range LO:HI (LO <= HI): drawn uniformly in [low, high]
    per image or patch. Its text, `str(r)`, is what is logged and shown: "0:50".

    Not a dataclass, so that `dataclasses.asdict` of the options holding it keeps it whole.
    """

    __slots__ = ("low", "high")

    def __init__(self, low: float, high: float):
        object.__setattr__(self, "low", float(low))
        object.__setattr__(self, "high", float(high))

    def __setattr__(self, name, value):
        raise AttributeError("Range is immutable")

    def __reduce__(self):  # copies and pickles through __init__
        return Range, (self.low, self.high)

    def __eq__(self, other) -> bool:
        return isinstance(other, Range) and (self.low, self.high) == (other.low, other.high)

    def __hash__(self) -> int:
        return hash((Range, self.low, self.high))

    def __repr__(self) -> str:
        return f"Range({self.low!r}, {self.high!r})"

    def __str__(self) -> str:
        return f"{self.low:.15g}:{self.high:.15g}"


def _check_params(owner: str, params: Any) -> tuple:
    if isinstance(params, list):
        params = tuple(params)
    if not isinstance(params, tuple) or not all(isinstance(p, HyperParam) for p in params):
        raise ValueError(
            f"{owner}: hyperparameters must be a tuple of daeflow.HyperParam. Received: {params!r}"
        )
    names = [p.name for p in params]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"{owner}: hyperparameter {duplicated[0]!r} is declared twice.")
    return params


def _check_name(kind: str, name: Any) -> None:
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"{kind} name must be a Python identifier. Received: name={name!r}")


@dataclass(frozen=True)
class Architecture:
    """A denoising architecture: a name, a builder and what it declares about itself.

    `build(input_shape, params)` gets `(height, width, channels)` for images, or
    `(depth, height, width, channels)` for volumes (the spatial sizes may be None), and a
    dict holding every declared hyperparameter, and returns an uncompiled `keras.Model`
    whose output shape equals its input shape (Conv2D layers for images, Conv3D for volumes).
    `dims` are the numbers of spatial dimensions it builds: (2,) images only, (2, 3) also
    volumes. `size_multiple` is what every spatial size must be a multiple of.
    `output_range` is "unit" when outputs lie in [0, 1] (sigmoid) or "any".
    `receptive_radius(params)`, optional, says how far, in input pixels, an output pixel
    can see with these params (an upper bound, the same along every axis); tiles get at
    least this much context.
    """

    name: str
    description: str
    build: Callable[..., Any]
    hyperparams: tuple[HyperParam, ...] = ()
    size_multiple: int = 1
    output_range: str = "unit"
    channels: tuple[int, ...] | None = None
    receptive_radius: Callable[[dict], int] | None = None
    dims: tuple[int, ...] = (2,)

    def __post_init__(self):
        _check_name("Architecture", self.name)
        owner = f"Architecture {self.name!r}"
        if not callable(self.build):
            raise ValueError(f"{owner}: build must be callable. Received: build={self.build!r}")
        dims = tuple(self.dims) if isinstance(self.dims, list) else self.dims
        if not (
            isinstance(dims, tuple)
            and dims
            and all(isinstance(d, int) and not isinstance(d, bool) for d in dims)
            and set(dims) <= set(SPATIAL_DIMS)
            and len(set(dims)) == len(dims)
        ):
            raise ValueError(
                f"{owner}: dims must be a non-empty tuple of 2 and/or 3 (the spatial "
                f"dimensions it builds). Received: dims={self.dims!r}"
            )
        object.__setattr__(self, "dims", tuple(sorted(dims)))
        _check_optional_callable(owner, "receptive_radius", self.receptive_radius)
        object.__setattr__(self, "hyperparams", _check_params(owner, self.hyperparams))
        multiple = self.size_multiple
        if not isinstance(multiple, int) or isinstance(multiple, bool) or multiple < 1:
            raise ValueError(
                f"{owner}: size_multiple must be an int >= 1. Received: size_multiple={multiple!r}"
            )
        if self.output_range not in OUTPUT_RANGES:
            raise ValueError(
                f"{owner}: output_range must be one of {', '.join(OUTPUT_RANGES)}. "
                f"Received: output_range={self.output_range!r}"
            )
        if self.channels is not None:
            channels = tuple(self.channels) if isinstance(self.channels, list) else self.channels
            if not (
                isinstance(channels, tuple)
                and channels
                and all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in channels)
            ):
                raise ValueError(
                    f"{owner}: channels must be None or a tuple of positive ints. "
                    f"Received: channels={self.channels!r}"
                )
            object.__setattr__(self, "channels", channels)

    @property
    def defaults(self) -> dict[str, Any]:
        """The declared hyperparameters with their defaults."""
        return {p.name: p.default for p in self.hyperparams}

    def radius(self, params: dict) -> int | None:
        """`receptive_radius` with these (resolved) params; None when it is not declared."""
        return None if self.receptive_radius is None else self.receptive_radius(params)

    def tile_margin(self, params: dict) -> int:
        """The context tiles need with these (resolved) params: `margin_for` the radius."""
        return margin_for(self.radius(params))


DIMS_WORDS = {2: "2D images", 3: "volumes (axes with Z)"}


def require_dims(arch: Architecture, dims: int, others: list[str] | None = None) -> None:
    """Refuse, in one line (UsageError, exit 2), to build `arch` for data of `dims` spatial
    dimensions (2 or 3) that it does not declare. `others` are the architectures that build
    such data (by default every registered one that does)."""
    if dims in arch.dims:
        return
    if others is None:
        from daeflow.plugin.registry import all_architectures

        others = sorted(
            name
            for name, provided in all_architectures().items()
            if len(provided) == 1 and dims in provided[0].spec.dims
        )
    built = " and ".join(f"{d}D" for d in arch.dims)
    choose = f"choose one of {', '.join(others)}" if others else "no installed architecture fits"
    hint = ", or pass --slices to train a 2D model on the planes" if dims == 3 else ""
    raise UsageError(
        f"Architecture {arch.name!r} builds {built} networks only; for "
        f"{DIMS_WORDS.get(dims, f'{dims}D data')} {choose}{hint}."
    )


@dataclass(frozen=True)
class NoiseModel:
    """A synthetic noise model applied to clean data on its own scale.

    `apply(clean, rng, params, data_range)` gets a float32 array, a
    `numpy.random.Generator`, a dict of the declared parameters and the data range,
    and returns a noisy float32 array of the same shape.

    `graph_apply(clean, seed, params, data_range)`, optional, does the same in TensorFlow
    for training batches: `clean` a float32 tensor, `seed` a stateless RNG seed (an int64
    tensor of shape [2]) for `tf.random.stateless_*`. Without it, training noise is drawn
    with `apply`, outside the graph (slower).

    `variance(values, params, data_range)`, optional, in TensorFlow: the variance of the
    noise at each value on the data's scale (for Gaussian noise sigma squared everywhere).
    Objectives that re-noise noisy images (r2r) need it; they estimate it from noisy values.
    """

    name: str
    description: str
    apply: Callable[..., Any]
    params: tuple[HyperParam, ...] = ()
    graph_apply: Callable[..., Any] | None = None
    variance: Callable[..., Any] | None = None

    def __post_init__(self):
        _check_name("NoiseModel", self.name)
        owner = f"NoiseModel {self.name!r}"
        if not callable(self.apply):
            raise ValueError(f"{owner}: apply must be callable. Received: apply={self.apply!r}")
        for hook in ("graph_apply", "variance"):
            _check_optional_callable(owner, hook, getattr(self, hook))
        object.__setattr__(self, "params", _check_params(owner, self.params))

    @property
    def defaults(self) -> dict[str, Any]:
        """The declared parameters with their defaults."""
        return {p.name: p.default for p in self.params}

    def unit_variance(self, params: dict, data_range: float):
        """`variance` on the [0, 1] scale (images divided by the data range), with these
        parameters; None when the model cannot say its variance."""
        if self.variance is None:
            return None

        def variance(values):
            return self.variance(values * data_range, params, data_range) / data_range**2

        return variance


def _check_optional_callable(owner: str, name: str, value: Any) -> None:
    if value is not None and not callable(value):
        raise ValueError(f"{owner}: {name} must be callable or None. Received: {name}={value!r}")


# What an objective trains from, and the images its `batch` gets, in this order.
OBJECTIVE_DATA = {
    "pairs": ("noisy", "clean"),  # aligned clean/noisy pairs, or clean images and --noise
    "noisy_pairs": ("noisy", "noisy2"),  # two independent noisy shots of each scene
    "noisy": ("noisy",),  # single noisy images
    "noisy_and_model": ("noisy",),  # single noisy images whose noise model is known
}


@dataclass(frozen=True)
class Objective:
    """A training objective: what it learns from, how a batch becomes (inputs, targets),
    and the loss.

    `data` is what it needs, a key of OBJECTIVE_DATA. `batch(images, seed, params,
    variance)` runs in TensorFlow inside the input pipeline: `images` is a tuple of
    float32 tensors (pieces, height, width, channels) scaled to [0, 1], in the order
    OBJECTIVE_DATA names them; `seed` a stateless seed (int64 tensor of shape [2]) for
    `tf.random.stateless_*`, the same for the same batch however training is resumed;
    `params` the declared parameters; `variance`, for "noisy_and_model", a function giving
    the noise variance at each value on the [0, 1] scale (else None). It returns
    `(inputs, targets)`; targets may carry channels after the image's (a mask) that
    `loss` reads. `loss(targets, predictions, params)` returns a scalar tensor; None means
    the mean squared error. The same `batch` and `loss`, with seeds fixed per image, give
    the validation loss that picks the best epoch when there are no clean targets.
    """

    name: str
    description: str
    data: str
    batch: Callable[..., Any]
    params: tuple[HyperParam, ...] = ()
    loss: Callable[..., Any] | None = None

    def __post_init__(self):
        _check_name("Objective", self.name)
        owner = f"Objective {self.name!r}"
        if self.data not in OBJECTIVE_DATA:
            raise ValueError(
                f"{owner}: data must be one of {', '.join(OBJECTIVE_DATA)}. "
                f"Received: data={self.data!r}"
            )
        if not callable(self.batch):
            raise ValueError(f"{owner}: batch must be callable. Received: batch={self.batch!r}")
        _check_optional_callable(owner, "loss", self.loss)
        object.__setattr__(self, "params", _check_params(owner, self.params))

    @property
    def defaults(self) -> dict[str, Any]:
        """The declared parameters with their defaults."""
        return {p.name: p.default for p in self.params}

    @property
    def needs_clean(self) -> bool:
        """Whether it trains on clean targets (the others never see a clean image)."""
        return "clean" in OBJECTIVE_DATA[self.data]
