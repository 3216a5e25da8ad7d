"""overlap=True: gradient captures on a snapshot in the capture thread, same numbers, training untouched."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest
from recorder_problems import AllenCahn, TanhMLP

torch = pytest.importorskip("torch")

from pinnlog.analyzer import open_run
from pinnlog.analyzer.errors import OverlapOffWarning
from pinnlog.recorder import Recorder, every

STEPS = 24


def _run(path, overlap, batch_losses=None, optimizer="adam"):
    """Train the tests' Allen-Cahn PINN for STEPS steps, recorded into ``path`` (None: unrecorded)."""
    problem = AllenCahn(n_batches=6, batch_size=8, seed=0)
    torch.manual_seed(0)
    model = TanhMLP([2, 12, 12, 1])
    if optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9)
    threads: list[str] = []

    def losses(stacked, batches):  # the capture's batch losses; says which thread computed them
        threads.append(threading.current_thread().name)
        return (batch_losses or problem.residual_losses)(stacked, batches)

    rec = None
    if path is not None:
        rec = Recorder(
            path,
            model,
            opt,
            problem.residual_loss,
            problem.n_batches,
            shared_loss=problem.ic_loss,
            batch_losses=losses,
            schedule=every(2),
            raw_schedule=[10],
            check_every=5,
            overlap=overlap,
        )
    for step in range(STEPS):
        opt.zero_grad()
        loss = problem.full_loss(model)
        loss.backward()
        opt.step()
        torch.rand(1)  # training draws random numbers too: the capture thread must not move this stream
        if rec is not None:
            rec.step(step, loss=loss)
    if rec is not None:
        rec.close()
    return model, threads, rec, torch.rand(1)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_overlapped_captures_store_the_synchronous_numbers_and_leave_training_bitwise_unchanged(tmp_path, optimizer):
    plain, _, _, plain_rng = _run(None, False, optimizer=optimizer)
    _run(tmp_path / "sync.zarr", False, optimizer=optimizer)
    overlapped, threads, rec, rng = _run(tmp_path / "overlap.zarr", True, optimizer=optimizer)
    for a, b in zip(plain.parameters(), overlapped.parameters()):
        assert torch.equal(a, b)
    assert torch.equal(rng, plain_rng)  # the RNG stream training sees is the unrecorded one
    # Captures 0 (self-check, random-number probe), 5 (self-check, raw step 10) and 10 (self-check) are
    # synchronous; the others ran in the capture thread, on the snapshot.
    on_main = [name == "MainThread" for name in threads]
    assert on_main == [i % 5 == 0 for i in range(STEPS // 2)]
    assert all(name.startswith("pinnlog-capture") for name in threads if name != "MainThread")
    ours, theirs = open_run(tmp_path / "overlap.zarr"), open_run(tmp_path / "sync.zarr")
    assert ours.attrs["status"] == "complete"
    for group in ("gradient_stats", "batch_gradients", "scalars"):
        a, b = ours[group].to_dataset(), theirs[group].to_dataset()
        for var in b.data_vars:
            if var == "wall_time":
                continue
            np.testing.assert_array_equal(a[var].values, b[var].values, err_msg=f"{group}/{var}")
    np.testing.assert_array_equal(ours["gradient_stats"]["step"].values, np.arange(0, STEPS, 2))
    assert rec._engine.history == ["vectorised"] * (STEPS // 2)


def test_loss_functions_that_draw_random_numbers_keep_captures_synchronous(tmp_path):
    problem = AllenCahn(n_batches=6, batch_size=8, seed=0)

    def noisy_losses(stacked, batches):
        torch.rand(1)  # draws from the training stream: a capture thread would move it under training
        return problem.residual_losses(stacked, batches)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plain, _, _, plain_rng = _run(None, False)
        model, threads, _, rng = _run(tmp_path / "run.zarr", True, batch_losses=noisy_losses)
    assert [str(w.message) for w in caught if issubclass(w.category, OverlapOffWarning)] == [
        "pinnlog: overlap=True: gradient captures stay synchronous: batch_loss, batch_losses or shared_loss draws random numbers"
    ]
    assert set(threads) == {"MainThread"}
    assert torch.equal(rng, plain_rng)
    for a, b in zip(plain.parameters(), model.parameters()):
        assert torch.equal(a, b)


def test_a_recorder_that_merges_processes_keeps_captures_synchronous(tmp_path):
    """DistributedRecorder overrides how a capture gets its batch gradients (every rank's, merged): no overlap."""

    class Merging(Recorder):
        def _capture_batch_gradients(self, raw):
            return super()._capture_batch_gradients(raw)

    problem = AllenCahn(n_batches=6, batch_size=8, seed=0)
    model = TanhMLP([2, 12, 12, 1])
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Merging(
            tmp_path / "run.zarr",
            model,
            opt,
            problem.residual_loss,
            6,
            batch_losses=problem.residual_losses,
            overlap=True,
            schedule=every(1),
        ) as rec:
            for step in range(3):
                problem.train_step(model, opt)
                rec.step(step)
    assert rec._background is None and rec._pool is None
    assert sum(issubclass(w.category, OverlapOffWarning) and "(DDP)" in str(w.message) for w in caught) == 1
