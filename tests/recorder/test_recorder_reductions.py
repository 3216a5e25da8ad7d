"""Stored reductions and raw arrays against an independent autograd loop and numpy sums (docs/format.md)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import xarray as xr
from recorder_problems import (
    AllenCahn,
    Blobs,
    TanhMLP,
    classifier,
    reference_batch_gradients,
    reference_reductions,
    tensor_slices,
)

torch = pytest.importorskip("torch")
from pinnlog.analyzer import open_run
from pinnlog.recorder import Recorder

RTOL = 1e-6


def _adam_reference(model, optimizer) -> dict[str, np.ndarray]:
    """Eq 13's ingredients per tensor from the optimizer's state, bias-corrected in numpy."""
    m_hat2, denom2 = [], []
    for group in optimizer.param_groups:
        beta1, beta2 = group["betas"]
        for p in group["params"]:
            state = optimizer.state[p]
            t = float(state["step"])
            v = state["max_exp_avg_sq" if group["amsgrad"] else "exp_avg_sq"].numpy().astype(np.float64)
            m_hat = state["exp_avg"].numpy().astype(np.float64) / (1 - beta1**t)
            denom = np.sqrt(v / (1 - beta2**t)) + group["eps"]
            m_hat2.append(np.sum(m_hat**2))
            denom2.append(np.sum(denom**2))
    return {"sum_m_hat2": np.array(m_hat2), "sum_adam_denom2": np.array(denom2)}


def _train_and_capture(path, model, optimizer, problem, capture_steps, n_steps, raw=False, shared=False):
    """Train full-batch; at each capture step keep what the recorder should store, computed independently."""
    if shared:
        losses = {"batch_loss": problem.residual_loss, "shared_loss": problem.ic_loss}
    else:
        losses = {"batch_loss": problem.batch_loss}
    expected = {}
    with Recorder(
        path,
        model,
        optimizer,
        n_batches=problem.n_batches,
        schedule=capture_steps,
        raw_schedule=capture_steps if raw else None,
        **losses,
    ) as rec:
        for step in range(n_steps):
            loss = problem.train_step(model, optimizer)
            if step in capture_steps:
                expected[step] = {
                    "grads": reference_batch_gradients(model, n_batches=problem.n_batches, **losses),
                    "weights": np.concatenate([p.detach().numpy().ravel() for p in model.parameters()]),
                    "sum_w2": np.array([np.sum(p.detach().numpy().astype(np.float64) ** 2) for p in model.parameters()]),
                    "optimizer": copy.deepcopy(optimizer.state_dict()),
                }
                if isinstance(optimizer, torch.optim.Adam):
                    expected[step].update(_adam_reference(model, optimizer))
            rec.step(step, loss=loss)
    return expected


@pytest.mark.parametrize("raw", [False, True], ids=["welford", "raw-buffer"])
@pytest.mark.parametrize("shared", [False, True], ids=["batch_loss", "shared_loss"])
def test_pinn_reductions_match_an_autograd_loop(run_path, raw, shared):
    problem = AllenCahn(n_batches=4, batch_size=8)
    torch.manual_seed(0)
    model = TanhMLP([2, 12, 12, 1])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    steps = [0, 3, 7]
    expected = _train_and_capture(run_path, model, optimizer, problem, steps, 8, raw=raw, shared=shared)

    stats = xr.open_zarr(run_path, group="gradient_stats").load()
    assert stats["step"].values.tolist() == steps
    slices = tensor_slices(model)
    np.testing.assert_array_equal(stats["numel"].values, [s.stop - s.start for s in slices])
    for i, step in enumerate(steps):
        row = stats.isel(capture=i)
        want = {**reference_reductions(expected[step]["grads"], slices), **expected[step]}
        for name in ("sum_mu2", "sum_sigma2", "sum_rms2", "sum_w2", "sum_m_hat2", "sum_adam_denom2"):
            np.testing.assert_allclose(row[name].values, want[name], rtol=RTOL, err_msg=f"{name} at step {step}")


def test_raw_snapshots_hold_the_batch_gradients_weights_and_adam_moments(run_path):
    problem = AllenCahn(n_batches=3, batch_size=6)
    torch.manual_seed(1)
    model = TanhMLP([2, 10, 1])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    steps = [1, 4]
    expected = _train_and_capture(run_path, model, optimizer, problem, steps, 5, raw=True)

    run = open_run(run_path)
    grads = run["batch_gradients"].to_dataset().compute()
    weights = run["weights"].to_dataset().compute()
    state = run["optimizer_state"].to_dataset().compute()
    for step in steps:
        np.testing.assert_allclose(grads["batch_gradients"].sel(step=step).values, expected[step]["grads"], rtol=RTOL, atol=1e-9)
        np.testing.assert_array_equal(weights["weights"].sel(step=step).values, expected[step]["weights"])
        saved = expected[step]["optimizer"]["state"]
        for name in ("exp_avg", "exp_avg_sq"):
            flat = np.concatenate([saved[i][name].numpy().ravel() for i in range(len(saved))])
            np.testing.assert_array_equal(state[name].sel(step=step).values, flat)
        assert int(state["optimizer_step"].sel(step=step)) == int(saved[0]["step"]) == step + 1


@pytest.mark.parametrize("opt", ["sgd", "adamw-amsgrad"])
def test_classifier_reductions_and_optimizer_specific_variables(run_path, opt):
    problem = Blobs(n_batches=5, batch_size=12)
    model = classifier(seed=2)
    if opt == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.8, 0.95), eps=1e-6, amsgrad=True)
    expected = _train_and_capture(run_path, model, optimizer, problem, [2, 5], 6)

    stats = xr.open_zarr(run_path, group="gradient_stats").load()
    assert ("sum_m_hat2" in stats) == (opt != "sgd")
    for i, step in enumerate([2, 5]):
        want = {**reference_reductions(expected[step]["grads"], tensor_slices(model)), **expected[step]}
        for name in [n for n in ("sum_mu2", "sum_sigma2", "sum_rms2", "sum_w2", "sum_m_hat2", "sum_adam_denom2") if n in stats]:
            np.testing.assert_allclose(stats[name].isel(capture=i).values, want[name], rtol=RTOL, err_msg=name)


def test_mean_of_equal_batch_gradients_is_the_full_batch_gradient(run_path):
    problem = Blobs(n_batches=5, batch_size=12)
    model = classifier(seed=3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    with Recorder(run_path, model, optimizer, problem.batch_loss, problem.n_batches, schedule=[0], raw_schedule=[0]) as rec:
        optimizer.zero_grad()
        problem.full_loss(model).backward()
        optimizer.step()
        twin = copy.deepcopy(model)
        problem.full_loss(twin).backward()
        full = np.concatenate([p.grad.numpy().ravel() for p in twin.parameters()]).astype(np.float64)
        rec.step(0)

    run = open_run(run_path)
    mean = run["batch_gradients"]["batch_gradients"].isel(step=0).mean("batch").values.astype(np.float64)
    np.testing.assert_allclose(mean, full, rtol=1e-5, atol=1e-7 * np.abs(full).max())
    full_mu2 = np.array([np.sum(full[s] ** 2) for s in tensor_slices(model)])
    np.testing.assert_allclose(run["gradient_stats"]["sum_mu2"].isel(step=0).values, full_mu2, rtol=1e-5)


def test_sum_sigma2_is_exact_at_snr_100(run_path):
    """Nearly equal batches (SNR ~ 100): float32 E[g^2] - mu^2 would lose the digits that count."""
    gen = torch.Generator().manual_seed(4)
    k, n, d = 8, 32, 40
    base = torch.randn(n, d, generator=gen)
    inputs = [base + 0.01 * torch.randn(n, d, generator=gen) for _ in range(k)]
    targets = [torch.zeros(n, 1) for _ in range(k)]
    model = torch.nn.Linear(d, 1)
    with torch.no_grad():
        model.weight.fill_(1.0)  # far from the optimum w = 0: every batch pulls the same way

    def batch_loss(m, b):
        return ((m(inputs[b]) - targets[b]) ** 2).mean()

    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    with Recorder(run_path, model, optimizer, batch_loss, k, schedule=[0]) as rec:
        rec.step(0)
    grads = reference_batch_gradients(model, batch_loss, k)
    ref = reference_reductions(grads, tensor_slices(model))
    stored = xr.open_zarr(run_path, group="gradient_stats").load()
    snr = np.sqrt(ref["sum_mu2"][0] / ref["sum_sigma2"][0])
    assert 80 < snr < 1000
    np.testing.assert_allclose(stored["sum_sigma2"].values[0], ref["sum_sigma2"], rtol=RTOL)
    # The cancellation this guards against really bites here: float32 E[g^2] - mu^2 is off by far more.
    g32 = grads[:, :d].astype(np.float32)
    naive = np.sum((g32**2).mean(axis=0) - g32.mean(axis=0) ** 2)
    assert abs(naive - ref["sum_sigma2"][0]) / ref["sum_sigma2"][0] > 10 * RTOL
