"""Build the plugin manager: built-ins first, then entry points one at a time, errors captured."""

import functools
import importlib
import importlib.metadata
import os
from dataclasses import dataclass, field

import pluggy

from daeflow import __version__, hookspecs
from daeflow.errors import PluginError

GROUP = "daeflow"
DEFAULT_PLUGINS = (
    "daeflow.architectures.conv_baseline",
    "daeflow.architectures.conv_deep",
    "daeflow.architectures.conv_transpose",
    "daeflow.architectures.residual",
    "daeflow.architectures.residual_fast",
    "daeflow.noise",
)


@dataclass(frozen=True)
class PluginInfo:
    """One plugin as `daeflow plugins` shows it."""

    name: str
    distribution: str
    version: str
    hooks: tuple[str, ...] = ()
    error: str | None = None

    @property
    def status(self) -> str:
        return "ok" if self.error is None else f"failed: {self.error}"


@dataclass
class PluginSet:
    """The plugin manager plus what is known about each plugin, loaded or failed."""

    manager: pluggy.PluginManager
    info: dict[str, PluginInfo] = field(default_factory=dict)

    @property
    def failures(self) -> list[PluginInfo]:
        return [p for p in self.info.values() if p.error is not None]

    def register(self, plugin: object, name: str, dist: str = "local", version: str = "0") -> None:
        """Register a plugin object by hand (notebooks, tests), validating its hooks."""
        self.manager.register(plugin, name=name)
        self.manager.check_pending()
        self.info[name] = PluginInfo(name, dist, version, _hook_names(self.manager, plugin))

    def unregister(self, name: str) -> None:
        """Remove a plugin registered by hand."""
        self.manager.unregister(name=name)
        self.info.pop(name, None)

    def record_failure(self, name: str, dist: str, version: str, error: str) -> None:
        """Remember a plugin that broke, fatally if DAEFLOW_STRICT_PLUGINS is set."""
        self.info[name] = PluginInfo(name, dist, version, error=error)
        if os.environ.get("DAEFLOW_STRICT_PLUGINS", "") not in ("", "0"):
            raise PluginError(
                f"Plugin {name!r} ({dist} {version}) failed to load: {error}. "
                "Fix or uninstall it, or unset DAEFLOW_STRICT_PLUGINS to skip it."
            )


def first_line(exc: BaseException) -> str:
    """The error's type and the first line of its message (pluggy's whole message, joined)."""
    text = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if isinstance(exc, pluggy.PluginValidationError):
        text = [" ".join(text)]
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _hook_names(pm: pluggy.PluginManager, plugin: object) -> tuple[str, ...]:
    callers = pm.get_hookcallers(plugin) or []
    return tuple(sorted(caller.name for caller in callers))


def _register_builtins(plugins: PluginSet) -> None:
    pm = plugins.manager
    for module_name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(module_name), name=module_name)
        plugins.info[module_name] = PluginInfo(
            module_name, "daeflow", __version__, _hook_names(pm, pm.get_plugin(module_name))
        )


def _wanted_plugins() -> set[str] | None:
    """Names from DAEFLOW_LOAD_PLUGINS, or None to load every installed plugin."""
    value = os.environ.get("DAEFLOW_LOAD_PLUGINS")
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def _load_entry_point(plugins: PluginSet, ep: importlib.metadata.EntryPoint) -> None:
    pm = plugins.manager
    dist = ep.dist.name if ep.dist else "?"
    version = ep.dist.version if ep.dist else "?"
    try:
        # ep.load() + register: pluggy's load_setuptools_entrypoints would scan every
        # installed distribution again for each plugin, and stop at the first that fails.
        pm.register(ep.load(), name=ep.name)
        pm.check_pending()
    except Exception as exc:  # a broken plugin must not take the others down
        plugin = pm.get_plugin(ep.name)
        if plugin is not None:
            pm.unregister(plugin)
        plugins.record_failure(ep.name, dist, version, first_line(exc))
        return
    plugin = pm.get_plugin(ep.name)
    if plugin is not None:
        plugins.info[ep.name] = PluginInfo(ep.name, dist, version, _hook_names(pm, plugin))


def _load_entry_points(plugins: PluginSet) -> None:
    wanted = _wanted_plugins()
    seen = set()
    for ep in importlib.metadata.entry_points(group=GROUP):
        dist = ep.dist.name if ep.dist else ""
        if ep.name in seen or (wanted is not None and not {ep.name, dist} & wanted):
            continue
        seen.add(ep.name)
        _load_entry_point(plugins, ep)


@functools.cache
def get_plugins() -> PluginSet:
    """The cached plugin set; environment switches are read here, not at import."""
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    plugins = PluginSet(pm)
    _register_builtins(plugins)
    _load_entry_points(plugins)
    return plugins


def reset_plugins() -> None:
    """Forget the cached plugin set, so the next call rebuilds it (for tests)."""
    get_plugins.cache_clear()
