"""The `paper-code` preset: every place dofbench's defaults deviate from the paper's released code
is a named option, each checked here against a small hand computation of the code's rule; the
preset asks for all of them at once, expands into explicit params before the trial id is hashed,
and leaves the ids of default trials as they were."""

import math

import pytest
import torch

from dofbench.config.suites import parse_suite_text
from dofbench.engine.flat import TRUNCATED_NORMAL_STD, lecun_normal_, lecun_truncated_normal_
from dofbench.engine.loop import train_full
from dofbench.engine.optim import make_optimizer
from dofbench.errors import DofbenchError
from dofbench.run.resolve import resolve_suite, trial_spec
from dofbench_plugins import lottery as L

TRAIN = {"epochs": 2, "batch_size": 64}
TINY_MLP = {"name": "mlp", "params": {"hidden": [16]}}
TINY_DATA = {"name": "mnist1d", "params": {"num_samples": 600}}


def preset_spec(host, method: str, d: int = 32, model: dict | None = None, **params):
    return trial_spec(host, model or TINY_MLP, TINY_DATA, {"name": method, "preset": "paper-code", "params": params},
                      d=d, seed=0, train=TRAIN)


# ------------------------------------------------------------------------------ initialisation
def test_truncated_lecun_normal_is_flax_variance_scaling_truncated_normal():
    torch.manual_seed(0)
    w = lecun_truncated_normal_(torch.empty(400, 100))            # fan_in = 100
    bound = 2 * (1 / math.sqrt(100)) / 0.87962566103423978         # Flax: ±2 of the corrected stddev
    assert TRUNCATED_NORMAL_STD == pytest.approx(0.87962566103423978)
    assert w.abs().max() <= bound * (1 + 1e-6)
    assert w.abs().max() > 0.97 * bound                            # the truncation is reached, not far inside
    assert w.std().item() == pytest.approx(1 / math.sqrt(100), rel=0.02)  # the correction keeps variance 1/fan_in
    # the untruncated default draws beyond ±2σ' (P ≈ 2.3 % per entry)
    torch.manual_seed(0)
    assert lecun_normal_(torch.empty(400, 100)).abs().max() > bound


def test_models_take_the_truncated_init_and_the_preset_selects_it(host):
    for model, params, data in (("mlp", {"hidden": [64]}, "mnist1d"), ("conv", {"channels": [4]}, "digits")):
        spec = trial_spec(host, {"name": model, "params": params, "preset": "paper-code"}, {"name": data},
                          "random-subspace", d=8, train=TRAIN)
        assert spec.model.params["init"] == "lecun-truncated-normal"
        comp, dcomp = host.get("model", model), host.get("dataset", data)
        torch.manual_seed(0)
        net = comp.build(comp.parse_params(spec.model.params), dcomp.info(dcomp.parse_params({})))
        for m in net.modules():
            if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
                fan_in = m.weight[0].numel()
                assert m.weight.abs().max() <= 2 / math.sqrt(fan_in) / TRUNCATED_NORMAL_STD * (1 + 1e-6)
                assert torch.all(m.bias == 0)


# ------------------------------------------------------------------------------ burn-in
def test_burn_in_preset_takes_t_plus_one_steps(host, worker):
    spec = preset_spec(host, "burn-in-subspace", steps=3)
    assert spec.method.params["extra_step"] is True
    ctx = worker.context(spec)
    rep = host.get("method", "burn-in-subspace").setup(ctx)
    assert rep.info["burn_in_steps"] == 4


# ------------------------------------------------------------------------------ ticket momentum
def two_steps(name: str, lrs: tuple[float, float], grad: float = 1.0, momentum: float = 0.9) -> float:
    p = torch.zeros(1, requires_grad=True)
    opt = make_optimizer(name, [p], lrs[0], momentum=momentum)
    for lr in lrs:
        for g in opt.param_groups:
            g["lr"] = lr                       # what the loop's lr_schedule does before every step
        p.grad = torch.full((1,), grad)
        opt.step()
    return float(p.detach())


