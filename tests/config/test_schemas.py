"""Suite schema errors (one line, TOML path, what is allowed), pinned trial hashes and seeds."""

from pathlib import Path

import pytest

from dofbench.config.identity import derive_seed
from dofbench.config.suites import get_suite, load_suite_file, parse_suite_text
from dofbench.errors import DofbenchError
from dofbench.run.host import Host
from dofbench.run.resolve import resolve_suite

TINY_SUITE = (Path(__file__).parents[1] / "data" / "tiny.toml").read_text()


def resolve_text(text, name="tiny"):
    host = Host(use_env=False)
    sf = parse_suite_text(text, "suites.toml")
    return resolve_suite(host, name, get_suite(sf, name))


BAD = [
    ("[suites.tiny\nmodels = [", r"suites.toml: malformed TOML"),
    (TINY_SUITE.replace('name = "mlp"', 'name = "mlpp"'),
     r"suites.tiny.models\[0\].name: unknown model 'mlpp'; available: .*mlp"),
    (TINY_SUITE.replace("hidden = [16]", 'hidden = "wide"'),
     r"suites.tiny.models\[0\].params.hidden: Input should be a valid list \(got 'wide'\)"),
    (TINY_SUITE.replace("hidden = [16]", "hidden = [16], depth = 3"),
     r"suites.tiny.models\[0\].params.depth: unknown key; allowed keys: hidden, activation, init"),
    (TINY_SUITE.replace("seeds    = 2", "seeds = 2\nwarmup = 1"),
     r"suites.toml: suites.tiny.warmup: unknown key; allowed keys: description, models"),
    (TINY_SUITE.replace("dims     = [2, 64]", "dims = [0, 64]"),
     r"suites.tiny.dims\[0\]: Input should be greater than or equal to 1 \(got 0\)"),
    (TINY_SUITE.replace("dims     = [2, 64]", "dims = [-3]"), r"suites.tiny.dims\[0\]: Input should be greater than or equal to 1"),
    (TINY_SUITE.replace("dims     = [2, 64]", "dims = [2, 99999]"),
     r"suites.tiny.dims: d=99999 exceeds the limit 826 of method 'random-subspace' .*allowed: 1 ≤ d ≤ 826"),
    (TINY_SUITE.replace('{ name = "random-subspace" }', '{ name = "random-subspace", params = { projection = "magic" } }'),
     r"suites.tiny.methods\[0\].params.projection: Input should be 'dense', 'orthonormal', .* \(got 'magic'\)"),
    (TINY_SUITE.replace('metric   = "best_train_acc"', 'metric = "train_f1"'),
     r"suites.tiny.threshold.metric: unknown metric 'train_f1'; allowed: .*acc, loss"),
    (TINY_SUITE.replace("delta    = 0.1", "delta = 1.5"), r"suites.tiny.threshold.delta: Input should be less than 1"),
    (TINY_SUITE.replace("delta    = 0.1", "delta = 0.1\nmin_seeds = 3"),
     r"suites.tiny.threshold.min_seeds: must be at most the suite's 2 seeds \(got 3\); allowed: 1 ≤ min_seeds ≤ 2"),
    (TINY_SUITE.replace('{ name = "random-subspace" }', '{ name = "random-subspace", params = { projection = "auto", nested = true } }'),
     r"suites.tiny.methods\[0\].params: nested = true needs a fixed projection \(dense, .*\), not 'auto'"),
]


@pytest.mark.parametrize("text,pattern", BAD)
def test_bad_suites_give_one_line_errors(text, pattern):
    with pytest.raises(DofbenchError, match=pattern) as exc:
        resolve_text(text)
    assert "\n" not in str(exc.value)


def test_unknown_suite_lists_available(tiny_config):
    sf = load_suite_file(tiny_config)
    with pytest.raises(DofbenchError, match="unknown suite 'nope'; available: tiny"):
        get_suite(sf, "nope")


def test_expansion_grid_and_defaults():
    suite = resolve_text(TINY_SUITE)
    assert len(suite.trials) == 2 * 2  # dims × seeds
    assert suite.tasks[0].total_params == 40 * 16 + 16 + 16 * 10 + 10
    t = suite.trials[0]
    assert t.method.params["optimizer"] == "paper-adam"  # defaults are resolved into the spec
    assert t.identity["method"] == {}  # ... but only non-defaults are hashed


# Pinned: stored results must stay reachable. Change these only with a migration plan.
PINNED = {
    (2, 0): "cdd46ae65bff427a94f073006aee45a3",
    (64, 1): "54a60767544400516e4564ba07812b26",
}


