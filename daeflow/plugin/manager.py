"""Build the plugin set: built-ins first, then entry points one at a time, each fault isolated.

Every hook of every plugin is called once, when the set is built (hooks only return
small specs, so this is cheap). Whatever goes wrong in a plugin (it does not import,
a hook raises, returns the wrong type or an invalid spec, or it reuses a name) is
that plugin's failure: it is recorded with the reason and never stops the others.
"""

import functools
import importlib
import importlib.metadata
import os
from dataclasses import dataclass, field
from typing import Any

import pluggy

from daeflow import __version__
from daeflow.errors import PluginError
from daeflow.plugin import hookspecs
from daeflow.plugin.specs import Architecture, NoiseModel, Objective

GROUP = "daeflow"
BUILTIN_DISTRIBUTION = "daeflow"
DEFAULT_PLUGINS = (
    "daeflow.architectures.conv_baseline",
    "daeflow.architectures.conv_deep",
    "daeflow.architectures.conv_transpose",
    "daeflow.architectures.residual",
    "daeflow.architectures.residual_fast",
    "daeflow.architectures.unet",
    "daeflow.data.noise",
    "daeflow.objectives.supervised",
    "daeflow.objectives.noise2noise",
    "daeflow.objectives.noise2void",
    "daeflow.objectives.r2r",
)
SPEC_TYPES = {
    "register_architectures": Architecture,
    "register_noise_models": NoiseModel,
    "register_objectives": Objective,
}
KINDS = {  # what each hook's specs are called in messages
    "register_architectures": "architecture",
    "register_noise_models": "noise model",
    "register_objectives": "objective",
}


@dataclass(frozen=True)
class PluginInfo:
    """One plugin as `daeflow plugins` shows it."""

    name: str
    distribution: str
    version: str
    hooks: tuple[str, ...] = ()
    error: str | None = None  # the plugin failed: nothing of it is used
    conflicts: tuple[str, ...] = ()  # names of it that were refused

    @property
    def builtin(self) -> bool:
        return self.distribution == BUILTIN_DISTRIBUTION

    @property
    def ok(self) -> bool:
        return self.error is None and not self.conflicts

    @property
    def status(self) -> str:
        if self.error is not None:
            return f"failed: {self.error}"
        if self.conflicts:
            return "conflict: " + "; ".join(self.conflicts)
        return "ok"

    def label(self) -> str:
        return f"{self.name!r} ({self.distribution} {self.version})"


@dataclass(frozen=True)
class Provided:
    """A spec together with the plugin that provided it."""

    spec: Any
    plugin: PluginInfo

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass
class PluginSet:
    """The plugin manager, what each plugin provides, and what went wrong where."""

    manager: pluggy.PluginManager
    info: dict[str, PluginInfo] = field(default_factory=dict)
    provided: dict[str, dict[str, list[Provided]]] = field(
        default_factory=lambda: {hook: {} for hook in SPEC_TYPES}
    )
    orphans: dict[str, dict[str, PluginInfo]] = field(
        default_factory=lambda: {hook: {} for hook in SPEC_TYPES}
    )  # names that a failed plugin would have provided

    @property
    def failures(self) -> list[PluginInfo]:
        """Plugins that failed or had names refused."""
        return [p for p in self.info.values() if not p.ok]

    def register(self, plugin: object, name: str, dist: str = "local", version: str = "0") -> None:
        """Register a plugin object by hand (notebooks, tests), with the same checks."""
        self._adopt(plugin, PluginInfo(name, dist, version))
        self._refuse_builtin_names()

    def unregister(self, name: str) -> None:
        """Remove a plugin registered by hand."""
        if self.manager.get_plugin(name) is not None:
            self.manager.unregister(name=name)
        self.info.pop(name, None)
        for by_name in self.provided.values():
            for key in list(by_name):
                by_name[key] = [p for p in by_name[key] if p.plugin.name != name]
                if not by_name[key]:
                    del by_name[key]

    def _adopt(self, plugin: object, info: PluginInfo) -> None:
        """Register a plugin and collect its specs, or record why it failed."""
        pm = self.manager
        if pm.get_plugin(info.name) is not None or info.name in self.info:
            holder = self.info.get(info.name)
            owner = holder.distribution if holder else "another plugin"
            self._fail(
                PluginInfo(f"{info.name} ({info.distribution})", info.distribution, info.version),
                f"the plugin name {info.name!r} is already taken by {owner}; rename one of them",
            )
            return
        registered = False
        try:
            pm.register(plugin, name=info.name)
            registered = True
            pm.check_pending()
        except Exception as exc:
            if registered:
                pm.unregister(name=info.name)
            self._fail(info, first_line(exc))
            return
        hooks = tuple(sorted(caller.name for caller in pm.get_hookcallers(plugin) or []))
        info = PluginInfo(info.name, info.distribution, info.version, hooks)
        collected, error = _collect(pm, info)
        if error is not None:
            pm.unregister(name=info.name)
            for hook, specs in collected.items():
                for spec in specs:
                    self.orphans[hook][spec.name] = info
            self._fail(info, error)
            return
        self.info[info.name] = info
        for hook, specs in collected.items():
            for spec in specs:
                self.provided[hook].setdefault(spec.name, []).append(Provided(spec, info))

    def _fail(self, info: PluginInfo, error: str) -> None:
        self.info[info.name] = PluginInfo(
            info.name, info.distribution, info.version, info.hooks, error=error
        )

    def _refuse_builtin_names(self) -> None:
        """A third-party spec that reuses a built-in's name is refused; the built-in keeps it."""
        for hook, by_name in self.provided.items():
            kind = KINDS[hook]
            for name, providers in by_name.items():
                if not any(p.plugin.builtin for p in providers):
                    continue
                for refused in [p for p in providers if not p.plugin.builtin]:
                    self._add_conflict(
                        refused.plugin.name, f"{kind} {name!r} is a built-in name, refused"
                    )
                by_name[name] = [p for p in providers if p.plugin.builtin]
        for by_name in self.provided.values():
            for name, providers in by_name.items():
                if len(providers) > 1:
                    names = " and ".join(sorted(repr(p.plugin.name) for p in providers))
                    for p in providers:
                        self._add_conflict(p.plugin.name, f"{name!r} is provided by both {names}")

    def _add_conflict(self, plugin_name: str, conflict: str) -> None:
        info = self.info[plugin_name]
        if conflict not in info.conflicts:
            self.info[plugin_name] = PluginInfo(
                info.name,
                info.distribution,
                info.version,
                info.hooks,
                info.error,
                (*info.conflicts, conflict),
            )


