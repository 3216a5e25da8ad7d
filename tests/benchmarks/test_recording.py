"""Each benchmark trained a few steps with the recorder on; the store is checked against the trainer.

The gradient statistics must describe the gradient training follows (μ = full-batch gradient, the
spread over the K fixed batches with the shared boundary loss added to each), the residual group the
trainer's residuals and RBA weights, the activation group the tanh outputs on the probe set, and the
scalars what ``rec.step`` was given. Recording must not change the training itself.
"""

from dataclasses import replace

import numpy as np
import pytest
import torch
from tiny_configs import tiny_config

from benchmarks.pinns.configs import PROBLEMS, make_problem
from benchmarks.pinns.trainer import PINNTrainer
from pinnlog.analyzer import open_run
from pinnlog.recorder import every

STEPS = 4


def tiny(name):
    config = tiny_config(name, steps=STEPS, hidden=(12, 12), n_collocation=48, n_boundary=16, n_probe=10, schedule=every(1))
    snapshots = every(3)  # raw gradients, residuals and activations at the same captures
    return replace(config, raw_schedule=snapshots, residual_schedule=snapshots, probe_schedule=snapshots)


def problem_for(name):
    # Re = 100 has the cheap reference (1.5 s); the physics code is the same as at Re = 1000
    return make_problem(name, reynolds=100.0) if name == "cavity" else make_problem(name)


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory):
    # one cavity reference for the module, and none written into the user's home
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        yield


def flat_grad(loss, params):
    # the cavity's ψ-output bias never reaches a velocity: its gradient is zero, not missing
    grads = torch.autograd.grad(loss, params, allow_unused=True, materialize_grads=True)
    return torch.cat([g.reshape(-1) for g in grads]).double()


@pytest.mark.parametrize("name", list(PROBLEMS))
@pytest.mark.parametrize("rba", [False, True], ids=["vanilla", "rba"])
def test_recorded_store_matches_the_trainer(tmp_path, name, rba):
    trainer = PINNTrainer(problem_for(name), tiny(name), rba=rba, seed=2)
    seen = []
    trainer.train(out=tmp_path / "run.zarr", on_step=lambda s, sc: seen.append(dict(sc)))
    run = open_run(tmp_path / "run.zarr")
    assert run.attrs["status"] == "complete"
    assert run.attrs["config"]["pde"] == name and run.attrs["config"]["rba"] is rba
    assert run.attrs["n_batches"] == 4 and run.attrs["shared_loss"] is True

    scalars = run["scalars"].to_dataset()
    np.testing.assert_array_equal(scalars["step"].values, np.arange(STEPS))
    np.testing.assert_allclose(scalars["loss"].values, [s["loss"] for s in seen], rtol=1e-6)
    expected_error = [s.get("test_error", np.nan) for s in seen]  # steps 0, 2 and the last
    np.testing.assert_allclose(scalars["test_error"].values, expected_error, rtol=1e-6)
    assert np.isnan(expected_error[1]) and not np.isnan(expected_error[-1])

    # gradient statistics at the last step, recomputed here at the final weights and RBA weights
    model, params = trainer.model, list(trainer.model.parameters())
    shared = flat_grad(trainer.problem.boundary_loss(model, trainer.boundary), params)
    grads = []
    for b in range(4):
        x = trainer.collocation[12 * b : 12 * (b + 1)].clone().requires_grad_(True)
        r = trainer.problem.residual(model, x)
        if rba:
            r = trainer.rba_weight[12 * b : 12 * (b + 1), None] * r
        grads.append(flat_grad(r.pow(2).sum(1).mean(), params) + shared)
    g = torch.stack(grads).numpy()
    stats = run["gradient_stats"].to_dataset().sel(step=STEPS - 1)
    np.testing.assert_allclose(stats["sum_mu2"].sum(), np.sum(g.mean(0) ** 2), rtol=1e-4)
    np.testing.assert_allclose(stats["sum_sigma2"].sum(), np.sum(g.var(0)), rtol=1e-3)

    # residuals and RBA weights at step 3 (the last), activations on the probe set
    res = run["residuals"].to_dataset().sel(step=3)
    with torch.enable_grad():
        x = trainer.collocation.clone().requires_grad_(True)
        r = trainer.problem.residual(model, x).detach()
    r = r[:, 0] if r.shape[1] == 1 else r.norm(dim=1)
    np.testing.assert_allclose(res["residual"].values, r.numpy(), rtol=1e-5, atol=1e-6)
    if rba:
        np.testing.assert_allclose(res["rba_weight"].values, trainer.rba_weight.numpy(), rtol=1e-6)
        assert np.all(res["rba_weight"].values > 0)
    else:
        assert "rba_weight" not in res
    acts = run["activations"].to_dataset().sel(step=3)
    with torch.no_grad():
        h0 = torch.tanh(model.layers.layer_0(trainer.probe))
        h1 = torch.tanh(model.layers.layer_1(h0))
    np.testing.assert_allclose(acts["layer_0"].values, h0.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(acts["layer_1"].values, h1.numpy(), rtol=1e-5, atol=1e-6)


def test_recording_does_not_change_training(tmp_path):
    cfg = tiny("allen_cahn")
    recorded = PINNTrainer(make_problem("allen_cahn"), cfg, rba=True, seed=5)
    plain = PINNTrainer(make_problem("allen_cahn"), cfg, rba=True, seed=5)
    recorded.train(out=tmp_path / "run.zarr")
    plain.train()
    for a, b in zip(recorded.model.parameters(), plain.model.parameters()):
        assert torch.equal(a, b)
    assert torch.equal(recorded.rba_weight, plain.rba_weight)
    assert recorded.history["test_error"] == plain.history["test_error"]
