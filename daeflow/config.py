"""The validated options of a run: what is logged as MLflow params.

Training options are declared once, as `HyperParam`s, so that `daeflow run`'s flags,
`daeflow sweep --param` values and architecture hyperparameters are all converted
and checked by the same code.
"""

import math
from dataclasses import asdict, dataclass, field, make_dataclass
from typing import Any

from daeflow.errors import UsageError
from daeflow.plugin.hyperparams import convert, logged
from daeflow.plugin.specs import PARAM_TYPES, HyperParam
from daeflow.runtime.devices import parse_devices
from daeflow.runtime.precision import PRECISIONS

SCHEDULES = ("constant", "cosine", "step")
OBJECTIVE_PREFIX = "objective."  # the objective's parameters, as params and sweep keys
NOISE_PREFIX = "noise."  # the noise model's parameters, as params
DEFAULT_EPOCHS = 20  # without --epochs; with --time-budget alone the budget ends training
UNBOUNDED = 10**9  # the epoch limit Keras is given when the time budget alone ends training


TRAIN_PARAMS = (
    HyperParam(
        "objective",
        "str",
        "supervised",
        "What to learn from: supervised (clean targets), noise2noise, noise2void, r2r or a "
        "plugin's (see 'daeflow objectives').",
    ),
    HyperParam(
        "epochs",
        "int",
        None,
        f"Maximum number of epochs (default {DEFAULT_EPOCHS}; none with --time-budget).",
        min=1,
    ),
    HyperParam("batch_size", "int", 32, "Images per training batch.", min=1),
    HyperParam("learning_rate", "float", 1e-3, "Adam learning rate.", min=0),
    HyperParam("lr_schedule", "str", "constant", "constant, cosine or step.", choices=SCHEDULES),
    HyperParam(
        "lr_warmup",
        "float",
        0.0,
        "Fraction of training (epochs or --time-budget) in which the rate rises from 0.",
        min=0,
        max=0.5,
    ),
    HyperParam(
        "ema_momentum",
        "float",
        0.0,
        "Validate, keep and log the moving average of the weights, updated each step with "
        "this momentum (e.g. 0.999); 0: the weights as trained.",
        min=0,
        max=0.9999,
    ),
    HyperParam(
        "patch_size",
        "str",
        None,
        "Train on random crops: P (P on every axis) or ZxYxX for volumes, e.g. 16x64x64.",
    ),
    HyperParam(
        "patches_per_image", "int", 1, "Random crops per image and epoch (--patch-size).", min=1
    ),
    HyperParam("augment", "bool", False, "Random flips and 90-degree rotations."),
    HyperParam("time_budget", "str", None, "Stop after the epoch that passes e.g. 90s, 10m."),
    HyperParam(
        "early_stopping", "int", None, "Stop after N epochs without better val_psnr.", min=1
    ),
    HyperParam("jit_compile", "bool", None, "XLA compilation (default: Keras's choice)."),
    HyperParam(
        "precision",
        "str",
        "auto",
        "float32, mixed_bfloat16, mixed_float16, or auto: the fastest this machine has.",
        choices=PRECISIONS,
    ),
    HyperParam(
        "devices", "str", "all", "all, cpu, or N: train on N devices at once (MirroredStrategy)."
    ),
    HyperParam(
        "val_every",
        "int",
        1,
        "Validate every N epochs and after the last one (fewer pauses in short epochs).",
        min=1,
    ),
    HyperParam(
        "checkpoint_every", "str", "1", "Checkpoint every N epochs, or every duration (10m)."
    ),
    HyperParam(
        "keep_checkpoints", "int", 0, "Checkpoints kept besides the newest and the best.", min=0
    ),
)
TRAIN_PARAM_NAMES = tuple(p.name for p in TRAIN_PARAMS)


def option_flag(name: str) -> str:
    """The command-line flag of an option: learning_rate -> --learning-rate."""
    return "--" + name.replace("_", "-")


def parse_duration(text: str | float | None) -> float | None:
    """'90', '90s', '10m' or '1.5h' as seconds (a number is already seconds; 'none': None)."""
    if isinstance(text, str) and text.strip().lower() in ("none", "null"):
        return None
    if text is None or isinstance(text, int | float):
        seconds = text
    else:
        units = {"s": 1, "m": 60, "h": 3600}
        text = text.strip()
        number, unit = (text[:-1], text[-1]) if text[-1:] in units else (text, "s")
        try:
            seconds = float(number) * units[unit]
        except ValueError:
            raise UsageError(
                f"--time-budget must look like 90s, 10m or 1.5h. Received: {text!r}"
            ) from None
    if seconds is not None and not (math.isfinite(seconds) and seconds > 0):
        raise UsageError(f"--time-budget must be a positive duration. Received: {text!r}")
    return None if seconds is None else float(seconds)


def parse_patch_size(text: str | int | None) -> int | str | None:
    """--patch-size as it is kept and logged: one number (every spatial axis) as an int,
    ZxYxX (one number per axis of a volume) as its text, "16x64x64"; None for whole images."""
    if text is None or isinstance(text, int):
        parts = [text] if text is not None else []
    else:
        try:
            parts = [int(part) for part in str(text).lower().split("x")]
        except ValueError:
            parts = []
        if len(parts) not in (1, 3):
            parts = [0]
    if text is not None and (not parts or min(parts) < 1):
        raise UsageError(
            "--patch-size must be one positive number (every axis) or ZxYxX for volumes, "
            f"e.g. 64 or 16x64x64. Received: {text!r}"
        )
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else "x".join(map(str, parts))


def patch_shape(patch_size: int | str | None, dims: int) -> tuple[int, ...] | None:
    """The patch's size on each of `dims` spatial axes (2 for images, 3 for volumes), from
    --patch-size as parse_patch_size keeps it; None for whole images. ZxYxX of 2D data is
    refused."""
    if patch_size is None:
        return None
    sizes = tuple(int(part) for part in str(patch_size).split("x"))
    if len(sizes) == 1:
        return sizes * dims
    if len(sizes) != dims:
        raise UsageError(
            f"--patch-size {patch_size} gives one size per axis of a volume (ZxYxX), but the "
            "data are 2D images. Pass one number, e.g. --patch-size 64."
        )
    return sizes


DATA_PARAMS = (
    HyperParam("clean", "str", None, "Clean images, .npy of shape (N, H, W[, C])."),
    HyperParam(
        "noisy", "str", None, "Noisy images aligned with --clean (or alone, without clean)."
    ),
    HyperParam("noisy2", "str", None, "A second noisy shot of each --noisy image (noise2noise)."),
    HyperParam("data", "str", None, "An .npz holding the arrays."),
    HyperParam(
        "axes",
        "str",
        None,
        "The files' axes in their order, from S T C Z Y X (e.g. ZYX, SYX, TCZYX); default: "
        "from OME/ImageJ metadata, YX for 2-D images, (N, H, W[, C]) for .npy.",
    ),
    HyperParam("clean_key", "str", "clean", "Key of the clean array in --data."),
    HyperParam("noisy_key", "str", "noisy", "Key of the noisy array in --data."),
    HyperParam("noisy2_key", "str", "noisy2", "Key of the second noisy array in --data."),
    HyperParam(
        "noise",
        "str",
        None,
        "Synthetic noise for clean-only data, or the known noise of --noisy data (r2r): "
        "gaussian, poisson, ...",
    ),
    HyperParam(
        "groups", "str", None, ".npy of one group id per image; a group stays in one split."
    ),
    HyperParam("val_data", "str", None, "Separate validation .npz instead of --val-fraction."),
    HyperParam("test_data", "str", None, "Separate test .npz instead of --test-fraction."),
    HyperParam("val_fraction", "float", 0.1, "Fraction of images for validation."),
    HyperParam("test_fraction", "float", 0.1, "Fraction of images for the final test."),
    HyperParam(
        "data_range",
        "float",
        None,
        "Full-scale value (default: uint8 255; uint16 the 10-, 12-, 14- or 16-bit scale the "
        "data fit; floats 1 or observed).",
    ),
    HyperParam("pad", "bool", False, "Pad images to the size multiple the architecture needs."),
    HyperParam(
        "slices", "bool", False, "Train a 2D model on the Z planes of volumes (N, Z, Y, X, C)."
    ),
    HyperParam(
        "alignment_check", "bool", True, "Check that clean[i] and noisy[i] belong together."
    ),
)
DATA_PATHS = (
    "clean",
    "noisy",
    "noisy2",
    "data",
    "groups",
    "val_data",
    "test_data",
)  # files, on the CLI