def first_line(exc: BaseException) -> str:
    """The error's type and the first line of its message (pluggy's whole message, joined)."""
    text = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if isinstance(exc, pluggy.PluginValidationError):
        text = [" ".join(text)]
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _collect(pm: pluggy.PluginManager, info: PluginInfo) -> tuple[dict[str, list], str | None]:
    """Call each hook of one plugin; the specs it returned, and the first thing wrong."""
    collected: dict[str, list] = {}
    for hook, spec_type in SPEC_TYPES.items():
        for impl in getattr(pm.hook, hook).get_hookimpls():
            if impl.plugin_name != info.name:
                continue
            try:
                result = impl.function()
            except (Exception, SystemExit) as exc:  # a plugin must not end daeflow
                return collected, f"{hook}() raised {first_line(exc)}"
            result = [] if result is None else result
            if not isinstance(result, list | tuple):
                return collected, (
                    f"{hook}() returned {type(result).__name__}; expected a list of "
                    f"daeflow.{spec_type.__name__}"
                )
            wrong = [item for item in result if not isinstance(item, spec_type)]
            collected[hook] = [item for item in result if isinstance(item, spec_type)]
            if wrong:
                return collected, (
                    f"{hook}() returned a {type(wrong[0]).__name__} item; expected "
                    f"daeflow.{spec_type.__name__}"
                )
            names = [item.name for item in result]
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                return collected, f"{hook}() returned {twice[0]!r} twice"
    return collected, None


def _register_builtins(plugins: PluginSet) -> None:
    for module_name in DEFAULT_PLUGINS:
        plugins._adopt(
            importlib.import_module(module_name),
            PluginInfo(module_name, BUILTIN_DISTRIBUTION, __version__),
        )


def _wanted_plugins() -> set[str] | None:
    """Names from DAEFLOW_LOAD_PLUGINS, or None to load every installed plugin."""
    value = os.environ.get("DAEFLOW_LOAD_PLUGINS")
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def _load_entry_points(plugins: PluginSet) -> None:
    wanted = _wanted_plugins()
    first_dist: dict[str, str] = {}
    for ep in importlib.metadata.entry_points(group=GROUP):
        dist = ep.dist.name if ep.dist else "?"
        version = ep.dist.version if ep.dist else "?"
        if wanted is not None and not {ep.name, dist} & wanted:
            continue
        if ep.name in first_dist:
            # Both must be reported: the second would otherwise vanish without a word.
            other = first_dist[ep.name]
            plugins._fail(
                PluginInfo(f"{ep.name} ({dist})", dist, version),
                f"entry point name {ep.name!r} is already used by {other}; rename one of them",
            )
            plugins._add_conflict(ep.name, f"entry point name also used by {dist}")
            continue
        first_dist[ep.name] = dist
        info = PluginInfo(ep.name, dist, version)
        try:
            # ep.load() + register: pluggy's load_setuptools_entrypoints would scan every
            # installed distribution again for each plugin, and stop at the first that fails.
            plugin = ep.load()
        except (Exception, SystemExit) as exc:  # a broken plugin must not take the others down
            plugins._fail(info, first_line(exc))
            continue
        plugins._adopt(plugin, info)


def _strict() -> bool:
    return os.environ.get("DAEFLOW_STRICT_PLUGINS", "") not in ("", "0")


@functools.cache
def get_plugins() -> PluginSet:
    """The cached plugin set; environment switches are read here, not at import."""
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    plugins = PluginSet(pm)
    _register_builtins(plugins)
    _load_entry_points(plugins)
    plugins._refuse_builtin_names()
    if _strict() and plugins.failures:
        bad = plugins.failures[0]
        raise PluginError(
            f"Plugin {bad.label()} {bad.status}. Fix or uninstall it, or unset "
            "DAEFLOW_STRICT_PLUGINS to go on without it."
        )
    return plugins


def reset_plugins() -> None:
    """Forget the cached plugin set, so the next call rebuilds it (for tests)."""
    get_plugins.cache_clear()


def plugin_module_prefixes() -> set[str]:
    """Where a model's layer modules may come from: the top-level packages of installed
    distributions with an entry point in the group 'daeflow', and daeflow.architectures."""
    points = importlib.metadata.entry_points(group=GROUP)
    dists = {ep.dist.name for ep in points if ep.dist}
    roots = {ep.module.split(".")[0] for ep in points}
    for root, owners in importlib.metadata.packages_distributions().items():
        if dists & set(owners):
            roots.add(root)
    roots.discard("daeflow")  # daeflow's own modules are not layer modules, but for these:
    return roots | {"daeflow.architectures"}
