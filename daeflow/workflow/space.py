"""`daeflow tune --space NAME=SPEC`: search dimensions, checked before any trial starts.

SPEC is `loguniform:LOW:HIGH`, `uniform:LOW:HIGH`, `int:LOW:HIGH[:STEP]` or `choice:A,B,...`;
NAME is a training option, `arch.<hyperparameter>` or `objective.<parameter>`. Every bound
and choice goes through the same conversion and declared limits as the option, hyperparameter
or parameter itself.
"""

from dataclasses import dataclass

from daeflow.config import OBJECTIVE_PREFIX, TRAIN_PARAMS, option_flag
from daeflow.errors import UsageError
from daeflow.plugin.hyperparams import convert
from daeflow.plugin.specs import HyperParam

KINDS = ("loguniform", "uniform", "int", "choice")
SPEC_OF = {
    "float": "uniform:LOW:HIGH or loguniform:LOW:HIGH",
    "int": "int:LOW:HIGH[:STEP]",
    "str": "choice:A,B,...",
    "bool": "choice:true,false",
}
NOT_SEARCHED = (
    "precision",
    "devices",
    "checkpoint_every",
    "keep_checkpoints",
    "jit_compile",
    "val_every",
)


@dataclass(frozen=True)
class Dimension:
    """One searched name and the values Optuna may draw for it."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    step: int | None = None
    choices: tuple = ()

    def suggest(self, trial):
        """Draw this dimension's value for an Optuna trial."""
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=self.step or 1)
        return trial.suggest_float(self.name, self.low, self.high, log=self.kind == "loguniform")

    def grid(self) -> list:
        """Every value, for the grid sampler (choices and stepped or short integer ranges)."""
        if self.kind == "choice":
            return list(self.choices)
        if self.kind == "int" and (self.step or (self.high - self.low) <= 64):
            return list(range(int(self.low), int(self.high) + 1, self.step or 1))
        raise UsageError(
            f"--sampler grid needs listed values: give {self.name} as choice:A,B or "
            f"int:LOW:HIGH:STEP. Received: {self.kind}:{self.low:g}:{self.high:g}"
        )


def parse_space(items: list[str]) -> dict[str, Dimension]:
    """['learning_rate=loguniform:1e-4:1e-2', ...] -> {name: Dimension}, shapes checked."""
    space = {}
    for item in items:
        name, sep, spec = (part.strip() for part in item.partition("="))
        kind, _, rest = spec.partition(":")
        if not sep or not name or kind not in KINDS or not rest:
            raise UsageError(
                f"--space expects NAME=SPEC with SPEC loguniform:LOW:HIGH, uniform:LOW:HIGH, "
                f"int:LOW:HIGH[:STEP] or choice:A,B,... Received: {item!r}"
            )
        if name in space:
            raise UsageError(f"--space {name} is given twice; give it once.")
        space[name] = _dimension(name, kind, rest, item)
    return space


def _dimension(name: str, kind: str, rest: str, item: str) -> Dimension:
    if kind == "choice":
        choices = tuple(v.strip() for v in rest.split(",") if v.strip())
        if not choices:
            raise UsageError(f"--space {name}: choice needs at least one value. Received: {item!r}")
        return Dimension(name, kind, choices=choices)
    parts = rest.split(":")
    if len(parts) not in ((2, 3) if kind == "int" else (2,)):
        raise UsageError(f"--space {name}: {kind} takes LOW:HIGH. Received: {item!r}")
    try:
        numbers = [float(p) if kind != "int" else int(p) for p in parts]
    except ValueError:
        what = "whole numbers" if kind == "int" else "numbers"
        raise UsageError(
            f"--space {name}: {kind} bounds must be {what}. Received: {item!r}"
        ) from None
    low, high = numbers[:2]
    step = numbers[2] if len(numbers) == 3 else None
    if not low < high:
        raise UsageError(f"--space {name}: LOW must be below HIGH. Received: {item!r}")
    if kind == "loguniform" and low <= 0:
        raise UsageError(f"--space {name}: loguniform needs LOW > 0. Received: {item!r}")
    if step is not None and step < 1:
        raise UsageError(f"--space {name}: STEP must be 1 or more. Received: {item!r}")
    return Dimension(name, kind, low, high, step)


def declared(name: str, archs: dict, objective=None) -> list[tuple[str, HyperParam]]:
    """(owner, declaration) of a searched name: the training option, the architectures' or
    the objective's (a spec)."""
    if name.startswith(OBJECTIVE_PREFIX) and objective is not None:
        key = name[len(OBJECTIVE_PREFIX) :]
        found = [(f"objective {objective.name}", p) for p in objective.params if p.name == key]
        if not found:
            allowed = ", ".join(p.name for p in objective.params) or "none"
            raise UsageError(
                f"--space {name}: the objective {objective.name} has no parameter {key!r} "
                f"(it has: {allowed}). See 'daeflow objectives'."
            )
        return found
    if name.startswith("arch."):
        key = name[5:]
        found = [
            (arch, p) for arch, spec in archs.items() for p in spec.hyperparams if p.name == key
        ]
        if not found:
            raise UsageError(
                f"--space {name}: none of the architectures ({', '.join(archs)}) has a "
                f"hyperparameter {key!r}. See 'daeflow archs'."
            )
        return found
    options = {p.name: p for p in TRAIN_PARAMS}
    if name not in options or name in NOT_SEARCHED:
        searchable = [n for n in options if n not in NOT_SEARCHED]
        raise UsageError(
            f"--space {name!r} is neither a training option that can be searched "
            f"({', '.join(searchable)}) nor arch.<hyperparameter> nor "
            f"{OBJECTIVE_PREFIX}<parameter>."
        )
    return [(option_flag(name), options[name])]


def check_space(space: dict[str, Dimension], archs: dict, objective=None) -> None:
    """Refuse, in one line, a dimension whose type or bounds its declaration does not allow."""
    for name, dim in space.items():
        for owner, param in declared(name, archs, objective):
            subject = f"--space {name} ({owner})"
            fits = {"float": ("uniform", "loguniform"), "int": ("int",)}.get(param.type, ())
            if dim.kind != "choice" and dim.kind not in fits:
                raise UsageError(f"{subject} is {param.type}: use {SPEC_OF[param.type]}.")
            values = dim.choices if dim.kind == "choice" else (dim.low, dim.high)
            for value in values:
                convert(param, value, subject)
