"""End to end through the API: run, skip stored trials, --force, failures, divergence, cache."""

import json

import torch

from dofbench.cli.session import Session
from dofbench.engine.artifacts import ArtifactCache
from dofbench.plugin.components import Method
from dofbench.plugin.hookspecs import hookimpl
from dofbench.engine.reparam import Reparam


def test_run_skip_force_and_reproducibility(tiny_config, db):
    s = Session(db, config=tiny_config, use_env=False)
    [first] = s.run(["tiny"], executor="local")
    assert (first.ok, first.skipped, first.failed) == (4, 0, 0)
    rows = s.query("select trial_id, best_train_acc, steps, status, versions, spec, d_used from trials order by trial_id").records()
    assert all(r["status"] == "ok" and r["steps"] == 2 * 8 for r in rows)  # 480 train / 64 → 8 steps an epoch
    v = json.loads(rows[0]["versions"])
    assert {"dofbench", "torch", "python"} <= set(v)
    assert json.loads(rows[0]["spec"])["method"]["params"]["lr"] == 0.05

    [again] = s.run(["tiny"], executor="local")
    assert (again.ran, again.skipped) == (0, 4)

    [forced] = s.run(["tiny"], force=True, executor="local")
    assert forced.ok == 4
    rows2 = s.query("select trial_id, best_train_acc from trials order by trial_id").records()
    # same spec, same seeds → same numbers (bitwise on the same device)
    assert [r["best_train_acc"] for r in rows2] == [r["best_train_acc"] for r in rows]
    evals = s.query("select count(*) as n, count(distinct step) as steps from evals").records()[0]
    assert evals["steps"] == 3  # step 0 and after each of 2 epochs


class _Flaky(Method):
    name = "flaky"
    description = "fails at d=2, diverges at d=64"

    def setup(self, ctx):
        if ctx.d == 2:
            raise RuntimeError("prepare exploded")
        origin = ctx.theta0
        # sqrt of a negative number: every θ is NaN, as in a run that blew up
        return Reparam(phi0=origin.new_zeros(ctx.d), theta=lambda phi: origin * torch.sqrt(phi.sum() - 1))


class _FlakyPlugin:
    @hookimpl
    def dofbench_methods(self):
        return [_Flaky()]


def test_failed_and_diverged_trials_are_recorded_and_the_run_goes_on(tiny_config, db):
    tiny_config.write_text(tiny_config.read_text().replace('{ name = "random-subspace" }',
                                                           '{ name = "random-subspace" }, { name = "flaky" }'))
    s = Session(db, config=tiny_config, use_env=False)
    s.host.register(_FlakyPlugin(), name="flaky-plugin")
    [summary] = s.run(["tiny"], executor="local")
    assert (summary.ok, summary.failed, summary.diverged) == (4, 2, 2)
    rows = s.query("select d, status, error from trials where method = 'flaky' order by d").records()
    assert [r["status"] for r in rows] == ["failed", "failed", "diverged", "diverged"]
    assert "prepare exploded" in rows[0]["error"]
    assert "non-finite" in rows[-1]["error"]
    # diverged trials count as unsuccessful seeds; failed ones are not evidence
    n = dict(s.query("select d, n from success where method = 'flaky' and epsilon = 0.12").rows)
    assert n == {2: 0, 64: 2}                            # d = 2: planned, but no usable seed
    eligible = dict(s.query("select d, eligible from success where method = 'flaky' and epsilon = 0.12").rows)
    assert eligible == {2: False, 64: True}
    [again] = s.run(["tiny"], executor="local")
    assert again.ran == 0
    [retry] = s.run(["tiny"], retry_failed=True, executor="local")
    assert retry.ran == 2 and retry.failed == 2


def test_artifact_cache_hits(tmp_path):
    cache = ArtifactCache(tmp_path)
    calls = []
    make = lambda: calls.append(1) or {"x": torch.arange(3)}  # noqa: E731
    a = cache.get_or_create("thing", {"k": 1}, make)
    b = cache.get_or_create("thing", {"k": 1}, make)
    assert calls == [1] and cache.hits == 1 and cache.misses == 1 and torch.equal(a["x"], b["x"])
    fresh = ArtifactCache(tmp_path)  # a new process finds it on disk
    fresh.get_or_create("thing", {"k": 1}, make)
    assert calls == [1] and fresh.hits == 1
    cache.get_or_create("thing", {"k": 2}, make)
    assert calls == [1, 1]


def test_mnist1d_is_generated_once_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("DOFBENCH_CACHE", str(tmp_path))
    from dofbench_plugins.embedded import MNIST1D

    ds = MNIST1D()
    p = ds.parse_params({"num_samples": 200})
    a = ds.load(p)
    files = list(tmp_path.rglob("*.safetensors"))
    assert len(files) == 1
    b = ds.load(p)
    assert torch.equal(a.x_train, b.x_train) and a.x_train.shape == (160, 40) and a.x_test.shape == (40, 40)
    assert set(a.y_train.tolist()) <= set(range(10))


class _Chosen(Method):
    """A method whose `train` returns chosen outcomes: at d = 64 seed 0 'diverges' after an evaluation
    that was far above every ε (as a trial caught by the every-25-steps check keeps it)."""

    name = "chosen"
    description = "returns chosen outcomes"

    def train(self, ctx):
        from dofbench.engine.reparam import TrainOutcome

        diverged = ctx.d == 64 and ctx.spec.seed == 0
        acc = 0.99 if ctx.d == 64 else 0.05
        metrics = {"train_acc": acc, "best_train_acc": acc, "train_loss": 0.1, "best_train_loss": 0.1}
        return TrainOutcome("diverged" if diverged else "ok", metrics, [(0, "train", "acc", acc)], 10, ctx.d,
                            error="non-finite training loss at step 25" if diverged else None)


class _ChosenPlugin:
    @hookimpl
    def dofbench_methods(self):
        return [_Chosen()]


def test_a_diverged_trial_with_high_stored_accuracy_is_a_failure_for_grid_and_adaptive(tiny_config, db):
    """One definition of success: the grid's views and the adaptive search both count the diverged
    seed as a failure (before, the views made it a success and the search a failure)."""
    text = tiny_config.read_text().replace('{ name = "random-subspace" }', '{ name = "chosen" }')
    tiny_config.write_text(text + text.replace("[suites.tiny", "[suites.tinyad").replace(
        "[suites.tinyad.threshold]", 'search = { strategy = "adaptive" }\n[suites.tinyad.threshold]'))
    s = Session(db, config=tiny_config, use_env=False)
    s.host.register(_ChosenPlugin(), name="chosen-plugin")
    [grid] = s.run(["tiny"], executor="local")
    assert grid.diverged == 1
    stored = s.query("select best_train_acc, status from trials where d = 64 and seed = 0").records()[0]
    assert stored == {"best_train_acc": 0.99, "status": "diverged"}   # its metrics say where it stopped
    cell = s.query("select n, successes from success where suite = 'tiny' and d = 64 and epsilon = 0.12").records()
    assert cell == [{"n": 2, "successes": 1}]
    lb = s.query("select d_star from leaderboard where suite = 'tiny' and epsilon = 0.12").records()
    assert lb == [{"d_star": None}]                                   # 1 of 2 < 1 − δ
    s.run(["tinyad"], executor="local")
    ad = s.query("select d_star, estimator from leaderboard where suite = 'tinyad' and epsilon = 0.12").records()
    assert ad == [{"d_star": None, "estimator": "adaptive"}]
