"""Convert KEY=VALUE strings into typed, validated hyperparameters."""

import math
from collections.abc import Iterable
from typing import Any

from daeflow.errors import UsageError
from daeflow.plugin.specs import HyperParam, Range

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off"}
NONE = {"none", "null"}
RANGE_KEY = 23  # the seeded stream that parameters given as ranges are drawn from


def split_pairs(pairs: Iterable[str], option: str) -> dict[str, str]:
    """Turn ['a=1', 'b=2'] into {'a': '1', 'b': '2'}."""
    result = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{option} expects KEY=VALUE. Received: {pair!r}")
        result[key.strip()] = value.strip()
    return result


def convert(param: HyperParam, value: Any, subject: str, ranges: bool = False) -> Any:
    """Convert one value to the declared type and check it is allowed.

    `subject` names the value in messages, e.g. "--epochs" or "Architecture 'x' parameter 'y'".
    With `ranges` (a noise model's parameters), a float parameter also takes LO:HI, a Range.
    """
    text_range = isinstance(value, str) and ":" in value and param.type != "str"
    if ranges and (isinstance(value, Range) or text_range):
        return to_range(param, value, subject)
    if param.default is None and (value is None or str(value).strip().lower() in NONE):
        return None
    try:
        converted = _to_type(param.type, value)
    except (ValueError, OverflowError):
        hint = "; ranges LO:HI are for --noise-param only" if text_range else ""
        raise UsageError(
            f"{subject} must be {_article(param.type)}{hint}. Received: {value!r}"
        ) from None
    if not param.allows(converted):
        raise UsageError(f"{subject} must be {param.describe_range()}. Received: {value!r}")
    return converted


def to_range(param: HyperParam, value: Any, subject: str) -> Range:
    """LO:HI (text or a Range) as a Range within the declared bounds, LO <= HI."""
    if param.type != "float" or param.choices is not None:
        raise UsageError(
            f"{subject} takes one value, not a range; ranges LO:HI are for float "
            f"parameters. Received: {str(value)!r}"
        )
    if isinstance(value, Range):
        low, high = value.low, value.high
    else:
        parts = value.split(":")
        try:
            if len(parts) != 2:
                raise ValueError(value)
            low, high = (_to_type("float", part) for part in parts)
        except (ValueError, OverflowError):
            raise UsageError(
                f"{subject} takes a number or a range LO:HI such as 0:50. Received: {value!r}"
            ) from None
    if low > high:
        raise UsageError(f"{subject} range LO:HI needs LO <= HI. Received: {str(value)!r}")
    if not (param.allows(low) and param.allows(high)):
        raise UsageError(
            f"{subject}: both ends of the range must be {param.describe_range()}. "
            f"Received: {str(value)!r}"
        )
    return Range(low, high)


def logged(value: Any) -> Any:
    """A parameter as logged to MLflow: a Range as its text ("0:50"), others as they are."""
    return str(value) if isinstance(value, Range) else value


def has_ranges(values: dict) -> bool:
    """Whether any parameter is a Range (drawn per image or patch)."""
    return any(isinstance(v, Range) for v in values.values())


def drawn(values: dict, rng, count: int | None = None) -> dict:
    """`values` with each Range replaced by uniform draws in [low, high] from the NumPy
    generator `rng`: one float, or an array of `count` (one per piece); in the order the
    parameters are declared. Without ranges, `values` as they are and `rng` untouched."""
    return {
        name: (rng.uniform(v.low, v.high, count) if isinstance(v, Range) else v)
        for name, v in values.items()
    }


def _article(type_name: str) -> str:
    return {"int": "a whole number", "float": "a finite number", "bool": "true or false"}.get(
        type_name, "text"
    )


def _to_type(type_name: str, value: Any) -> Any:
    if type_name == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text not in TRUE | FALSE:
            raise ValueError(value)
        return text in TRUE
    if type_name == "int":
        if isinstance(value, bool):
            raise ValueError(value)
        number = float(value)
        if not math.isfinite(number) or number != int(number):
            raise ValueError(value)
        return int(number)
    if type_name == "float":
        if isinstance(value, bool):
            raise ValueError(value)
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(value)
        return number
    return str(value)


def resolve(
    declared: Iterable[HyperParam], given: dict[str, Any], owner: str, ranges: bool = False
) -> dict[str, Any]:
    """Declared defaults overridden by `given`, converted and validated; with `ranges`,
    float parameters also take LO:HI (see `convert`)."""
    by_name = {p.name: p for p in declared}
    unknown = sorted(set(given) - set(by_name))
    if unknown:
        allowed = ", ".join(sorted(by_name)) or "none"
        raise UsageError(f"{owner} has no parameter {unknown[0]!r}. Allowed parameters: {allowed}.")
    values = {name: p.default for name, p in by_name.items()}
    for name, value in given.items():
        values[name] = convert(by_name[name], value, f"{owner} parameter {name!r}", ranges)
    return values
