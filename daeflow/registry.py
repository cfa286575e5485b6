"""Turn hook results into name -> architecture and name -> noise model lookups."""

from dataclasses import dataclass
from typing import Any

from daeflow.errors import ArchitectureError, PluginError, UsageError
from daeflow.plugins import PluginInfo, first_line, get_plugins
from daeflow.specs import Architecture, NoiseModel


@dataclass(frozen=True)
class Provided:
    """A spec together with the plugin that provided it."""

    spec: Any
    plugin: PluginInfo

    @property
    def name(self) -> str:
        return self.spec.name


def _collect(hook_name: str, spec_type: type) -> dict[str, list[Provided]]:
    plugins = get_plugins()
    found: dict[str, list[Provided]] = {}
    caller = getattr(plugins.manager.hook, hook_name)
    for impl in caller.get_hookimpls():
        info = plugins.info.get(impl.plugin_name) or PluginInfo(impl.plugin_name, "?", "?")
        try:
            specs = impl.function() or []
        except Exception as exc:
            plugins.record_failure(info.name, info.distribution, info.version, first_line(exc))
            continue
        for spec in specs:
            if not isinstance(spec, spec_type):
                raise PluginError(
                    f"Plugin {info.name!r} returned {type(spec).__name__} from {hook_name}; "
                    f"expected daeflow.{spec_type.__name__}. Fix the plugin or uninstall it."
                )
            found.setdefault(spec.name, []).append(Provided(spec, info))
    return found


def _pick(found: dict[str, list[Provided]], name: str, kind: str) -> Provided:
    if name not in found:
        known = ", ".join(sorted(found)) or "none"
        raise UsageError(f"Unknown {kind} {name!r}. Choose one of: {known}.")
    providers = found[name]
    if len(providers) > 1:
        names = " and ".join(sorted(repr(p.plugin.name) for p in providers))
        raise ArchitectureError(
            f"The {kind} name {name!r} is registered by both {names}. "
            "Uninstall one of them or select plugins with DAEFLOW_LOAD_PLUGINS."
        )
    return providers[0]


def all_architectures() -> dict[str, list[Provided]]:
    """Every architecture name with the plugins that provide it (more than one is an error)."""
    return _collect("register_architectures", Architecture)


def get_architecture(name: str) -> Provided:
    """The architecture called `name`; unknown or duplicated names raise a clear error."""
    return _pick(all_architectures(), name, "architecture")


def all_noise_models() -> dict[str, list[Provided]]:
    """Every noise model name with the plugins that provide it."""
    return _collect("register_noise_models", NoiseModel)


def get_noise_model(name: str) -> Provided:
    """The noise model called `name`."""
    return _pick(all_noise_models(), name, "noise model")
