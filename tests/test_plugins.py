"""Plugin loading and fault isolation, with real entry-point distributions on sys.path."""

import json
import types

import mlflow
import pytest
from typer.testing import CliRunner

from daeflow.cli import app
from daeflow.plugin.manager import get_plugins, reset_plugins
from daeflow.plugin.registry import all_architectures, all_noise_models, get_architecture

HOOK = "from daeflow import hookimpl\n@hookimpl\ndef {signature}:\n    return []\n"
BUILTINS = ("conv_baseline", "conv_deep", "conv_transpose", "residual", "residual_fast", "unet")

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


def invoke(*args):
    return CliRunner().invoke(app, list(args))


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def test_registry_holds_exactly_the_builtins():
    assert tuple(sorted(all_architectures())) == BUILTINS
    for name in BUILTINS:
        assert get_architecture(name).plugin.distribution == "daeflow"


def test_unknown_arch_lists_valid_names(tracking_uri):
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


OBJECTIVE = """
from daeflow import HyperParam, Objective, hookimpl

def batch(images, seed, params, variance):
    (noisy,) = images
    return noisy, noisy

@hookimpl
def register_objectives():
    return [Objective("{name}", "A test objective.", "noisy", batch,
                      (HyperParam("width", "int", 3, "How wide.", min=1),))]
"""


def test_plugins_shows_each_builtin_hook_and_objectives_lists_a_plugins_objective(site):
    rows = json.loads(invoke("plugins", "--json").stdout)
    hooks = {r["name"]: r["hooks"] for r in rows}
    assert hooks["daeflow.objectives.noise2void"] == ["register_objectives"]
    assert hooks["daeflow.data.noise"] == ["register_noise_models"]
    assert hooks["daeflow.architectures.residual"] == ["register_architectures"]
    site("daeflow-myobj", OBJECTIVE.format(name="my_objective"))
    rows = json.loads(invoke("plugins", "--json").stdout)
    (mine,) = [r for r in rows if r["distribution"] == "daeflow-myobj"]
    assert mine["hooks"] == ["register_objectives"] and mine["status"] == "ok"
    listed = {r["name"]: r for r in json.loads(invoke("objectives", "--json").stdout)}
    assert listed["my_objective"]["distribution"] == "daeflow-myobj"
    assert listed["my_objective"]["version"] == "0.1"
    assert listed["my_objective"]["params"] == [
        {"name": "width", "type": "int", "default": 3, "allowed": ">= 1", "help": "How wide."}
    ]
    assert "my_objective" in invoke("objectives").stdout


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


# Plugins that misbehave in every way a hook can; each is that plugin's failure only.

RETURNS_DICT = """
from daeflow import hookimpl

@hookimpl
def register_architectures():
    return {"conv_baseline": "not a spec"}
"""

HOOK_RAISES = """
from daeflow import hookimpl

@hookimpl
def register_architectures():
    raise RuntimeError("hook exploded")
"""

CLAIMS_A_BUILTIN = GOOD.format(arch="conv_baseline")

BAD_HYPERPARAM = """
from daeflow import Architecture, HyperParam, hookimpl

ARCH = Architecture(
    "sixteen_arch", "d", lambda s, p: None, (HyperParam("filters", "int", "sixteen"),)
)

@hookimpl
def register_architectures():
    return [ARCH]
"""

ZERO_MULTIPLE = """
from daeflow import Architecture, hookimpl

@hookimpl
def register_architectures():
    return [Architecture("zero_arch", "d", lambda s, p: None, size_multiple=0)]
"""

HALF_GOOD = """
from daeflow import Architecture, hookimpl

def build(input_shape, params):
    raise AssertionError

@hookimpl
def register_architectures():
    return [Architecture("orphan_arch", "d", build), "not a spec"]
"""

BAD_PLUGINS = {
    "daeflow-dict": (RETURNS_DICT, "register_architectures() returned dict; expected a list"),
    "daeflow-raises": (HOOK_RAISES, "register_architectures() raised RuntimeError: hook exploded"),
    "daeflow-badparam": (BAD_HYPERPARAM, "HyperParam 'filters': default must be int"),
    "daeflow-zero": (ZERO_MULTIPLE, "size_multiple must be an int >= 1"),
    "daeflow-halfgood": (HALF_GOOD, "returned a str item; expected daeflow.Architecture"),
}


