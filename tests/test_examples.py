"""The example notebook runs headless (nbclient, a fresh kernel) and shows what it promises: the
comparison table, a DataFrame and an inline figure. Everything it writes stays in a temp dir."""

from __future__ import annotations

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")


@pytest.mark.slow
def test_the_example_notebook_runs_and_shows_a_comparison_a_dataframe_and_a_figure(repo_root, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    # the kernel's own files (IPython history, connection file, matplotlib's cache) go to the temp dir too
    for var, sub in (("HOME", "home"), ("IPYTHONDIR", "ipython"), ("JUPYTER_RUNTIME_DIR", "runtime"),
                     ("JUPYTER_DATA_DIR", "jupyter"), ("MPLCONFIGDIR", "mpl"), ("XDG_CACHE_HOME", "cache")):
        (tmp_path / sub).mkdir()
        monkeypatch.setenv(var, str(tmp_path / sub))
    nb = nbformat.read(repo_root / "examples" / "quickstart.ipynb", as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(work)}})
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any("<table class='compare'>" in h and "Against random-subspace" in h for h in html)  # the comparison
    assert any('class="dataframe"' in h for h in html)  # a pandas DataFrame
    assert any("image/png" in o.get("data", {}) for o in outputs)  # an inline figure
    assert "16 trials" in "".join(o.get("text", "") for o in outputs)  # the run's summary line
    assert sorted(p.name for p in work.iterdir()) == ["cache", "notebook.duckdb", "suites.toml"]
