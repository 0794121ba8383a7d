"""Lottery subspaces, lottery tickets (one-shot, IMP) and the pruning baselines: the basis is
orthonormal, nested and spans the trajectory; masks keep exactly d entries, the right ones;
pruned entries stay zero; rewinding restores θ0; preparation is cached and shared across d; a
failing preparation fails only its own trials."""

import pytest
import torch

from dofbench.cli.session import Session
from dofbench.errors import DofbenchError
from dofbench.run.host import Host
from dofbench.config.schemas import TrialSpec
from dofbench.engine.loop import train_full, train_reparam
from dofbench.config.runtime import Runtime
from dofbench.engine.worker import Worker
from dofbench_plugins import lottery as L


@pytest.fixture
def spec(tiny_spec):
    """``spec(method, d=64, seed=0, **params)``: a tiny MLP trial."""
    return lambda method, d=64, seed=0, **params: tiny_spec(method, d=d, seed=seed, **params)


def setup(worker, s: TrialSpec):
    ctx = worker.context(s)
    return ctx, worker.host.get("method", s.method.name).setup(ctx)


def support(rep) -> torch.Tensor:
    """Entries of θ that φ can move: nonzero columns of ∂θ/∂φ."""
    jac = torch.func.jacfwd(rep.theta)(rep.phi0)
    return jac.abs().sum(dim=1) > 0


# ------------------------------------------------------------------------------ lottery subspace
def test_lottery_basis_is_orthonormal_nested_and_spans_the_trajectory(worker, spec):
    d_max = 24
    ctx, small = setup(worker, spec("lottery-subspace", d=8, d_max=d_max))
    _, big = setup(worker, spec("lottery-subspace", d=d_max, d_max=d_max))
    u8, u = small.projection.matrix(), big.projection.matrix()
    assert u.shape == (ctx.D, d_max)
    assert torch.allclose(u.T @ u, torch.eye(d_max), atol=1e-4)           # orthonormal
    assert torch.equal(u8, u[:, :8])                                       # nested across d
    assert torch.equal(small.theta(small.phi0), ctx.theta0)                # starts at θ0
    # at d = d_max the subspace spans every point of the stored trajectory: θ_k − θ0 ∈ span(U)
    snaps = L.trajectory(ctx, ctx.params)
    assert len(snaps) == d_max + 1
    offsets = torch.stack(snaps[1:], dim=1) - ctx.theta0[:, None]
    resid = offsets - u @ (u.T @ offsets)
    assert resid.norm() < 1e-3 * offsets.norm()
    # ... and a smaller d does not (the test can fail)
    assert (offsets - u8 @ (u8.T @ offsets)).norm() > 1e-2 * offsets.norm()
    # singular values come ordered: the first directions carry the most motion
    sigma = L.lottery_basis(ctx, ctx.params)["sigma"]
    assert torch.all(sigma[:-1] >= sigma[1:])


def test_lottery_subspace_trajectory_is_computed_once_per_seed_and_shared_across_d(worker, spec):
    for d in (4, 16):
        r = worker.run(spec("lottery-subspace", d=d, d_max=16))
        assert r.status == "ok", r.error
        assert r.d_used == d
    assert worker.cache.computed.count("lottery-basis") == 1
    hits = worker.cache.hits
    worker.run(spec("lottery-subspace", d=8, d_max=16))
    assert worker.cache.hits == hits + 1 and worker.cache.computed.count("lottery-basis") == 1
    worker.run(spec("lottery-subspace", d=8, seed=1, d_max=16))
    worker.run(spec("lottery-subspace", d=8, d_max=16, lr=0.01))  # φ's optimizer: same trajectory
    assert worker.cache.computed.count("lottery-basis") == 2


def test_centered_variant_and_d_max_validation(worker, tmp_path, spec):
    ctx, rep = setup(worker, spec("lottery-subspace", d=10, d_max=10, basis="centered"))
    u = rep.projection.matrix()
    assert torch.allclose(u.T @ u, torch.eye(10), atol=1e-4)
    snaps = torch.stack(L.trajectory(ctx, ctx.params), dim=1)
    centred = snaps - snaps.mean(dim=1, keepdim=True)
    assert (centred - u @ (u.T @ centred)).norm() < 1e-3 * centred.norm()
    with pytest.raises(DofbenchError, match=r"d=20 exceeds d_max=10"):
        setup(worker, spec("lottery-subspace", d=20, d_max=10))
    cfg = tmp_path / "s.toml"
    cfg.write_text("""
[suites.s]
models   = [{ name = "mlp", params = { hidden = [16] } }]
datasets = [{ name = "mnist1d", params = { num_samples = 600 } }]
methods  = [{ name = "lottery-subspace", params = { d_max = 32 } }]
dims     = [16, 64]
""")
    with pytest.raises(DofbenchError, match=r"d=64 exceeds the limit 32 of method 'lottery-subspace'"):
        Session(db=tmp_path / "x.duckdb", config=cfg).resolve(["s"])


