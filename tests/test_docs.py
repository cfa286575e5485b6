"""Docs in step with the code: every hook is documented with its exact signature."""

import inspect
from pathlib import Path

from daeflow import hookspecs

GUIDE = Path(__file__).parent.parent / "docs" / "plugins.md"


def hooks():
    return [
        (name, function)
        for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(function, "daeflow_spec")
    ]


def test_there_are_hooks():
    assert {name for name, _ in hooks()} == {"register_architectures", "register_noise_models"}


def test_every_hook_is_documented_with_its_signature():
    guide = GUIDE.read_text()
    for name, function in hooks():
        signature = inspect.signature(function)
        returns = inspect.formatannotation(signature.return_annotation).replace(
            "daeflow.specs.", ""
        )
        line = f"def {name}({', '.join(signature.parameters)}) -> {returns}"
        assert f"### `{line}`" in guide, f"docs/plugins.md does not document: {line}"
