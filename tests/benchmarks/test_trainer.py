"""The PINN trainer: initialisation, RBA update (Eq. 28), batch/full-loss identity, test error (Eq. 7)."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from tiny_configs import tiny_config

from benchmarks.pinns.configs import make_config, make_problem
from benchmarks.pinns.helmholtz import Helmholtz
from benchmarks.pinns.trainer import MLP, PINNTrainer, TrainingConfig


def tiny(name="burgers", **kw):
    return tiny_config(name, steps=5, hidden=(16, 16), n_collocation=96, n_boundary=24, n_probe=8, **kw)


def test_mlp_is_xavier_normal_with_default_biases_and_the_authors_names():
    torch.manual_seed(0)
    net = MLP((2, 256, 256, 1))
    names = [n for n, _ in net.named_parameters()]
    assert names == [f"layers.layer_{i}.{p}" for i in range(3) for p in ("weight", "bias")]
    w = net.layers.layer_1.weight.detach().numpy()
    assert w.std() == pytest.approx(np.sqrt(2 / (256 + 256)), rel=0.02)
    assert abs(w.mean()) < 3 * w.std() / np.sqrt(w.size)
    for layer, fan_in in ((net.layers.layer_0, 2), (net.layers.layer_1, 256)):
        b = layer.bias.detach().numpy()
        bound = 1 / np.sqrt(fan_in)
        assert np.all(np.abs(b) <= bound) and np.abs(b).max() > 0.8 * bound  # U(−1/√fan_in, 1/√fan_in)
    x = torch.randn(5, 2)
    h = torch.tanh(net.layers.layer_0(x))
    expected = net.layers.layer_2(torch.tanh(net.layers.layer_1(h)))
    torch.testing.assert_close(net(x), expected)


def test_rba_weights_follow_eq_28_from_the_pre_step_residuals():
    trainer = PINNTrainer(make_problem("burgers"), tiny(), rba=True, seed=3)
    lam = np.zeros(96)
    for _ in range(4):
        r = trainer.residuals(trainer.model)[0].numpy().astype(np.float64)  # at the weights of this step
        lam = 0.999 * lam + 0.001 * np.abs(r) / np.abs(r).max()
        trainer.train_step()
        np.testing.assert_allclose(trainer.rba_weight.numpy(), lam, rtol=2e-5, atol=1e-9)


def test_vanilla_runs_carry_no_weights_and_report_the_bare_residual():
    trainer = PINNTrainer(make_problem("burgers"), tiny(), rba=False, seed=3)
    assert trainer.rba_weight is None
    out = trainer.residuals(trainer.model)
    assert isinstance(out, torch.Tensor) and out.shape == (96,)


@pytest.mark.parametrize("rba", [False, True])
def test_full_gradient_is_the_mean_of_the_batch_gradients_plus_the_shared_one(rba):
    # the recorder's μ (Eq. 8) must be the gradient training follows: equal fixed batches that
    # partition the collocation set, each weighted by its own RBA rows
    trainer = PINNTrainer(make_problem("allen_cahn"), tiny("allen_cahn"), rba=rba, seed=1)
    if rba:
        trainer.rba_weight.copy_(torch.rand(96))
    params = list(trainer.model.parameters())

    def grad(loss):
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)])

    full = grad(trainer.pde_loss(trainer.model) + trainer.shared_loss(trainer.model))
    shared = grad(trainer.shared_loss(trainer.model))
    batch_grads = []
    for b in range(4):
        x = trainer.collocation[24 * b : 24 * (b + 1)].clone().requires_grad_(True)
        r = trainer.problem.residual(trainer.model, x)[:, 0]
        w = trainer.rba_weight[24 * b : 24 * (b + 1)] if rba else 1.0
        batch_grads.append(grad(((w * r) ** 2).mean()) + shared)
        torch.testing.assert_close(trainer.batch_loss(trainer.model, b), ((w * r) ** 2).mean(), rtol=1e-6, atol=1e-10)
    torch.testing.assert_close(torch.stack(batch_grads).mean(0), full, rtol=1e-4, atol=1e-7)


def test_test_error_is_the_relative_l2_of_eq_7():
    problem = Helmholtz()
    trainer = PINNTrainer(problem, tiny("helmholtz"), rba=False, seed=0)
    with torch.no_grad():
        for p in trainer.model.parameters():
            p.zero_()
    assert trainer.test_error() == pytest.approx(1.0)  # zero prediction: ‖u‖/‖u‖

    class Exact(torch.nn.Module):
        def forward(self, x):
            return (torch.sin(6 * np.pi * x[:, :1]) * torch.sin(6 * np.pi * x[:, 1:])).to(torch.float32)

    trainer.model = Exact()
    assert trainer.test_error() < 1e-5  # float32 rounding only

    class Doubled(Exact):
        def forward(self, x):
            return 2 * super().forward(x)

    trainer.model = Doubled()
    assert trainer.test_error() == pytest.approx(1.0, rel=1e-5)  # ‖2u − u‖ / ‖u‖


def test_same_seed_same_run_and_the_lr_decays_in_steps():
    cfg = replace(tiny(), lr_decay_every=2)
    a = PINNTrainer(make_problem("burgers"), cfg, rba=True, seed=7)
    b = PINNTrainer(make_problem("burgers"), cfg, rba=True, seed=7)
    lrs = [a.train_step()["lr"] for _ in range(5)]
    for _ in range(5):
        b.train_step()
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(pa, pb)
    np.testing.assert_allclose(lrs, [1e-3, 1e-3, 9e-4, 9e-4, 8.1e-4], rtol=1e-12)


def test_paper_config_is_the_papers_set_up():
    cfg = make_config("allen_cahn", "paper")
    assert cfg.hidden == (128,) * 6 and cfg.steps == 300_000
    assert cfg.n_collocation == 25_600 and cfg.n_batches == 100 and cfg.n_collocation // cfg.n_batches == 256
    picked = [s for s in range(1_000) if cfg.schedule(s)]
    assert picked == list(range(0, 300, 2)) + list(range(300, 1_000, 100))
    assert make_config("burgers", "paper").steps == 100_000


def test_unequal_batches_are_refused():
    with pytest.raises(ValueError, match="multiple of n_batches"):
        TrainingConfig(n_collocation=100, n_batches=3)


def test_rba_weights_stay_finite_when_every_residual_vanishes():
    trainer = PINNTrainer(make_problem("burgers"), tiny(), rba=True, seed=0)
    trainer.rba_weight.fill_(0.5)
    trainer.update_rba(torch.zeros(96, 1))
    np.testing.assert_allclose(trainer.rba_weight.numpy(), 0.5 * 0.999)


@pytest.mark.parametrize("rba", [False, True])
def test_allen_cahn_batch_losses_give_the_loops_batch_gradients(rba, tmp_path):
    # the vectorised engine's batch_losses (stacked points, one copy of the weights per batch) must give
    # row b = the gradient of batch_loss(model, b), RBA weights included
    from pinnlog.recorder.captures import build_layout
    from pinnlog.recorder.engines import _loop_rows, vectorised_rows

    trainer = PINNTrainer(make_problem("allen_cahn"), tiny("allen_cahn"), rba=rba, seed=1)
    if rba:
        trainer.rba_weight.copy_(torch.rand(96))
    layout = build_layout(trainer.model)
    rows = vectorised_rows(trainer.model, layout, trainer.batch_losses, 0, 4)
    loop = _loop_rows(trainer.model, layout, trainer.batch_loss, 0, 4)
    assert ((rows - loop).norm(dim=1) / loop.norm(dim=1)).max() <= 1e-5
    rec = trainer.make_recorder(tmp_path / "run.zarr")  # an Allen-Cahn run records with the vectorised engine
    assert rec._engine.name == "vectorised"
    rec.close()