# ------------------------------------------------------------------------------ tickets
def test_one_shot_mask_keeps_exactly_d_largest_pretrained_entries_rewound_to_theta0(worker, spec):
    ctx, rep = setup(worker, spec("lottery-ticket", d=50))
    trained = L.pretrained(ctx, ctx.params)["theta"]
    assert not torch.equal(trained, ctx.theta0)
    mask = support(rep)
    assert int(mask.sum()) == rep.d == 50
    # exactly the 50 entries (weights and biases) with the largest |θ| of the pre-trained network
    assert mask.equal(torch.zeros_like(mask).index_fill(0, trained.abs().topk(50).indices, True))
    assert trained.abs()[mask].min() >= trained.abs()[~mask].max()
    theta = rep.theta(rep.phi0)
    assert torch.equal(theta[mask], ctx.theta0[mask])                       # rewound to θ0
    assert torch.count_nonzero(theta[~mask]) == 0                           # the rest pruned
    assert rep.optimizer == "sgd" and rep.lr_schedule(0) == 0.1 and rep.lr_schedule(400) == pytest.approx(0.03)
    assert rep.lr_schedule(1199) == pytest.approx(0.01) and rep.lr_schedule(5000) == pytest.approx(0.003)


def test_pruned_entries_stay_exactly_zero_through_training(worker, spec):
    for method in ("lottery-ticket", "random-pruning", "magnitude-pruning"):
        ctx, rep = setup(worker, spec(method, d=40))
        start = rep.theta(rep.phi0).detach()
        mask = support(rep)
        seen = []
        inner = rep.theta
        rep.theta = lambda phi: seen.append(inner(phi)) or seen[-1]
        out = train_reparam(ctx, rep)
        assert out.status == "ok" and out.d == 40
        final = seen[-1].detach()
        assert torch.count_nonzero(final[~mask]) == 0, method
        assert not torch.equal(final[mask], start[mask]), method            # survivors trained


def test_late_rewinding_restores_theta_k_of_the_pretraining(worker, spec):
    ctx, rep = setup(worker, spec("lottery-ticket", d=60, rewind_step=3))
    art = L.pretrained(ctx, ctx.params, 3)
    g = L.prep_generator("pretrain", L.prep_key(ctx, pretrain=ctx.params.pretrain_parts(), rewind_step=3))
    theta_k, _ = train_full(ctx.net, ctx.theta0, ctx.data, steps=3, lr=0.05, batch_size=64, generator=g,
                            weight_decay=1e-4, decay_mask=L.decay_mask(ctx.net, "conv-kernels", ctx.device))
    assert torch.allclose(art["rewind"], theta_k, atol=1e-6)
    mask = support(rep)
    assert torch.allclose(rep.theta(rep.phi0)[mask], theta_k[mask], atol=1e-6)
    assert not torch.allclose(theta_k, ctx.theta0)


def test_one_shot_pretraining_is_cached_per_seed_and_shared_across_d_and_methods(worker, spec):
    for d in (20, 80):
        assert worker.run(spec("lottery-ticket", d=d)).status == "ok"
    assert worker.cache.computed == ["lottery-pretrain"]
    hits = worker.cache.hits
    assert worker.run(spec("magnitude-pruning", d=30)).status == "ok"  # same pre-training
    assert worker.cache.computed == ["lottery-pretrain"] and worker.cache.hits == hits + 1
    worker.run(spec("lottery-ticket", d=20, seed=1))
    assert worker.cache.computed == ["lottery-pretrain"] * 2


def test_magnitude_pruning_fine_tunes_from_trained_values_and_random_pruning_from_theta0(worker, spec):
    ctx, mag = setup(worker, spec("magnitude-pruning", d=50))
    trained = L.pretrained(ctx, ctx.params)["theta"]
    mask = support(mag)
    assert int(mask.sum()) == 50
    assert torch.equal(mag.theta(mag.phi0)[mask], trained[mask])
    _, rnd = setup(worker, spec("random-pruning", d=50))
    rmask = support(rnd)
    assert int(rmask.sum()) == 50 and not rmask.equal(mask)
    assert torch.equal(rnd.theta(rnd.phi0)[rmask], ctx.theta0[rmask])
    _, rnd2 = setup(worker, spec("random-pruning", d=50, seed=1))
    assert not support(rnd2).equal(rmask)


def test_prune_biases_false_always_keeps_biases(worker, spec):
    ctx, rep = setup(worker, spec("lottery-ticket", d=60, prune_biases=False))
    mask = support(rep)
    biases = L.always_kept(ctx.net, False, ctx.device)
    assert int(biases.sum()) == 16 + 10
    assert int(mask.sum()) == 60 and bool(mask[biases].all())
    with pytest.raises(DofbenchError, match=r"d=10 is below the 26 biases"):
        setup(worker, spec("random-pruning", d=10, prune_biases=False))