def python_type(param: HyperParam):
    """The Python type of a declared option's values (optional when its default is None)."""
    kind = PARAM_TYPES[param.type]
    return kind | None if param.default is None else kind


def _fields(params) -> list:
    return [(p.name, python_type(p), field(default=p.default)) for p in params]


class _DataChecks:
    def __post_init__(self):
        for param in DATA_PARAMS:
            value = getattr(self, param.name)
            setattr(self, param.name, convert(param, value, option_flag(param.name)))
        if self.data_range is not None and not (
            math.isfinite(self.data_range) and self.data_range > 0
        ):
            raise UsageError(f"--data-range must be a positive number. Received: {self.data_range}")


# Where the images come from and how they are split: DATA_PARAMS, and the noise model's
# parameters (--noise-param, checked by the noise model's own declaration).
DataOptions = make_dataclass(
    "DataOptions",
    [*_fields(DATA_PARAMS), ("noise_params", dict[str, Any], field(default_factory=dict))],
    bases=(_DataChecks,),
    namespace={"__module__": __name__},
)


class _TrainChecks:
    def __post_init__(self):
        for param in TRAIN_PARAMS:
            value = getattr(self, param.name)
            if param.name == "time_budget":
                self.time_budget = parse_duration(value)
                continue
            if param.name == "patch_size":
                self.patch_size = parse_patch_size(convert(param, value, "--patch-size"))
                continue
            setattr(self, param.name, convert(param, value, option_flag(param.name)))
        if self.epochs is None and self.time_budget is None:
            self.epochs = DEFAULT_EPOCHS  # logged as trained; None (logged) means no epoch limit
        if self.learning_rate <= 0:
            raise UsageError(
                f"--learning-rate must be a positive number. Received: {self.learning_rate}"
            )
        self.checkpoint_schedule()  # refuse what cannot be used, now
        parse_devices(self.devices)

    @property
    def epoch_limit(self) -> int:
        """The epochs training may run: --epochs, or no limit when the time budget alone
        ends training."""
        return UNBOUNDED if self.epochs is None else self.epochs

    def epochs_asked(self) -> str:
        """The length asked for, in words: '20', or 'until 30s' for a time budget alone."""
        return str(self.epochs) if self.epochs is not None else f"until {self.time_budget:g}s"

    def checkpoint_schedule(self) -> tuple[int, float | None]:
        """(every N epochs, or None) and (every S seconds, or None) from --checkpoint-every."""
        text = str(self.checkpoint_every).strip()
        if text[-1:] in ("s", "m", "h"):
            return 1, parse_duration(text)
        try:
            epochs = int(text)
        except ValueError:
            epochs = 0
        if epochs < 1:
            raise UsageError(
                f"--checkpoint-every must be a number of epochs (>= 1) or a duration such as "
                f"10m. Received: {text!r}"
            )
        return epochs, None

    @classmethod
    def from_strings(cls, values: dict[str, str], seed: int, objective_params=None):
        """Options from NAME=VALUE strings (sweep grids); unknown names are refused."""
        unknown = sorted(set(values) - set(TRAIN_PARAM_NAMES))
        if unknown:
            raise UsageError(
                f"{unknown[0]!r} is not a training option. Choose from: "
                f"{', '.join(TRAIN_PARAM_NAMES)}, arch.<hyperparameter> or "
                f"{OBJECTIVE_PREFIX}<parameter>."
            )
        return cls(**values, seed=seed, objective_params=dict(objective_params or {}))


