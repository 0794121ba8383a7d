"""The registry of published results: schema, clear errors, loading into the store, the comparison
with measured values (`leaderboard --references`) and the leaderboard's tie-breaks."""

from __future__ import annotations

import json
import statistics

import pytest

from dofbench.results import references
from dofbench.errors import DofbenchError
from dofbench.results import intervals
from dofbench.results.store import Store




def test_packaged_registry_validates_and_starts_with_li_table_1():
    entries = references.load_registry()
    li = {e.id: e for src, e in entries if src == "li2018"}
    assert (li["mnist-fc"].value, li["mnist-fc"].D, li["mnist-fc"].rule_label) == (750, 199210, "d_int90")
    assert (li["mnist-lenet"].value, li["mnist-lenet"].D) == (290, 44426)
    assert (li["cifar10-lenet"].value, li["cifar10-lenet"].D) == (2900, 62006)
    assert all(e.citation and e.metric and e.model and e.dataset for _, e in entries)
    assert li["imagenet-squeezenet"].bound == "above"


@pytest.mark.parametrize("mutate, message", [
    (lambda t: t.replace('value = 32', 'value = 32\nvalu = 3'),
     r"reg\.toml: results\[0\] \(id 'dstar-mlp'\)\.valu: unknown key; allowed keys: id, citation"),
    (lambda t: t.replace('citation = "Someone et al., A Paper, 2030"\nmodel = "mlp"\ndataset',
                         'model = "mlp"\ndataset', 1),
     r"reg\.toml: results\[1\] \(id 'dint-mlp'\)\.citation: required field is missing"),
    (lambda t: t.replace("epsilon = 0.3\ndelta = 0.25\nvalue = 32", "value = 32"),
     r"results\[0\] \(id 'dstar-mlp'\).*rule 'd_star' needs epsilon and delta"),
    (lambda t: t.replace('rule = "d_int"', 'rule = "d_max"', 1), r"results\[1\] \(id 'dint-mlp'\)\.rule: .*d_int"),
    (lambda t: t.replace('id = "dint-mlp"', 'id = "dstar-mlp"'), r"id 'dstar-mlp' appears twice"),
    (lambda t: t + "\n[[results]\n", r"reg\.toml: malformed TOML"),
    (lambda t: "title = 'x'\n" + t, r"reg\.toml: title: unknown key; allowed keys: results"),
])
def test_a_wrong_entry_fails_with_one_clear_line(tmp_path, mutate, message, registry_text):
    path = tmp_path / "reg.toml"
    path.write_text(mutate(registry_text))
    with pytest.raises(DofbenchError, match=message) as err:
        references.load_file(path)
    assert "\n" not in str(err.value)


def test_registry_is_loaded_into_the_store_when_it_changes(tmp_path, monkeypatch, registry_text):
    reg = tmp_path / "reg"
    reg.mkdir()
    (reg / "mine.toml").write_text(registry_text)
    monkeypatch.setenv(references.ENV_REGISTRY, str(reg))
    path = tmp_path / "s.duckdb"
    store = Store(path)
    with store.write():
        pass
    got = store.query("select source, id, rule_label, value from reference_results order by id")[1]
    assert got == [("mine", "dint-mlp", "d_int50", 100.0), ("mine", "dstar-mlp", "d*(eps=0.3, delta=0.25)", 32.0),
                   ("mine", "other-width", "d*(eps=0.3, delta=0.25)", 10.0), ("mine", "variant", "d_int50", 10.0)]
    loaded = store.query("select loaded_at from reference_registry")[1]
    with Store(path).write():  # opened again, registry unchanged: nothing reloaded
        pass
    assert store.query("select loaded_at from reference_registry")[1] == loaded
    (reg / "mine.toml").write_text(registry_text.replace("value = 32", "value = 40"))
    with store.write():  # once per store open: this Store has synced already
        pass
    assert store.query("select value from reference_results where id = 'dstar-mlp'")[1] == [(32.0,)]
    with Store(path).write():
        pass
    assert store.query("select value from reference_results where id = 'dstar-mlp'")[1] == [(40.0,)]
    (reg / "mine.toml").write_text(registry_text.replace("citation", "cite", 1))
    with pytest.raises(DofbenchError, match="mine.toml: results\\[0\\]"):
        with Store(path).write():
            pass


