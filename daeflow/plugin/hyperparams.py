"""Convert KEY=VALUE strings into typed, validated hyperparameters."""

import math
from collections.abc import Iterable
from typing import Any

from daeflow.errors import UsageError
from daeflow.plugin.specs import HyperParam

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off"}
NONE = {"none", "null"}


def split_pairs(pairs: Iterable[str], option: str) -> dict[str, str]:
    """Turn ['a=1', 'b=2'] into {'a': '1', 'b': '2'}."""
    result = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{option} expects KEY=VALUE. Received: {pair!r}")
        result[key.strip()] = value.strip()
    return result


def convert(param: HyperParam, value: Any, subject: str) -> Any:
    """Convert one value to the declared type and check it is allowed.

    `subject` names the value in messages, e.g. "--epochs" or "Architecture 'x' parameter 'y'".
    """
    if param.default is None and (value is None or str(value).strip().lower() in NONE):
        return None
    try:
        converted = _to_type(param.type, value)
    except (ValueError, OverflowError):
        raise UsageError(f"{subject} must be {_article(param.type)}. Received: {value!r}") from None
    if not param.allows(converted):
        raise UsageError(f"{subject} must be {param.describe_range()}. Received: {value!r}")
    return converted


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


def resolve(declared: Iterable[HyperParam], given: dict[str, Any], owner: str) -> dict[str, Any]:
    """Declared defaults overridden by `given`, converted and validated."""
    by_name = {p.name: p for p in declared}
    unknown = sorted(set(given) - set(by_name))
    if unknown:
        allowed = ", ".join(sorted(by_name)) or "none"
        raise UsageError(f"{owner} has no parameter {unknown[0]!r}. Allowed parameters: {allowed}.")
    values = {name: p.default for name, p in by_name.items()}
    for name, value in given.items():
        values[name] = convert(by_name[name], value, f"{owner} parameter {name!r}")
    return values
