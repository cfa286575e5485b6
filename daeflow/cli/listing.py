"""Commands that list what is installed: architectures, training objectives, noise models
and plugins."""

import json

import typer

from daeflow.cli.common import Json, app, guarded, print_table

# What an objective trains from (specs.OBJECTIVE_DATA's keys), in words.
DATA_WORDS = {
    "pairs": "clean/noisy pairs (or clean images and --noise)",
    "noisy_pairs": "two noisy shots of each scene (--noisy, --noisy2)",
    "noisy": "single noisy images (--noisy)",
    "noisy_and_model": "single noisy images and their noise model (--noisy, --noise)",
}


def _declared(params) -> list[dict]:
    return [
        {
            "name": p.name,
            "type": p.type,
            "default": p.default,
            "allowed": p.describe_range(),
            "help": p.help,
        }
        for p in params
    ]


def _rows(providers_by_name: dict, describe) -> list[dict]:
    """One row per name: its plugin and what `describe(spec)` says; clashing names as errors."""
    rows = []
    for name, providers in sorted(providers_by_name.items()):
        if len(providers) > 1:
            plugins = " and ".join(p.plugin.name for p in providers)
            rows.append({"name": name, "error": f"registered by both {plugins}; unusable"})
            continue
        spec, plugin = providers[0].spec, providers[0].plugin
        rows.append(
            {
                "name": name,
                "description": spec.description,
                "plugin": plugin.name,
                "distribution": plugin.distribution,
                "version": plugin.version,
                **describe(spec),
            }
        )
    return rows


def _arch_rows() -> list[dict]:
    from daeflow.plugin.registry import all_architectures

    return _rows(
        all_architectures(),
        lambda spec: {
            "size_multiple": spec.size_multiple,
            "dims": list(spec.dims),
            "hyperparams": _declared(spec.hyperparams),
        },
    )


def _objective_rows() -> list[dict]:
    from daeflow.plugin.registry import all_objectives

    return _rows(
        all_objectives(),
        lambda spec: {
            "data": spec.data,
            "needs": DATA_WORDS.get(spec.data, spec.data),
            "needs_clean": spec.needs_clean,
            "params": _declared(spec.params),
        },
    )


def _noise_rows() -> list[dict]:
    from daeflow.plugin.registry import all_noise_models

    return _rows(
        all_noise_models(),
        lambda spec: {
            "in_graph": spec.graph_apply is not None,
            "variance": spec.variance is not None,
            "params": _declared(spec.params),
        },
    )


def _print_rows(rows: list[dict], declared: str, extra: list[str], title: str) -> None:
    for row in rows:
        row["source"] = f"{row.get('distribution', '?')} {row.get('version', '')}"
        row[declared] = ", ".join(f"{p['name']}={p['default']}" for p in row.get(declared, []))
        row["description"] = row.get("description") or f"ERROR: {row['error']}"
    print_table(rows, ["name", "description", *extra, "source", declared], title)


@app.command(rich_help_panel="Plugins")
@guarded
def archs(as_json: Json = False):
    """List the architectures you can pass to --arch, with the data each builds networks for
    (2D images, 3D volumes) and their hyperparameters."""
    rows = _arch_rows()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        row["hyperparameters"] = row.pop("hyperparams", [])
        row["builds"] = ", ".join(f"{d}D" for d in row.get("dims", []))
    _print_rows(rows, "hyperparameters", ["builds"], "Architectures")


@app.command(rich_help_panel="Plugins")
@guarded
def objectives(as_json: Json = False):
    """List the training objectives you can pass to --objective: the data each needs and its
    parameters (--objective-param NAME=VALUE)."""
    rows = _objective_rows()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        row.setdefault("needs", "")
    _print_rows(rows, "params", ["needs"], "Training objectives")


@app.command("noise-models", rich_help_panel="Plugins")
@guarded
def noise_models(as_json: Json = False):
    """List the synthetic noise models you can pass to --noise, with their parameters
    (--noise-param NAME=VALUE; a float parameter also takes a range LO:HI, drawn per image
    or patch)."""
    rows = _noise_rows()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        row["for r2r"] = "yes" if row.get("variance") else "no"
    _print_rows(rows, "params", ["for r2r"], "Noise models")


@app.command(rich_help_panel="Plugins")
@guarded
def plugins(as_json: Json = False):
    """List every plugin, built-in or installed, its hooks and whether it loaded."""
    from daeflow.plugin.manager import get_plugins

    rows = [
        {
            "name": p.name,
            "distribution": p.distribution,
            "version": p.version,
            "hooks": list(p.hooks),
            "status": p.status,
        }
        for p in get_plugins().info.values()
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        row["hooks"] = ", ".join(row["hooks"])
    print_table(rows, ["name", "distribution", "version", "hooks", "status"], "Plugins")