def test_measured_next_to_published_with_ratio(tmp_path, monkeypatch, invoke, registry_text, synth):
    (tmp_path / "reg").mkdir()
    (tmp_path / "reg" / "mine.toml").write_text(registry_text)
    monkeypatch.setenv(references.ENV_REGISTRY, str(tmp_path / "reg"))
    store = synth.make_store(tmp_path / "s.duckdb", burnin=False)
    res = invoke("leaderboard", "--references", "--db", str(store.path), "--format", "json")
    assert res.exit_code == 0, res.stderr
    rows = {r["rule"]: r for r in json.loads(res.output)}
    assert set(rows) == {"d_int50", "d*(eps=0.3, delta=0.25)"}  # other-width and variant do not match
    d_star = store.query("select d_star from leaderboard where method='random-subspace' and epsilon=0.3")[1][0][0]
    star = rows["d*(eps=0.3, delta=0.25)"]
    assert (star["measured"], star["published"], star["ratio"]) == (d_star, 32.0, d_star / 32)
    assert star["D"] == 5000 and star["published_D"] == 5000 and star["citation"].startswith("Someone")
    # Li et al.'s estimator on test accuracy against the stored `full` baseline
    baseline = 0.97 - 0.05
    means = {d: statistics.mean(synth.acc("random-subspace", d, s) - 0.05 for s in synth.SEEDS) for d in synth.DIMS}
    expected = min(d for d in synth.DIMS if means[d] > 0.5 * baseline)
    dint = rows["d_int50"]
    assert (dint["measured"], dint["ratio"]) == (expected, expected / 100) and expected in synth.DIMS[1:]
    # markdown for a README; a suite filter that matches nothing prints a hint, not an error
    md = invoke("leaderboard", "--references", "--db", str(store.path), "--format", "markdown")
    assert md.output.startswith("| suite | model | dataset | method | rule |")
    none = invoke("leaderboard", "--references", "--suite", "nope", "--db", str(store.path))
    assert none.exit_code == 0 and "no stored result matches a published reference" in none.stderr


def _write(synth, store, rows, suite, delta):
    results = []
    for method, d, seed, acc, D in rows:
        r = synth.result(method, {}, d, seed, acc, tag=suite)
        r.total_params = D
        results.append(r)
    store.write_results(results, suite)
    store.register_suite(suite, "", {}, "t", [r.trial_id for r in results], "best_train_acc", [0.5], delta, True)


def test_leaderboard_ties_broken_by_fraction_then_interval_width(tmp_path, synth):
    store = Store(tmp_path / "s.duckdb")
    # same d* = 20 and D: the narrower interval for d* (relative width fit_hi / fit_lo) ranks first
    rows = [("zeta", d, s, 0.9 if d > 10 else 0.1, 1000) for d in (10, 20, 40) for s in range(4)]
    rows += [("alpha", d, s, 0.1 if d == 10 or (d == 20 and not s) else 0.9, 1000) for d in (10, 20, 40)
             for s in range(4)]
    _write(synth, store, rows, "w", 0.5)
    intervals.refresh(store, "w")
    got = store.query("select method, d_star, d_star_fit_hi / d_star_fit_lo, rank from leaderboard "
                      "where suite='w' order by rank")[1]
    assert [(m, d, r) for m, d, _, r in got] in ([("zeta", 20, 1), ("alpha", 20, 2)], [("alpha", 20, 1), ("zeta", 20, 2)])
    assert got[0][2] < got[1][2]
    # same d*: the smaller fraction d*/D ranks first
    _write(synth, store, [("alpha", 20, 0, 0.9, 1000), ("zeta", 20, 0, 0.9, 4000)], "f", 0.5)
    got = store.query("select method, d_star_fraction, rank from leaderboard where suite='f' order by rank")[1]
    assert got == [("zeta", 0.005, 1), ("alpha", 0.02, 2)]