def test_lr_in_buffer_momentum_is_the_released_codes_rule_across_an_lr_drop():
    # the code: buf ← 0.9·buf + lr·g, θ ← θ − buf; g = 1, lr 0.1 then 0.01:
    #   buf1 = 0.1, θ1 = −0.1; buf2 = 0.09 + 0.01 = 0.1, θ2 = −0.2
    assert two_steps("sgd-lr-in-buffer", (0.1, 0.01)) == pytest.approx(-0.2)
    # torch: buf ← 0.9·buf + g, θ ← θ − lr·buf: buf1 = 1, θ1 = −0.1; buf2 = 1.9, θ2 = −0.1 − 0.019
    assert two_steps("sgd", (0.1, 0.01)) == pytest.approx(-0.119)
    # with a constant lr the two forms agree
    assert two_steps("sgd-lr-in-buffer", (0.1, 0.1)) == pytest.approx(two_steps("sgd", (0.1, 0.1)))


def test_ticket_preset_retrains_with_the_lr_in_buffer_form(host, worker):
    spec = preset_spec(host, "lottery-ticket", d=64)
    assert spec.method.params["momentum_form"] == "lr-in-buffer"
    rep = host.get("method", "lottery-ticket").setup(worker.context(spec))
    assert rep.optimizer == "sgd-lr-in-buffer"


# ------------------------------------------------------------------------------ ticket mask
def test_threshold_mask_keeps_at_least_the_ceil_f_n_th_value_with_ties():
    v = torch.tensor([0.5, -3.0, 2.0, 1.0, -2.0])
    cand = torch.ones(5, dtype=torch.bool)
    # f = 0.3, n = 5: f·n = 1.5 → k = ceil = 2 (floor would be 1: only −3); the 2nd largest |v| is 2,
    # and |v| ≥ 2 keeps −3, 2 and −2 (the tie at the threshold too): 3 entries
    assert L.code_threshold_mask(v, cand, 0.3).tolist() == [False, True, True, False, True]
    assert L.code_threshold_mask(v, cand, 0.1).tolist() == [False, True, False, False, False]  # ceil(0.5) = 1
    # non-candidates never count: among {0.5, 2, 1}, f = 0.5 → k = ceil(1.5) = 2 → |v| ≥ 1
    cand2 = torch.tensor([True, False, True, True, False])
    assert L.code_threshold_mask(v, cand2, 0.5).tolist() == [False, False, True, True, False]
    # the default rule keeps exactly d
    assert int(L.magnitude_mask(v, cand, 2).sum()) == 2


def test_ticket_preset_uses_the_threshold_mask(host, worker):
    spec = preset_spec(host, "lottery-ticket", d=64)
    assert spec.method.params["mask_rule"] == "threshold"
    ctx = worker.context(spec)
    rep = host.get("method", "lottery-ticket").setup(ctx)
    theta_T = L.pretrained(ctx, ctx.params)["theta"]
    k = math.ceil(64 / ctx.D * ctx.D)
    t = theta_T.abs().sort(descending=True).values[k - 1]
    assert rep.info["kept"] == int((theta_T.abs() >= t).sum()) >= 64
    assert rep.info["mask_rule"] == "threshold"


# ------------------------------------------------------------------------------ lottery subspace
def test_released_trajectory_schedule_takes_5_dmax_plus_1_steps_first_increment_of_6(host):
    p = L.LotterySubspaceParams(d_max=3)
    assert p.snapshot_steps() == [5, 10, 15]
    q = L.LotterySubspaceParams(d_max=3, trajectory_schedule="released-code")
    assert q.snapshot_steps() == [6, 11, 16]               # 5·3 + 1 steps; Δ1 spans 6 steps, the rest 5


def test_train_full_keeps_theta_at_exactly_the_given_steps(host, worker, tiny_spec):
    ctx = worker.context(tiny_spec("random-subspace"))
    def run(**kw):
        g = torch.Generator().manual_seed(0)
        return train_full(ctx.net, ctx.theta0, ctx.data, steps=7, lr=0.05, batch_size=64, generator=g, **kw)[1]
    every = run(snapshot_every=1)
    at = run(snapshot_steps=[2, 7])
    assert len(at) == 3 and all(torch.equal(a, every[i]) for a, i in zip(at, (0, 2, 7)))


