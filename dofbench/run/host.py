"""The plugin host: a fresh pluggy PluginManager per CLI or API call, never a global one.

Loading order: every entry point of group ``dofbench`` (the built-ins are registered that way,
exactly like a third-party package), then modules named by ``--plugin MOD`` and by the
environment variable ``DOFBENCH_PLUGINS=mod1,mod2``. A name may be an importable module or a
path to a ``.py`` file. A plugin that fails to import, whose hook raises or returns a component
without a name is recorded in :attr:`Host.failures` (``dofbench plugins`` shows it with its error)
and everything else keeps working; two plugins registering one component name is an error naming
both. Components are looked up by kind and name (:meth:`Host.get`).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata as md
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pluggy

from dofbench.plugin import hookspecs
from dofbench.plugin.components import Component, Dataset, Method, Metric, Model
from dofbench.plugin.executor import ExecutorFactory
from dofbench.errors import DofbenchError

ENTRY_POINT_GROUP = "dofbench"
ENV_PLUGINS = "DOFBENCH_PLUGINS"

# hook name -> component kind
COMPONENT_HOOKS = {
    "model": "dofbench_models",
    "dataset": "dofbench_datasets",
    "method": "dofbench_methods",
    "metric": "dofbench_metrics",
    "executor": "dofbench_executors",
}
# the class every component of a kind is an instance of
COMPONENT_TYPES: dict[str, type] = {"model": Model, "dataset": Dataset, "method": Method, "metric": Metric,
                                    "executor": ExecutorFactory}


@dataclass
class PluginRecord:
    name: str
    source: str  # "entry point (dist x.y)" | "--plugin" | "DOFBENCH_PLUGINS"
    module: str
    version: str | None = None
    error: str | None = None
    components: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "source": self.source, "module": self.module,
            "version": self.version, "error": self.error, "components": self.components,
        }


def _short(obj: Any) -> str:
    text = repr(obj)
    return text if len(text) <= 40 else text[:37] + "..."


def _one_line(exc: BaseException) -> str:
    msg = " ".join(str(exc).split()) or exc.__class__.__name__
    return f"{exc.__class__.__name__}: {msg}"


def plugin_specs_from_env() -> list[str]:
    raw = os.environ.get(ENV_PLUGINS, "")
    return [s.strip() for s in raw.split(",") if s.strip()]


def _import_plugin(spec: str):
    """Import a plugin by module name or by path to a .py file."""
    if spec.endswith(".py") or os.sep in spec:
        path = Path(spec).expanduser().resolve()
        if not path.exists():
            raise ModuleNotFoundError(f"no plugin file {path}")
        # one module per file: two plugin files of the same name in different folders are two
        # modules (the second is then refused by its plugin name, see Host._register)
        mod_name = f"dofbench_plugin_{path.stem}_{hashlib.blake2b(str(path).encode(), digest_size=4).hexdigest()}"
        if mod_name in sys.modules:
            return sys.modules[mod_name]
        loader_spec = importlib.util.spec_from_file_location(mod_name, path)
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[mod_name] = module
        try:
            loader_spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[mod_name]
            raise
        return module
    return importlib.import_module(spec)


class Host:
    """A plugin manager plus the component registry it yields."""

    def __init__(self, plugins: Iterable[str] = (), *, use_env: bool = True, entry_points: bool = True):
        self.pm = pluggy.PluginManager("dofbench")
        self.pm.add_hookspecs(hookspecs)
        self.records: list[PluginRecord] = []
        # what a worker process needs to rebuild the same host
        self.extra_specs: list[str] = list(plugins) + (plugin_specs_from_env() if use_env else [])
        if entry_points:
            self._load_entry_points()
        for spec in plugins:
            self._load_module(spec, "--plugin")
        if use_env:
            for spec in plugin_specs_from_env():
                self._load_module(spec, ENV_PLUGINS)
        self._registry: dict[str, dict[str, tuple[Component, PluginRecord]]] | None = None

    # ------------------------------------------------------------------ loading
    def _load_entry_points(self) -> None:
        for ep in sorted(md.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist = getattr(ep, "dist", None)
            version = dist.version if dist is not None else None
            source = f"entry point ({dist.name} {version})" if dist is not None else "entry point"
            rec = PluginRecord(ep.name, source, ep.value, version)
            try:
                module = ep.load()
                self._register(module, rec)
            except BaseException as exc:  # a broken plugin (even one calling sys.exit) must not take the host down
                rec.error = _one_line(exc)
            self.records.append(rec)

    def _load_module(self, spec: str, source: str) -> None:
        rec = PluginRecord(Path(spec).stem if spec.endswith(".py") else spec, source, spec)
        try:
            module = _import_plugin(spec)
            rec.version = getattr(module, "__version__", None)
            self._register(module, rec)
        except BaseException as exc:  # SystemExit or KeyboardInterrupt at import too: a failed import
            rec.error = _one_line(exc)
        self.records.append(rec)

    def _register(self, obj: Any, rec: PluginRecord) -> None:
        if self.pm.is_registered(obj):
            return
        if self.pm.has_plugin(rec.name):
            other = next((r for r in self.records if r.name == rec.name), None)
            where = f" from {other.module} ({other.source})" if other else ""
            raise DofbenchError(f"a plugin named {rec.name!r} is already registered{where}; rename one of them")
        self.pm.register(obj, name=rec.name)

    def register(self, obj: Any, name: str, source: str = "api") -> PluginRecord:
        """Register an object (module or instance with hookimpls) at run time, e.g. in a notebook
        or a test; returns its record."""
        rec = PluginRecord(name, source, getattr(obj, "__name__", type(obj).__name__))
        try:
            self._register(obj, rec)
        except DofbenchError:
            raise
        except Exception as exc:
            rec.error = _one_line(exc)
        self.records.append(rec)
        self._registry = None
        return rec

    def unregister(self, name: str) -> None:
        self.pm.unregister(name=name)
        self.records = [r for r in self.records if r.name != name]
        self._registry = None

    # ------------------------------------------------------------------ components
    def _record_for(self, plugin_name: str) -> PluginRecord:
        for rec in self.records:
            if rec.name == plugin_name:
                return rec
        rec = PluginRecord(plugin_name, "api", plugin_name)
        self.records.append(rec)
        return rec

    def _collect(self) -> dict[str, dict[str, tuple[Component, PluginRecord]]]:
        registry: dict[str, dict[str, tuple[Component, PluginRecord]]] = {k: {} for k in COMPONENT_HOOKS}
        for rec in self.records:
            rec.components = {}
        for kind, hook_name in COMPONENT_HOOKS.items():
            hook = getattr(self.pm.hook, hook_name)
            for impl in hook.get_hookimpls():  # registration order
                rec = self._record_for(impl.plugin_name)
                try:
                    items = list(impl.function() or [])
                except BaseException as exc:
                    rec.error = f"hook {hook_name} failed: {_one_line(exc)}"
                    continue
                for comp in items:
                    base = COMPONENT_TYPES[kind]
                    if not isinstance(comp, base):
                        rec.error = (f"hook {hook_name} returned {_short(comp)} (a {type(comp).__name__}), "
                                     f"not a {base.__name__}")
                        continue
                    name = getattr(comp, "name", None)
                    if not name or not isinstance(name, str):
                        rec.error = f"hook {hook_name} returned a {kind} without a name"
                        continue
                    if name in registry[kind]:
                        other = registry[kind][name][1]
                        raise DofbenchError(
                            f"{kind} {name!r} is registered by two plugins: "
                            f"{other.name!r} ({other.source}) and {rec.name!r} ({rec.source})"
                        )
                    registry[kind][name] = (comp, rec)
                    rec.components.setdefault(kind, []).append(name)
        return registry

    @property
    def registry(self) -> dict[str, dict[str, tuple[Component, PluginRecord]]]:
        if self._registry is None:
            self._registry = self._collect()
        return self._registry

    def names(self, kind: str) -> list[str]:
        return sorted(self.registry[kind])

    def get(self, kind: str, name: str, where: str | None = None) -> Any:
        try:
            return self.registry[kind][name][0]
        except KeyError:
            available = ", ".join(self.names(kind)) or "none"
            loc = f"{where}: " if where else ""
            raise DofbenchError(f"{loc}unknown {kind} {name!r}; available: {available}") from None

    def source_of(self, kind: str, name: str) -> PluginRecord:
        self.get(kind, name)
        return self.registry[kind][name][1]

    def components(self, kind: str) -> list[tuple[Component, PluginRecord]]:
        return [self.registry[kind][n] for n in self.names(kind)]

    @property
    def failures(self) -> list[PluginRecord]:
        _ = self.registry
        return [r for r in self.records if r.error]

    def add_commands(self, cli) -> None:
        for impl in self.pm.hook.dofbench_commands.get_hookimpls():
            try:
                impl.function(cli=cli)
            except Exception as exc:
                self._record_for(impl.plugin_name).error = f"hook dofbench_commands failed: {_one_line(exc)}"
