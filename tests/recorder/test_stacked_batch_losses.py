"""stacked_batch_losses: batch_loss and batch_losses derived from one pointwise loss on stacked batches."""

from __future__ import annotations

import numpy as np
import pytest
from recorder_problems import AllenCahn, TanhMLP, reference_batch_gradients

torch = pytest.importorskip("torch")

from pinnlog.analyzer.errors import RecorderError
from pinnlog.recorder import Recorder, every, stacked_batch_losses
from pinnlog.recorder.captures import build_layout
from pinnlog.recorder.engines import vectorised_rows


def test_derived_losses_give_the_batch_gradients_of_an_independent_loop(tmp_path):
    problem = AllenCahn(n_batches=5, batch_size=8, seed=0)
    torch.manual_seed(0)
    model = TanhMLP([2, 12, 12, 1])
    batch_loss, batch_losses = stacked_batch_losses(problem.points.view(5, 8, 2), lambda m, x: problem.residual_at(m, x) ** 2)
    for b in range(5):  # the same loss as the problem's own, batch by batch
        torch.testing.assert_close(batch_loss(model, b), problem.residual_loss(model, b), rtol=1e-6, atol=0)
    rows = vectorised_rows(model, build_layout(model), batch_losses, 0, 5).double().numpy()
    reference = reference_batch_gradients(model, problem.residual_loss, 5)  # .backward() on a copy
    assert (np.linalg.norm(rows - reference, axis=1) / np.linalg.norm(reference, axis=1)).max() <= 1e-5
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    with Recorder(tmp_path / "run.zarr", model, optimizer, batch_loss, 5, batch_losses=batch_losses, schedule=every(1)) as rec:
        rec.step(0)
    assert rec._engine.history == ["vectorised"] and rec._engine.max_check_error <= 1e-5


def test_batches_must_be_stacked():
    with pytest.raises(RecorderError, match=r"shape \(K, n, \.\.\.\)"):
        stacked_batch_losses(torch.zeros(10), lambda m, x: x)
