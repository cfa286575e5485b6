"""Look up architectures, noise models and objectives by name, saying why a name cannot be
used."""

from daeflow.errors import ArchitectureError, UsageError
from daeflow.plugin.manager import KINDS, Provided, get_plugins


def _pick(hook: str, name: str) -> Provided:
    plugins, kind = get_plugins(), KINDS[hook]
    found = plugins.provided[hook]
    if name in found and len(found[name]) == 1:
        return found[name][0]
    if name in found:
        names = " and ".join(sorted(repr(p.plugin.name) for p in found[name]))
        raise ArchitectureError(
            f"The {kind} name {name!r} is registered by both {names}. "
            "Uninstall one of them or select plugins with DAEFLOW_LOAD_PLUGINS."
        )
    failed = plugins.orphans[hook].get(name)
    if failed is not None:
        raise ArchitectureError(
            f"The {kind} {name!r} comes from plugin {failed.label()}, which failed: "
            f"{plugins.info[failed.name].error}. Fix or uninstall the plugin."
        )
    known = ", ".join(sorted(found)) or "none"
    hint = ""
    broken = [p for p in plugins.failures if p.error is not None]
    if broken:
        hint = " Plugins that failed to load (see 'daeflow plugins'): " + ", ".join(
            p.label() for p in broken
        )
        hint += "."
    raise UsageError(f"Unknown {kind} {name!r}. Choose one of: {known}.{hint}")


def all_architectures() -> dict[str, list[Provided]]:
    """Every architecture name with the plugins that provide it (more than one is an error)."""
    return get_plugins().provided["register_architectures"]


def get_architecture(name: str) -> Provided:
    """The architecture called `name`; unknown, clashing or broken names raise a clear error."""
    return _pick("register_architectures", name)


def all_noise_models() -> dict[str, list[Provided]]:
    """Every noise model name with the plugins that provide it."""
    return get_plugins().provided["register_noise_models"]


def get_noise_model(name: str) -> Provided:
    """The noise model called `name`."""
    return _pick("register_noise_models", name)


def all_objectives() -> dict[str, list[Provided]]:
    """Every training objective name with the plugins that provide it."""
    return get_plugins().provided["register_objectives"]


def get_objective(name: str) -> Provided:
    """The training objective called `name`."""
    return _pick("register_objectives", name)