# ------------------------------------------------------------------------------ IMP
def test_imp_rounds_reach_the_requested_counts_and_are_nested(worker, spec):
    p = Host().get("method", "lottery-ticket-imp").Params()
    assert L.imp_targets(1000, 300, p) == [1000, 800, 640, 512, 410, 328, 300]
    ctx, rep = setup(worker, spec("lottery-ticket-imp", d=120, prune_fraction=0.5))
    assert int(support(rep).sum()) == rep.d == 120
    targets = L.imp_targets(ctx.D, 120, ctx.params)
    fixed = L.always_kept(ctx.net, True, ctx.device)
    prev = torch.ones(ctx.D, dtype=torch.bool)
    for r in range(1, len(targets) - 1):
        rnd = L.imp_round(ctx, ctx.params, fixed, targets, r)
        assert int(rnd["mask"].sum()) == targets[r]
        assert not bool((rnd["mask"] & ~prev).any())                         # survivors of survivors
        assert torch.count_nonzero(rnd["theta"][~rnd["mask"]]) == 0          # pruned stay zero
        prev = rnd["mask"]
    assert not bool((support(rep) & ~prev).any())
    theta = rep.theta(rep.phi0)
    assert torch.equal(theta[support(rep)], ctx.theta0[support(rep)])       # rewound to θ0


def test_imp_layerwise_prunes_every_tensor_alike(worker, spec):
    ctx, rep = setup(worker, spec("lottery-ticket-imp", d=200, prune_fraction=0.5, scope="layerwise"))
    mask = support(rep)
    assert int(mask.sum()) == 200
    kept = [int(mask[a:b].sum()) / (b - a) for _, a, b in ctx.net.segments() if b - a > 50]
    assert max(kept) - min(kept) < 0.05


def test_imp_rounds_are_cached_so_a_longer_sweep_reuses_shorter_ones(worker, spec):
    base = dict(prune_fraction=0.5)
    assert worker.run(spec("lottery-ticket-imp", d=200, **base)).status == "ok"
    first = worker.cache.computed.count("lottery-imp-round")
    assert first >= 1
    assert worker.run(spec("lottery-ticket-imp", d=40, **base)).status == "ok"
    more = worker.cache.computed.count("lottery-imp-round") - first
    ctx = worker.context(spec("lottery-ticket-imp", d=40, **base))
    rounds_200 = len(L.imp_targets(ctx.D, 200, ctx.params)) - 2
    rounds_40 = len(L.imp_targets(ctx.D, 40, ctx.params)) - 2
    assert more == rounds_40 - rounds_200 > 0                                # only the new rounds
    # an interrupted sweep: a fresh process finds every finished round on disk
    fresh = Worker(Runtime(device="cpu", cache_dir=str(worker.cache.root)), Host(use_env=False))
    again = fresh.run(spec("lottery-ticket-imp", d=30, **base))
    assert again.status == "ok"
    rounds_30 = len(L.imp_targets(ctx.D, 30, ctx.params)) - 2
    assert fresh.cache.computed.count("lottery-imp-round") == rounds_30 - rounds_40
    assert "lottery-pretrain" not in fresh.cache.computed


# ------------------------------------------------------------------------------ runs and errors
def test_a_failing_preparation_fails_only_its_trials(tmp_path):
    cfg = tmp_path / "s.toml"
    cfg.write_text("""
[suites.mix]
models   = [{ name = "mlp", params = { hidden = [16] } }]
datasets = [{ name = "mnist1d", params = { num_samples = 600 } }]
methods  = ["random-pruning", { name = "lottery-ticket", params = { pretrain_lr = 1e12 } },
            { name = "lottery-subspace", params = { d_max = 16 } }]
dims     = [8, 16]
seeds    = 1
train    = { epochs = 1, batch_size = 64 }
""")
    s = Session(db=tmp_path / "r.duckdb", config=cfg, cache_dir=str(tmp_path / "cache"))
    s.run(["mix"], executor="local")
    rows = s.query("select method, status, error from trials order by method, d").records()
    by = {}
    for r in rows:
        by.setdefault(r["method"], []).append(r)
    assert [r["status"] for r in by["lottery-ticket"]] == ["failed", "failed"]
    assert all("preparation (pretrain) failed: full-space training diverged" in r["error"] for r in by["lottery-ticket"])
    assert [r["status"] for r in by["random-pruning"]] == ["ok", "ok"]
    assert [r["status"] for r in by["lottery-subspace"]] == ["ok", "ok"]


def test_params_are_documented_and_validated():
    host = Host()
    for name in ("lottery-subspace", "lottery-ticket", "lottery-ticket-imp", "magnitude-pruning", "random-pruning"):
        m = host.get("method", name)
        for field_name, f in m.Params.model_fields.items():
            assert f.description, (name, field_name)
    with pytest.raises(Exception, match="one more entry than lr_milestones"):
        host.get("method", "lottery-ticket").parse_params({"lr_milestones": [10], "lr_factors": [1.0]})
    with pytest.raises(Exception):
        host.get("method", "lottery-ticket-imp").parse_params({"prune_fraction": 1.5})