def test_pinned_trial_ids():
    ids = {(t.d, t.seed): t.trial_id for t in resolve_text(TINY_SUITE).trials}
    assert {k: ids[k] for k in PINNED} == PINNED


def test_identity_ignores_how_and_explicit_defaults():
    a = resolve_text(TINY_SUITE).trials
    b = resolve_text(TINY_SUITE.replace('{ name = "random-subspace" }',
                                        '{ name = "random-subspace", params = { lr = 0.05 } }')).trials
    assert [t.trial_id for t in a] == [t.trial_id for t in b]
    c = resolve_text(TINY_SUITE.replace('{ name = "random-subspace" }',
                                        '{ name = "random-subspace", params = { lr = 0.01 } }')).trials
    assert not set(t.trial_id for t in a) & set(t.trial_id for t in c)


def test_seeds_derive_from_the_right_parts():
    trials = resolve_text(TINY_SUITE).trials
    by = {(t.d, t.seed): t for t in trials}
    # θ0 depends on model, dataset and seed — not on d or the method
    assert by[(2, 0)].init_key() == by[(64, 0)].init_key()
    assert by[(2, 0)].init_key() != by[(2, 1)].init_key()
    assert derive_seed("init", *by[(2, 0)].init_key()) != derive_seed("init", *by[(2, 1)].init_key())
    assert derive_seed("x", 1) == derive_seed("x", 1) != derive_seed("y", 1)


def test_packaged_benchmarks_validate():
    host = Host(use_env=False)
    sf = load_suite_file()
    assert "quick" in sf.suites
    suite = resolve_suite(host, "quick", sf.suites["quick"])
    assert len(suite.spec.seed_list()) >= 5
    assert suite.spec.dims == sorted(suite.spec.dims)


def test_where_the_data_live_is_not_part_of_the_trial_id():
    text = TINY_SUITE.replace('{ name = "mnist1d", params = { num_samples = 600 } }', '{ name = "mnist", params = ROOT }')
    ids = [[t.trial_id for t in resolve_text(text.replace("ROOT", r)).trials]
           for r in ('{ subsample = 100 }', '{ subsample = 100, root = "/data/a" }', '{ subsample = 100, root = "/b" }')]
    assert ids[0] == ids[1] == ids[2]
    other = [t.trial_id for t in resolve_text(text.replace("ROOT", '{ subsample = 200 }')).trials]
    assert not set(other) & set(ids[0])


def test_a_trial_spec_needs_its_identity_and_trial_spec_resolves_it_as_a_suite_does():
    import pydantic

    from dofbench.config.schemas import ResolvedComponent, TrainConfig, TrialSpec
    from dofbench.run.resolve import trial_spec

    comp = ResolvedComponent(name="mlp", params={"hidden": [16]})
    with pytest.raises(pydantic.ValidationError, match="identity"):
        TrialSpec(model=comp, dataset=comp, method=comp, d=2, seed=0, train=TrainConfig())
    suite = {(t.d, t.seed): t for t in resolve_text(TINY_SUITE).trials}
    host = Host(use_env=False)
    one = trial_spec(host, {"name": "mlp", "params": {"hidden": [16]}},
                     {"name": "mnist1d", "params": {"num_samples": 600}},
                     {"name": "random-subspace", "params": {"lr": 0.05}},  # an explicit default: not hashed
                     d=64, seed=1, train={"epochs": 2, "batch_size": 64})
    assert one.trial_id == suite[(64, 1)].trial_id == PINNED[(64, 1)]
    assert one.init_key() == suite[(64, 1)].init_key()
    with pytest.raises(DofbenchError, match=r"method.params.lr: Input should be greater than 0"):
        trial_spec(host, "mlp", "mnist1d", {"name": "random-subspace", "params": {"lr": -1}}, d=2)


def test_nested_subspaces_are_another_trial():
    """`nested` defaults to today's meaning (a fresh A per (seed, d)), so stored trials keep their
    ids; nested trials get ids of their own and are marked nested by the suite (a store never
    holds both meanings under one id)."""
    plain = resolve_text(TINY_SUITE)
    nested = resolve_text(TINY_SUITE.replace('{ name = "random-subspace" }',
                                             '{ name = "random-subspace", params = { nested = true } }'))
    assert {t.trial_id for t in plain.trials}.isdisjoint({t.trial_id for t in nested.trials})
    assert plain.nested == frozenset() and nested.nested == {t.trial_id for t in nested.trials}
    assert all(t.identity["method"] == {"nested": True} for t in nested.trials)
