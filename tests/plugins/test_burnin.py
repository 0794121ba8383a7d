"""burn-in-subspace: t = 0 is random-subspace, the burn-in point is cached once per (seed, t) and
shared across d and projections, the released code's t + 1 quirk, and burn-in lowers the loss
the subspace starts from."""

import pytest

from dofbench.run.host import Host
from dofbench.config.runtime import Runtime
from dofbench.engine.worker import Worker


@pytest.fixture
def spec(tiny_spec):
    """``spec(method, d=32, seed=0, **params)``: a tiny MLP trial."""
    return lambda method, d=32, seed=0, **params: tiny_spec(method, d=d, seed=seed, **params)


def test_t0_gives_the_random_subspace_trial_result(worker, spec):
    for kind in ("dense", "fastfood"):
        a = worker.run(spec("random-subspace", projection=kind))
        b = worker.run(spec("burn-in-subspace", projection=kind, steps=0))
        assert a.status == b.status == "ok"
        assert a.metrics == b.metrics
        assert a.evals == b.evals
        assert b.method_info["burn_in_steps"] == 0
    assert "burn-in" not in worker.cache.computed  # nothing to burn in at t = 0


def test_burn_in_point_is_computed_once_per_seed_and_t_and_shared_across_d(worker, spec):
    for d in (8, 32):
        for kind in ("dense", "fastfood"):
            r = worker.run(spec("burn-in-subspace", d=d, projection=kind, steps=10))
            assert r.status == "ok", r.error
            assert r.method_info["projection"] == kind
    assert worker.cache.computed.count("burn-in") == 1
    worker.run(spec("burn-in-subspace", seed=1, steps=10))
    worker.run(spec("burn-in-subspace", steps=11))
    assert worker.cache.computed.count("burn-in") == 3
    # a fresh process finds it on disk
    fresh = Worker(Runtime(device="cpu", cache_dir=str(worker.cache.root)), Host(use_env=False))
    fresh.run(spec("burn-in-subspace", d=16, steps=10))
    assert fresh.cache.computed.count("burn-in") == 0


def test_released_code_quirk_takes_t_plus_one_steps(worker, spec):
    quirk = worker.run(spec("burn-in-subspace", steps=4, extra_step=True))
    plain = worker.run(spec("burn-in-subspace", steps=5))
    assert quirk.method_info["burn_in_steps"] == 5
    assert quirk.metrics == plain.metrics
    assert quirk.metrics != worker.run(spec("burn-in-subspace", steps=4)).metrics


def test_burn_in_lowers_the_loss_the_subspace_starts_from(worker, spec):
    def start_loss(t):
        r = worker.run(spec("burn-in-subspace", steps=t))
        return next(v for s, split, m, v in r.evals if s == 0 and split == "train" and m == "loss")
    l0, l20, l60 = start_loss(0), start_loss(20), start_loss(60)
    assert l60 < l20 < l0


def test_burn_in_params_are_documented_and_validated():
    m = Host().get("method", "burn-in-subspace")
    fields = m.Params.model_fields
    for name in ("steps", "momentum", "burn_in_lr", "extra_step", "projection"):
        assert fields[name].description
    assert fields["momentum"].default == 0.9
    with pytest.raises(Exception):
        m.parse_params({"steps": -1})
