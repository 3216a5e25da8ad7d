"""The CUDA path (pinned buffers, non-blocking copies, scalars kept on the device): runs where a GPU is."""

from __future__ import annotations

import numpy as np
import pytest
from recorder_problems import AllenCahn, TanhMLP, reference_batch_gradients, reference_reductions, tensor_slices

torch = pytest.importorskip("torch")
from pinnlog.analyzer import open_run
from pinnlog.recorder import every

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _run(path, n_steps=12, dropout=0.1, reference=True):
    problem = AllenCahn(n_batches=4, batch_size=16).to("cuda")
    torch.manual_seed(0)
    model = TanhMLP([2, 16, 16, 1], dropout=dropout).cuda()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    rec = expected = None
    if path is not None:
        expected = {"loss": [], "grads": {}, "residual": {}, "weights": {}}
        rec = problem.recorder(path, model, optimizer, schedule=every(3), raw_schedule=every(6))
    for step in range(n_steps):
        loss = problem.train_step(model, optimizer)
        if rec is not None and reference:
            expected["loss"].append(loss.item())
            if step % 3 == 0:
                expected["grads"][step] = reference_batch_gradients(
                    model, problem.residual_loss, problem.n_batches, shared_loss=problem.ic_loss
                )
            if step % 6 == 0:
                expected["residual"][step] = problem.residuals(model).cpu().numpy()
                expected["weights"][step] = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).cpu().numpy()
        if rec is not None:
            rec.step(step, loss=loss, lr=torch.tensor(0.5, device="cuda"))
    if rec is not None:
        rec.close()
    return model, expected


def test_cuda_store_matches_an_independent_loop(run_path):
    model, expected = _run(run_path, dropout=0.0)
    run = open_run(run_path)
    assert run.attrs["device"].startswith("cuda")
    np.testing.assert_allclose(run["scalars"]["loss"].values, expected["loss"], rtol=1e-6)
    np.testing.assert_array_equal(run["scalars"]["lr"].values, 0.5)
    stats = run["gradient_stats"].to_dataset().compute()
    slices = tensor_slices(model)
    for step, grads in expected["grads"].items():
        for name, want in reference_reductions(grads, slices).items():
            np.testing.assert_allclose(stats[name].sel(step=step).values, want, rtol=1e-5, err_msg=f"{name} at {step}")
    raw = run["batch_gradients"]["batch_gradients"]
    for step in expected["residual"]:
        np.testing.assert_allclose(raw.sel(step=step).values, expected["grads"][step], rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(run["weights"]["weights"].sel(step=step).values, expected["weights"][step])
        np.testing.assert_allclose(run["residuals"]["residual"].sel(step=step).values, expected["residual"][step], rtol=1e-6)
    assert run["activations"]["layer_1"].shape == (2, 64, 16)


def test_cuda_recorded_run_trains_like_the_unrecorded_one(run_path):
    plain, _ = _run(None)
    recorded, _ = _run(run_path, reference=False)  # the reference loop would draw dropout masks
    for a, b in zip(plain.parameters(), recorded.parameters()):
        assert torch.equal(a, b)
