"""Convert KEY=VALUE strings into typed, validated hyperparameters."""

from collections.abc import Iterable
from typing import Any

from daeflow.errors import UsageError
from daeflow.specs import HyperParam

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off"}


def split_pairs(pairs: Iterable[str], option: str) -> dict[str, str]:
    """Turn ['a=1', 'b=2'] into {'a': '1', 'b': '2'}."""
    result = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{option} expects KEY=VALUE. Received: {pair!r}")
        result[key.strip()] = value.strip()
    return result


def convert(param: HyperParam, value: Any, owner: str) -> Any:
    """Convert one value to the declared type and check it is allowed."""
    try:
        converted = _to_type(param.type, value)
    except ValueError:
        raise UsageError(
            f"{owner} parameter {param.name!r} must be {param.type}. Received: {value!r}"
        ) from None
    _check_allowed(param, converted, owner)
    return converted


def _to_type(type_name: str, value: Any) -> Any:
    if type_name == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text not in TRUE | FALSE:
            raise ValueError(value)
        return text in TRUE
    if type_name == "int":
        number = float(value)
        if number != int(number):
            raise ValueError(value)
        return int(number)
    if type_name == "float":
        return float(value)
    return str(value)


def _check_allowed(param: HyperParam, value: Any, owner: str) -> None:
    too_low = param.min is not None and value < param.min
    too_high = param.max is not None and value > param.max
    wrong_choice = param.choices is not None and value not in param.choices
    if too_low or too_high or wrong_choice:
        raise UsageError(
            f"{owner} parameter {param.name!r} must be {param.describe_range()}. "
            f"Received: {value!r}"
        )


def resolve(declared: Iterable[HyperParam], given: dict[str, Any], owner: str) -> dict[str, Any]:
    """Declared defaults overridden by `given`, converted and validated."""
    by_name = {p.name: p for p in declared}
    unknown = sorted(set(given) - set(by_name))
    if unknown:
        allowed = ", ".join(sorted(by_name)) or "none"
        raise UsageError(f"{owner} has no parameter {unknown[0]!r}. Allowed parameters: {allowed}.")
    values = {name: p.default for name, p in by_name.items()}
    for name, value in given.items():
        values[name] = convert(by_name[name], value, owner)
    return values
