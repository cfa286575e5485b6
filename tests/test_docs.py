"""Docs in step with the code: hooks documented with their signatures; commands work as written."""

import inspect
from pathlib import Path

from daeflow.plugin import hookspecs

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
            "daeflow.plugin.specs.", ""
        )
        line = f"def {name}({', '.join(signature.parameters)}) -> {returns}"
        assert f"### `{line}`" in guide, f"docs/plugins.md does not document: {line}"


def test_the_closing_hint_is_a_command_that_runs_as_printed(tmp_path):
    """After a run daeflow says how to open the UI; that command must work where it is printed."""
    import shlex
    import subprocess

    from daeflow.cli.training import ui_hint

    hint = ui_hint(f"sqlite:///{tmp_path}/mlflow.db")
    command = hint.split(": ", 1)[1]
    assert command.endswith(f"ui --tracking-uri sqlite:///{tmp_path}/mlflow.db")
    program = shlex.split(command)[: -len(["ui", "--tracking-uri", "x"])]
    done = subprocess.run([*program, "ui", "--help"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Start the MLflow UI" in done.stdout


def test_the_readme_activates_the_venv_before_bare_daeflow_commands():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    first_bare = readme.index("\ndaeflow ")
    assert readme.index("make run") < readme.index(". .venv/bin/activate") < first_bare