def test_lottery_subspace_preset_float64_svd_released_schedule_and_tied_lr(host, worker):
    spec = preset_spec(host, "lottery-subspace", d=4, d_max=6, lr=0.02)
    mp = spec.method.params
    assert (mp["trajectory_schedule"], mp["svd_dtype"], mp["tie_trajectory_lr"]) == ("released-code", "float64", True)
    ctx = worker.context(spec)
    p = ctx.params
    assert p.effective_trajectory_lr() == 0.02                  # the subspace's lr, not trajectory_lr
    snaps = L.trajectory(ctx, p)
    assert len(snaps) == 7
    art = L.lottery_basis(ctx, p)
    assert art["sigma"].dtype == torch.float64 and art["U"].dtype == ctx.theta0.dtype
    m = torch.stack(snaps, 1).double()
    u, s, _ = torch.linalg.svd(m[:, 1:] - m[:, :-1], full_matrices=False)
    assert torch.allclose(art["sigma"], s, rtol=1e-10)
    assert torch.allclose((art["U"].double().T @ u).abs().diagonal(), torch.ones(6, dtype=torch.float64), atol=1e-5)
    # the trajectory ran at lr 0.02: a trajectory at the untied default lr differs
    untied = L.LotterySubspaceParams(d_max=6, lr=0.02, trajectory_schedule="released-code")
    assert not torch.equal(L.trajectory(ctx, untied)[-1], snaps[-1])


def test_tied_trajectory_lr_refuses_an_explicit_trajectory_lr():
    with pytest.raises(Exception, match="leave trajectory_lr at its default"):
        L.LotterySubspaceParams(tie_trajectory_lr=True, trajectory_lr=0.1)


# ------------------------------------------------------------------------------ the preset
SUITE = """
[suites.s]
models   = [{{ name = "mlp", params = {{ hidden = [16] }}, preset = "paper-code" }}]
datasets = [{{ name = "mnist1d", params = {{ num_samples = 600 }} }}]
methods  = [{methods}]
dims     = [8]
seeds    = 1
train    = {{ epochs = 2, batch_size = 64 }}
"""


def resolve(host, methods: str):
    return resolve_suite(host, "s", parse_suite_text(SUITE.format(methods=methods)).suites["s"])


def test_preset_expands_into_params_that_the_trial_id_hashes_and_params_beside_it_win(host):
    r = resolve(host, '{ name = "lottery-ticket", preset = "paper-code", params = { mask_rule = "top-d" } }')
    (t,) = r.trials
    assert t.identity["method"] == {"momentum_form": "lr-in-buffer"}   # mask_rule given back as its default
    assert t.identity["model"] == {"hidden": [16], "init": "lecun-truncated-normal"}
    explicit = resolve(host, '{ name = "lottery-ticket", params = { momentum_form = "lr-in-buffer" } }')
    assert explicit.trials[0].trial_id == t.trial_id                   # the preset's name is not hashed
    assert "preset" not in t.model_dump(mode="json")["method"]


def test_unknown_preset_is_one_line_naming_the_field_and_the_allowed_values(host):
    with pytest.raises(DofbenchError) as exc:
        resolve(host, '{ name = "lottery-ticket", preset = "paper" }')
    assert str(exc.value) == ("suites.s.methods[0].preset: unknown preset 'paper' for method 'lottery-ticket'; "
                              "allowed: paper-code")
    with pytest.raises(DofbenchError, match=r"methods\[0\]\.preset: unknown preset 'paper-code' for method "
                                            r"'lottery-ticket-imp'; allowed: none"):
        resolve(host, '{ name = "lottery-ticket-imp", preset = "paper-code" }')


# ids of today's default trials, computed on the parent commit (bd3722a) before the options existed
DEFAULT_IDS = [
    (("mlp", {"hidden": [16]}, "random-subspace", {}), "1c667bfadf361c46b73ed68643d78f37"),
    (("mlp", {"hidden": [16]}, "burn-in-subspace", {"steps": 4}), "d955f345d4e139512dc05d3f57e3b52b"),
    (("mlp", {"hidden": [16]}, "lottery-subspace", {"d_max": 16}), "9a6b14cfde881ca4029be2a9a9d0d6d1"),
    (("mlp", {"hidden": [16]}, "lottery-ticket", {}), "d73f0ce484954f62c964dbc4e9bb2614"),
    (("mlp", {"hidden": [16]}, "magnitude-pruning", {}), "69653fddc687721fe900e8d2270fd33e"),
    (("conv", {"channels": [4]}, "random-subspace", {}), "aaef69308fbd6e81cf53c4255c570942"),
]


@pytest.mark.parametrize("case,expected", DEFAULT_IDS)
def test_default_trials_keep_their_ids(host, case, expected):
    model, mparams, method, params = case
    s = trial_spec(host, {"name": model, "params": mparams}, {"name": "digits" if model == "conv" else "mnist1d"},
                   {"name": method, "params": params}, d=8, seed=0, train=TRAIN)
    assert s.trial_id == expected