@pytest.mark.parametrize("dist", sorted(BAD_PLUGINS))
def test_a_failing_hook_is_that_plugins_failure(site, dist, tracking_uri):
    code, reason = BAD_PLUGINS[dist]
    name = site(dist, code)
    rows = {r["name"]: r for r in json.loads(invoke("plugins", "--json").stdout)}
    assert rows[name]["status"].startswith("failed: ") and reason in rows[name]["status"]
    assert all(rows[p]["status"] == "ok" for p in rows if p != name)
    archs = invoke("archs", "--json")
    assert archs.exit_code == 0
    names = {row["name"] for row in json.loads(archs.stdout)}
    assert set(BUILTINS) <= names and not names & {"sixteen_arch", "zero_arch", "orphan_arch"}
    assert error_lines(archs) == [
        f"Warning: plugin '{name}' ({dist} 0.1) failed: {rows[name]['status'][8:]} "
        "(see 'daeflow plugins')."
    ]
    assert get_architecture("conv_baseline").plugin.builtin


def test_an_arch_of_a_failed_plugin_is_named_with_the_failure(site, tracking_uri):
    name = site("daeflow-halfgood", HALF_GOOD)
    result = invoke("run", "--arch", "orphan_arch")
    assert result.exit_code == 2
    assert error_lines(result)[-1] == (
        f"Error: The architecture 'orphan_arch' comes from plugin '{name}' (daeflow-halfgood "
        "0.1), which failed: register_architectures() returned a str item; expected "
        "daeflow.Architecture. Fix or uninstall the plugin."
    )
    unknown = invoke("run", "--arch", "nowhere_arch")
    assert (
        "Plugins that failed to load (see 'daeflow plugins'): 'daeflow-halfgood'"
        in (error_lines(unknown)[-1])
    )


def test_a_plugin_cannot_take_a_builtin_name(site, monkeypatch):
    name = site("daeflow-impostor", CLAIMS_A_BUILTIN)
    assert get_architecture("conv_baseline").plugin.distribution == "daeflow"
    rows = {r["name"]: r for r in json.loads(invoke("plugins", "--json").stdout)}
    assert rows[name]["status"] == (
        "conflict: architecture 'conv_baseline' is a built-in name, refused"
    )
    listing = invoke("archs", "--json")
    assert listing.exit_code == 0
    (row,) = [r for r in json.loads(listing.stdout) if r["name"] == "conv_baseline"]
    assert row["distribution"] == "daeflow"
    assert "is a built-in name, refused" in error_lines(listing)[0]
    monkeypatch.setenv("DAEFLOW_STRICT_PLUGINS", "1")
    reset_plugins()
    strict = invoke("archs")
    assert strict.exit_code == 2 and "conflict" in strict.stderr
    assert "Traceback" not in strict.output


def test_two_distributions_with_one_entry_point_name_are_both_reported(site):
    site("daeflow-one", GOOD.format(arch="arch_one"), entry="shared")
    site("daeflow-two", GOOD.format(arch="arch_two"), entry="shared")
    rows = {r["name"]: r for r in json.loads(invoke("plugins", "--json").stdout)}
    loaded = rows["shared"]["distribution"]  # whichever the file system lists first
    skipped = ({"daeflow-one", "daeflow-two"} - {loaded}).pop()
    assert rows["shared"]["status"] == f"conflict: entry point name also used by {skipped}"
    assert rows[f"shared ({skipped})"]["status"] == (
        f"failed: entry point name 'shared' is already used by {loaded}; rename one of them"
    )
    archs = set(all_architectures())
    assert ("arch_one" in archs) == (loaded == "daeflow-one") != ("arch_two" in archs)


def test_a_plugin_cannot_take_a_registered_plugin_name():
    plugins = get_plugins()
    plugins.register(types.SimpleNamespace(), name="daeflow.data.noise", dist="evil-dist")
    assert plugins.info["daeflow.data.noise"].distribution == "daeflow"
    taken = plugins.info["daeflow.data.noise (evil-dist)"]
    assert taken.error == (
        "the plugin name 'daeflow.data.noise' is already taken by daeflow; rename one of them"
    )
    assert plugins.manager.get_plugin("daeflow.data.noise") is not None
    assert "gaussian" in all_noise_models()


def test_a_hook_that_exits_is_that_plugins_failure(site):
    name = site("daeflow-exits", HOOK_EXITS)
    assert get_plugins().info[name].error == "register_architectures() raised SystemExit: 3"
    assert set(BUILTINS) <= set(all_architectures())


HOOK_EXITS = """
import sys
from daeflow import hookimpl

@hookimpl
def register_architectures():
    sys.exit(3)
"""


def test_sigterm_in_a_builder_is_not_turned_into_a_plugin_error():
    from daeflow.errors import Interrupted
    from daeflow.plugin.building import build_checked

    def stopped(input_shape, params):
        raise Interrupted("Stopped by signal SIGTERM.")

    get_plugins().register(throwaway_plugin(stopped), name="throwaway", dist="daeflow-throwaway")
    with pytest.raises(Interrupted):
        build_checked(get_architecture("bad_arch"), {}, 1, (8, 8))
