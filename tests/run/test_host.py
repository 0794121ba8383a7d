"""The hook specs, plugin loading (entry points, --plugin, DOFBENCH_PLUGINS), broken plugins and
duplicate names."""

import inspect
import json
import types

import pytest
import torch

from dofbench.plugin import hookspecs
from dofbench.plugin.components import Dataset, Method
from dofbench.engine.data import DataBundle, DatasetInfo
from dofbench.errors import DofbenchError
from dofbench.run.host import COMPONENT_HOOKS, Host
from dofbench.plugin.hookspecs import hookimpl


def test_every_hookspec_is_documented_and_known_to_the_host():
    specs = {n: f for n, f in vars(hookspecs).items() if n.startswith("dofbench_") and callable(f)}
    assert set(COMPONENT_HOOKS.values()) | {"dofbench_commands"} == set(specs)
    for name, fn in specs.items():
        doc = inspect.getdoc(fn) or ""
        assert len(doc) > 40, name
        if name != "dofbench_commands":
            assert "Collect-all" in doc, name


def test_builtins_come_from_entry_points():
    host = Host(use_env=False)
    sources = {r.name: r.source for r in host.records}
    assert {"subspace", "models", "embedded", "metrics", "executors"} <= set(sources)
    assert all(s.startswith("entry point") for s in sources.values())
    assert "random-subspace" in host.names("method")
    assert host.source_of("method", "random-subspace").name == "subspace"


class _Throwaway:
    """A plugin object with a method and a dataset, registered and unregistered at run time."""

    class Coord(Method):
        name = "throwaway-method"
        description = "test"

    class Tiny(Dataset):
        name = "throwaway-data"

        def info(self, params):
            return DatasetInfo((3,), 2, 4, 2, "test")

        def load(self, params, **kw):
            x = torch.randn(6, 3)
            y = torch.tensor([0, 1, 0, 1, 0, 1])
            return DataBundle(x[:4], y[:4], x[4:], y[4:], self.info(params))

    @hookimpl
    def dofbench_methods(self):
        return [self.Coord()]

    @hookimpl
    def dofbench_datasets(self):
        return [self.Tiny()]


def test_register_and_unregister_a_throwaway_plugin():
    host = Host(use_env=False)
    host.register(_Throwaway(), name="throwaway")
    assert "throwaway-method" in host.names("method")
    assert "throwaway-data" in host.names("dataset")
    assert host.source_of("dataset", "throwaway-data").name == "throwaway"
    host.unregister("throwaway")
    assert "throwaway-method" not in host.names("method")


def test_duplicate_component_names_name_both_plugins():
    host = Host(use_env=False)
    dup = types.SimpleNamespace(dofbench_methods=hookimpl(lambda: [type("M", (Method,), {"name": "random-subspace"})()]))
    host.register(dup, name="copycat")
    with pytest.raises(DofbenchError, match=r"method 'random-subspace' is registered by two plugins: 'subspace'.*'copycat'"):
        host.names("method")


def test_broken_plugins_are_reported_and_the_rest_works(tmp_path, monkeypatch, invoke):
    (tmp_path / "broken_import.py").write_text("import no_such_module_xyz\n")
    (tmp_path / "broken_hook.py").write_text(
        "from dofbench.plugin import hookimpl\n"
        "@hookimpl\ndef dofbench_models():\n    raise RuntimeError('boom in hook')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    host = Host(["broken_import"], use_env=False)
    monkeypatch.setenv("DOFBENCH_PLUGINS", "broken_hook")
    host = Host(["broken_import"])
    errors = {r.name: r.error for r in host.failures}
    assert "ModuleNotFoundError" in errors["broken_import"]
    assert "boom in hook" in errors["broken_hook"]
    assert "mlp" in host.names("model")  # everything else keeps working

    res = invoke("--plugin", "broken_import", "plugins", "--json", env={"DOFBENCH_PLUGINS": "broken_hook"})
    assert res.exit_code == 0
    records = {r["name"]: r for r in json.loads(res.output)}
    assert "no_such_module_xyz" in records["broken_import"]["error"]
    assert records["subspace"]["error"] is None
    res = invoke("--plugin", "broken_import", "list", "methods")
    assert res.exit_code == 0 and "random-subspace" in res.output


def test_plugin_by_file_path(tmp_path):
    path = tmp_path / "my_metric.py"
    path.write_text(
        "import torch\nfrom dofbench.plugin import FunctionMetric, hookimpl\n"
        "@hookimpl\ndef dofbench_metrics():\n"
        "    return [FunctionMetric(name='top2', fn=lambda o, t: (o.topk(2, -1).indices == t[:, None]).any(-1).sum())]\n")
    host = Host([str(path)], use_env=False)
    assert "top2" in host.names("metric")
    assert host.source_of("metric", "top2").source == "--plugin"


def test_plugin_commands_hook(tmp_path, monkeypatch, invoke):
    (tmp_path / "cmdplug.py").write_text(
        "import click\nfrom dofbench.plugin import hookimpl\n"
        "@hookimpl\ndef dofbench_commands(cli):\n"
        "    @cli.command(name='hello-plugin')\n    def hello():\n        click.echo('hello from a plugin')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    res = invoke("--plugin", "cmdplug", "hello-plugin")
    assert res.exit_code == 0 and "hello from a plugin" in res.output
