"""The CLI stays fast: help and listing never import TensorFlow, Keras or MLflow.

Nor pydantic, which Typer imports to coerce option values: a third of the start-up time.
"""

import json
import subprocess
import sys

import pytest

HEAVY = ("tensorflow", "keras", "mlflow", "pydantic")
PROBE = """
import sys
from daeflow.cli import app
try:
    app(sys.argv[1:], prog_name="daeflow")
except SystemExit:
    pass
print("HEAVY=" + ",".join(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)
"""


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["archs"],
        ["archs", "--json"],
        ["objectives"],
        ["objectives", "--json"],
        ["noise-models"],
        ["noise-models", "--json"],
        ["plugins"],
        ["run", "--help"],
    ],
)
def test_listing_commands_do_not_import_heavy_modules(args):
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *args], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "HEAVY=\n" in result.stderr or result.stderr.rstrip().endswith("HEAVY="), result.stderr


def test_archs_json_lists_the_builtins_with_their_plugin():
    from typer.testing import CliRunner

    from daeflow.cli import app

    result = CliRunner().invoke(app, ["archs", "--json"])
    assert result.exit_code == 0
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert set(rows) == {
        "conv_baseline",
        "conv_deep",
        "conv_transpose",
        "residual",
        "residual_fast",
        "unet",
    }
    assert rows["conv_baseline"]["distribution"] == "daeflow"
    assert rows["conv_baseline"]["plugin"] == "daeflow.architectures.conv_baseline"
    assert {p["name"]: p["default"] for p in rows["conv_baseline"]["hyperparams"]} == {
        "filters": 32,
        "kernel_size": 3,
    }


def test_objectives_json_lists_the_builtins_with_their_data_and_params():
    from typer.testing import CliRunner

    from daeflow.cli import app

    result = CliRunner().invoke(app, ["objectives", "--json"])
    assert result.exit_code == 0
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert set(rows) == {"supervised", "noise2noise", "noise2void", "r2r"}
    assert rows["noise2void"]["plugin"] == "daeflow.objectives.noise2void"
    assert rows["noise2void"]["distribution"] == "daeflow"
    assert {name: row["data"] for name, row in rows.items()} == {
        "supervised": "pairs",
        "noise2noise": "noisy_pairs",
        "noise2void": "noisy",
        "r2r": "noisy_and_model",
    }
    assert rows["r2r"]["needs"] == "single noisy images and their noise model (--noisy, --noise)"
    assert [row["needs_clean"] for row in rows.values()].count(True) == 1
    (strategy, *_) = rows["noise2void"]["params"]
    assert strategy == {
        "name": "strategy",
        "type": "str",
        "default": "uniform",
        "allowed": "one of uniform, median",
        "help": strategy["help"],
    }
    assert "N2V2" in strategy["help"]
    assert {p["name"]: p["allowed"] for p in rows["r2r"]["params"]} == {"alpha": "0.01 to 10"}
    table = CliRunner().invoke(app, ["objectives"])
    assert table.exit_code == 0
    assert "masked_pixel_percentage=0.2" in table.stdout and "alpha=0.5" in table.stdout


def test_noise_models_json_lists_the_builtins_with_their_params():
    from typer.testing import CliRunner

    from daeflow.cli import app

    result = CliRunner().invoke(app, ["noise-models", "--json"])
    assert result.exit_code == 0
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert set(rows) == {"gaussian", "poisson", "poisson_gaussian", "salt_pepper", "speckle"}
    pg = rows["poisson_gaussian"]
    assert pg["plugin"] == "daeflow.data.noise" and pg["in_graph"] and pg["variance"]
    assert {p["name"]: p["default"] for p in pg["params"]} == {"peak": 30.0, "read_sigma": 5.0}
    assert not rows["speckle"]["variance"]
