"""Plugin loading and fault isolation, with real entry-point distributions on sys.path."""

import itertools
import json
import textwrap
import types

import mlflow
import pytest
from typer.testing import CliRunner

from daeflow.cli import app
from daeflow.plugins import get_plugins, reset_plugins
from daeflow.registry import all_architectures, get_architecture

HOOK = "from daeflow import hookimpl\n@hookimpl\ndef {signature}:\n    return []\n"
BUILTINS = ("conv_baseline", "conv_deep", "conv_transpose", "residual", "residual_fast")
_ids = itertools.count()

GOOD = """
from daeflow import Architecture, hookimpl

def build(input_shape, params):
    import keras
    inputs = keras.Input(shape=input_shape)
    outputs = keras.layers.Conv2D(input_shape[-1], 3, padding="same", activation="sigmoid")(inputs)
    return keras.Model(inputs, outputs)

@hookimpl
def register_architectures():
    return [Architecture("{arch}", "A one-layer test architecture.", build)]
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    """Install fake distributions with entry points in group 'daeflow' onto sys.path."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.delenv("DAEFLOW_LOAD_PLUGINS", raising=False)

    def install(dist: str, code: str, entry: str | None = None) -> str:
        module = f"fake_plugin_{next(_ids)}"
        (root / f"{module}.py").write_text(textwrap.dedent(code))
        info = root / f"{dist.replace('-', '_')}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[daeflow]\n{entry or dist} = {module}\n")
        reset_plugins()
        return entry or dist

    return install


def invoke(*args):
    return CliRunner().invoke(app, list(args))


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def test_registry_holds_exactly_the_builtins():
    assert tuple(sorted(all_architectures())) == BUILTINS
    for name in BUILTINS:
        assert get_architecture(name).plugin.distribution == "daeflow"


def test_unknown_arch_lists_valid_names():
    result = invoke("run", "--arch", "nope")
    assert result.exit_code == 2
    assert error_lines(result) == [
        "Error: Unknown architecture 'nope'. Choose one of: " + ", ".join(BUILTINS) + "."
    ]


def test_good_entry_point_plugin_is_listed_with_its_distribution(site):
    site("daeflow-good", GOOD.format(arch="good_arch"))
    provided = get_architecture("good_arch")
    assert provided.plugin.distribution == "daeflow-good" and provided.plugin.version == "0.1"
    rows = json.loads(invoke("plugins", "--json").stdout)
    good = [r for r in rows if r["distribution"] == "daeflow-good"]
    assert good == [
        {
            "name": "daeflow-good",
            "distribution": "daeflow-good",
            "version": "0.1",
            "hooks": ["register_architectures"],
            "status": "ok",
        }
    ]


@pytest.mark.parametrize(
    "code, expected",
    [
        (
            "import no_such_module_xyz\n",
            "ModuleNotFoundError: No module named 'no_such_module_xyz'",
        ),
        ("def broken(:\n", "SyntaxError"),
        ("raise RuntimeError('plugin exploded')\n", "RuntimeError: plugin exploded"),
    ],
)
def test_broken_plugin_does_not_stop_the_others(site, code, expected):
    broken = site("daeflow-broken", code)
    site("daeflow-good", GOOD.format(arch="good_arch"))
    plugins = invoke("plugins", "--json")
    assert plugins.exit_code == 0
    status = {r["name"]: r["status"] for r in json.loads(plugins.stdout)}
    assert status["daeflow-good"] == "ok"
    assert status[broken].startswith("failed: ") and expected in status[broken]
    archs = invoke("archs")
    assert archs.exit_code == 0 and "good_arch" in archs.stdout and "conv_baseline" in archs.stdout
    warnings = error_lines(archs)
    assert len(warnings) == 1 and warnings[0].startswith(f"Warning: plugin '{broken}'")


def test_strict_mode_makes_a_broken_plugin_fatal(site, monkeypatch):
    site("daeflow-broken", "import no_such_module_xyz\n")
    monkeypatch.setenv("DAEFLOW_STRICT_PLUGINS", "1")
    result = invoke("archs")
    assert result.exit_code == 2
    lines = error_lines(result)
    assert len(lines) == 1 and "daeflow-broken" in lines[0] and "DAEFLOW_STRICT_PLUGINS" in lines[0]
    assert "Traceback" not in result.output


def test_load_plugins_selects_installed_plugins(site, monkeypatch):
    site("daeflow-one", GOOD.format(arch="arch_one"))
    site("daeflow-two", GOOD.format(arch="arch_two"))
    monkeypatch.setenv("DAEFLOW_LOAD_PLUGINS", "daeflow-two")
    reset_plugins()
    names = set(all_architectures())
    assert "arch_two" in names and "arch_one" not in names
    monkeypatch.setenv("DAEFLOW_LOAD_PLUGINS", "")
    reset_plugins()
    assert tuple(sorted(all_architectures())) == BUILTINS


def test_duplicate_names_fail_only_when_used_and_name_both_plugins(site):
    site("daeflow-first", GOOD.format(arch="twin"))
    site("daeflow-second", GOOD.format(arch="twin"))
    with pytest.raises(Exception, match="'daeflow-first' and 'daeflow-second'"):
        get_architecture("twin")
    assert get_architecture("conv_baseline").name == "conv_baseline"
    listing = invoke("archs")
    assert "conv_baseline" in listing.stdout
    assert any("twin" in line and "daeflow-first" in line for line in error_lines(listing))
    run = invoke("run", "--arch", "twin")
    assert run.exit_code == 2 and "registered by both" in run.stderr


@pytest.mark.parametrize(
    "code, expected",
    [
        (
            HOOK.format(signature="register_architecture()"),
            "unknown hook 'register_architecture'",
        ),
        (
            HOOK.format(signature="register_architectures(extra)"),
            "extra",
        ),
    ],
)
def test_misspelt_or_wrong_signature_hooks_are_reported_with_the_plugin(site, code, expected):
    name = site("daeflow-typo", code)
    info = get_plugins().info[name]
    assert info.error is not None and expected in info.error
    assert name in info.name
    assert set(BUILTINS) <= set(all_architectures())


def throwaway_plugin(build):
    """A plugin object, registered by hand for one test, providing 'bad_arch'."""
    from daeflow import Architecture, hookimpl

    arch = Architecture("bad_arch", "Misbehaves on purpose.", build)
    return types.SimpleNamespace(register_architectures=hookimpl(lambda: [arch]))


def _conv(input_shape, params):
    import keras

    inputs = keras.Input(shape=input_shape)
    return keras.Model(inputs, keras.layers.Conv2D(2, 3, padding="same")(inputs))


def _raises(input_shape, params):
    raise ValueError("cannot build")


def _not_a_model(input_shape, params):
    return "a string"


@pytest.mark.parametrize(
    "build, expected",
    [
        (_raises, "raised ValueError: cannot build"),
        (_not_a_model, "returned str, not a keras.Model"),
        (_conv, "must keep the input shape"),
    ],
)
def test_misbehaving_builders_are_refused_before_training(
    build, expected, tracking_uri, pair_files
):
    get_plugins().register(throwaway_plugin(build), name="throwaway", dist="daeflow-throwaway")
    clean, noisy = pair_files(n=12, size=16)
    result = invoke("run", "--arch", "bad_arch", "--clean", str(clean), "--noisy", str(noisy))
    assert result.exit_code == 2
    lines = error_lines(result)
    assert len(lines) == 1 and expected in lines[0] and "'throwaway'" in lines[0]
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []
