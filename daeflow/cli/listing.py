"""Commands that list what is installed: architectures and plugins."""

import json

import typer

from daeflow.cli.common import Json, app, guarded, print_table


def _arch_rows() -> list[dict]:
    from daeflow.plugin.registry import all_architectures

    rows = []
    for name, providers in sorted(all_architectures().items()):
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
                "size_multiple": spec.size_multiple,
                "hyperparams": [
                    {
                        "name": p.name,
                        "type": p.type,
                        "default": p.default,
                        "allowed": p.describe_range(),
                        "help": p.help,
                    }
                    for p in spec.hyperparams
                ],
            }
        )
    return rows


@app.command(rich_help_panel="Plugins")
@guarded
def archs(as_json: Json = False):
    """List the architectures you can pass to --arch, with their hyperparameters."""
    rows = _arch_rows()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        for row in rows:
            row["source"] = f"{row.get('distribution', '?')} {row.get('version', '')}"
            row["hyperparameters"] = ", ".join(
                f"{p['name']}={p['default']}" for p in row.get("hyperparams", [])
            )
            row["description"] = row.get("description") or f"ERROR: {row['error']}"
        print_table(rows, ["name", "description", "source", "hyperparameters"], "Architectures")


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