# How the network is trained: TRAIN_PARAMS, each value converted and checked by its
# declaration, the objective's parameters (--objective-param, checked by the objective's
# own declaration) and the seed (a command option of its own).
TrainOptions = make_dataclass(
    "TrainOptions",
    [
        *_fields(TRAIN_PARAMS),
        ("objective_params", dict[str, Any], field(default_factory=dict)),
        ("seed", int, field(default=0)),
    ],
    bases=(_TrainChecks,),
    namespace={"__module__": __name__},
)


def logged_noise_params(noise_params: dict) -> dict:
    """The noise model's parameters as params: prefixed, a range as its text ("0:50")."""
    return {f"{NOISE_PREFIX}{k}": logged(v) for k, v in noise_params.items()}


def noise_params_of(params: dict) -> dict:
    """The noise model's parameters from a run's flat params, as logged (strings)."""
    return {k[len(NOISE_PREFIX) :]: v for k, v in params.items() if k.startswith(NOISE_PREFIX)}


def described_noise(params: dict) -> str | None:
    """The synthetic noise of a run in words, its parameters as given ("gaussian sigma=5:30"),
    from its flat params (logged strings or RunConfig.params()); None without --noise."""
    model = params.get("data.noise")
    if model in (None, "None", ""):
        return None
    given = " ".join(f"{k}={v}" for k, v in sorted(noise_params_of(params).items()))
    return f"{model} {given}".strip()


@dataclass
class RunConfig:
    """Everything one `daeflow run` needs."""

    arch: str
    arch_params: dict[str, Any] = field(default_factory=dict)
    data: DataOptions = field(default_factory=DataOptions)
    train: TrainOptions = field(default_factory=TrainOptions)
    experiment: str = "daeflow"
    run_name: str | None = None
    tracking_uri: str | None = None
    quiet: bool = False

    def params(self) -> dict[str, Any]:
        """Flat params for MLflow: training and data options, arch and objective params
        prefixed."""
        flat = {"arch": self.arch}
        flat.update({f"arch.{k}": v for k, v in self.arch_params.items()})
        train = asdict(self.train)
        objective_params = train.pop("objective_params")
        flat.update(train)
        flat.update({f"{OBJECTIVE_PREFIX}{k}": v for k, v in objective_params.items()})
        data = asdict(self.data)
        noise_params = data.pop("noise_params")
        flat.update({f"data.{k}": v for k, v in data.items()})
        # A range is logged as its text, "0:50", and read back by the noise model's declaration.
        flat.update(logged_noise_params(noise_params))
        return flat

    @classmethod
    def from_params(cls, params: dict[str, str], experiment: str) -> "RunConfig":
        """The config of a logged run, from its MLflow params (strings), to resume it."""
        data = {p.name: params[f"data.{p.name}"] for p in DATA_PARAMS if f"data.{p.name}" in params}
        # converted again by the noise model's declaration
        data["noise_params"] = noise_params_of(params)
        train = {
            name: params[name]
            for name in TRAIN_PARAM_NAMES
            if name in params and params[name] != "None"
        }
        objective_params = {
            k[len(OBJECTIVE_PREFIX) :]: v
            for k, v in params.items()
            if k.startswith(OBJECTIVE_PREFIX)
        }  # converted again by the objective's declaration
        return cls(
            arch=params["arch"],
            arch_params={k[5:]: v for k, v in params.items() if k.startswith("arch.")},
            data=DataOptions(**data),
            train=TrainOptions.from_strings(
                train, seed=int(params.get("seed", 0)), objective_params=objective_params
            ),
            experiment=experiment,
        )
