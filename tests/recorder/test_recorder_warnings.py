"""Every warning the recorder gives is a PinnlogWarning of its own kind (issue 12: one errors module).

Each test provokes one warning the way a user meets it (as the fault and model-change tests do) and
checks its class: a ``RecorderWarning`` subclass, so ``warnings.simplefilter("ignore", Kind)`` silences
exactly that kind, and a ``RuntimeWarning``, so filters written for older releases still match.
"""

from __future__ import annotations

import time
import warnings

import pytest

torch = pytest.importorskip("torch")
from recorder_problems import disk_fills_after
from torch import nn

from pinnlog.analyzer.errors import (
    EngineFallbackWarning,
    ModelChangedWarning,
    NonFiniteGradientWarning,
    PinnlogWarning,
    RecorderNotClosedWarning,
    RecorderWarning,
    RecordingStoppedWarning,
    StaleOptimizerWarning,
    UnscheduledCaptureWarning,
    WriterBehindWarning,
)
from pinnlog.analyzer.store.write import RunWriter
from pinnlog.recorder import Recorder, every
from pinnlog.recorder import recorder as recorder_module
from pinnlog.recorder import writer as writer_module

K, N = 4, 8  # batches, samples per batch


def _data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(K * N, 3, generator=g), torch.randn(K * N, 1, generator=g)


def _mlp(batchnorm: bool = False) -> nn.Module:
    torch.manual_seed(0)
    middle = [nn.BatchNorm1d(6)] if batchnorm else []
    return nn.Sequential(nn.Linear(3, 6), *middle, nn.Tanh(), nn.Linear(6, 1))


def _batch_loss(x, y):
    def loss(model, b):
        return ((model(x[b * N : (b + 1) * N]) - y[b * N : (b + 1) * N]) ** 2).mean()

    return loss


def _train_step(model, optimizer, x, y) -> None:
    optimizer.zero_grad()
    ((model(x) - y) ** 2).mean().backward()
    optimizer.step()


def _sgd_recorder(run_path, model, x, y, batch_loss=None, **options) -> Recorder:
    """A Recorder of K batches over an SGD optimizer (``batch_loss``: the plain MSE of each batch by default)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    return Recorder(run_path, model, optimizer, batch_loss or _batch_loss(x, y), K, **options)


def _warnings_of_recording(
    run_path, n_steps: int, *, batch_loss=None, each_step=None, **options
) -> list[warnings.WarningMessage]:
    """The warnings given while the seeded MLP on ``_data`` is recorded for ``n_steps`` steps, each one captured;
    ``each_step(rec, step)`` stands for the plain ``rec.step(step)``."""
    x, y = _data()
    model = _mlp()

    def run():
        with _sgd_recorder(run_path, model, x, y, batch_loss, schedule=every(1), **options) as rec:
            for step in range(n_steps):
                (each_step or Recorder.step)(rec, step)

    return _caught(run)


def _warnings_of_training(
    run_path, *, steps: int, schedule, model=None, adam=False, change=None, **options
) -> list[warnings.WarningMessage]:
    """The warnings given while ``model`` (default: the seeded MLP) trains ``steps`` SGD (or Adam) steps on
    ``_data`` under a Recorder; ``change(step, model, optimizer)`` may alter the model before a step, or
    return a new optimizer that the recorder is not told about."""
    x, y = _data()
    model = _mlp() if model is None else model

    def run():
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2) if adam else torch.optim.SGD(model.parameters(), lr=0.01)
        with Recorder(run_path, model, optimizer, _batch_loss(x, y), K, schedule=schedule, **options) as rec:
            for step in range(steps):
                if change is not None:
                    optimizer = change(step, model, optimizer) or optimizer
                _train_step(model, optimizer, x, y)
                rec.step(step)

    return _caught(run)


def _caught(fn) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()
    return caught


def _assert_kind(caught, fragment: str, kind: type[Warning]) -> None:
    """The warnings that say ``fragment`` exist, and each is a ``kind`` (a RecorderWarning, a RuntimeWarning)."""
    said = [w for w in caught if fragment in str(w.message)]
    assert said, f"no warning says {fragment!r}; got {[str(w.message)[:80] for w in caught]}"
    for w in said:
        assert issubclass(w.category, kind), f"{w.category.__name__} is not a {kind.__name__}: {w.message}"
    assert issubclass(kind, RecorderWarning) and issubclass(kind, PinnlogWarning) and issubclass(kind, RuntimeWarning)


def test_non_finite_gradients(run_path):
    plain = _batch_loss(*_data())

    def batch_loss(m, b):
        return plain(m, b) * float("nan") if b == 1 else plain(m, b)

    def step_and_flush(rec, step):
        rec.step(step)
        rec.flush()

    caught = _warnings_of_recording(run_path, 3, batch_loss=batch_loss, each_step=step_and_flush)
    _assert_kind(caught, "non-finite batch gradients", NonFiniteGradientWarning)


def test_recording_stopped_with_on_error_warn(run_path, monkeypatch):
    disk_fills_after(monkeypatch, n_ok=1)

    def step_and_pause(rec, step):
        rec.step(step)
        time.sleep(0.002)

    caught = _warnings_of_recording(run_path, 30, each_step=step_and_pause, on_error="warn")
    _assert_kind(caught, "training continues unrecorded", RecordingStoppedWarning)


def test_recording_stopped_while_closing_after_an_exception(run_path, monkeypatch):
    disk_fills_after(monkeypatch, n_ok=0)
    x, y = _data()
    model = _mlp()

    def run():
        with pytest.raises(KeyError), _sgd_recorder(run_path, model, x, y, schedule=every(1)) as rec:
            rec.step(0)
            raise KeyError("the training loop failed")

    _assert_kind(_caught(run), "failed as well", RecordingStoppedWarning)


def test_a_recorder_left_open_at_exit(run_path):
    x, y = _data()
    model = _mlp()
    rec = _sgd_recorder(run_path, model, x, y, schedule=every(1))
    rec.step(0)
    caught = _caught(recorder_module._close_forgotten_recorders)  # what the atexit hook runs
    _assert_kind([w for w in caught if str(run_path) in str(w.message)], "was not closed", RecorderNotClosedWarning)


def test_a_writer_that_keeps_training_waiting(run_path, monkeypatch):
    monkeypatch.setattr(writer_module, "QUEUE_SIZE", 1)
    monkeypatch.setattr(writer_module, "PATIENCE_S", 0.005)
    real = RunWriter.append

    def slow_append(self, group, rows, dims=None):
        time.sleep(0.02)
        return real(self, group, rows, dims)

    monkeypatch.setattr(RunWriter, "append", slow_append)
    caught = _warnings_of_recording(run_path, 20, each_step=lambda rec, step: rec.step(step, loss=step))
    _assert_kind(caught, "writer thread is behind", WriterBehindWarning)


def test_the_vectorised_engine_falling_back(run_path):
    x, y = _data()

    def batch_losses(m, batches):
        xs, ys = x.view(K, N, 3)[batches], y.view(K, N, 1)[batches]
        return ((m(xs) - ys) ** 2).mean(dim=(1, 2))

    # BatchNorm in train mode mixes a batch's samples: the loop must run it
    model = _mlp(batchnorm=True)
    caught = _warnings_of_training(run_path, steps=2, schedule=every(1), model=model, batch_losses=batch_losses)
    _assert_kind(caught, "vectorised gradient engine falls back", EngineFallbackWarning)


def _freeze_the_first_layer_at_step_3(step, model, optimizer):
    if step == 3:
        model[0].requires_grad_(False)


def test_a_layer_frozen_mid_run(run_path):
    caught = _warnings_of_training(run_path, steps=6, schedule=every(2), change=_freeze_the_first_layer_at_step_3)
    _assert_kind(caught, "frozen", ModelChangedWarning)


def _a_new_optimizer_at_step_5(step, model, optimizer):
    if step == 5:
        return torch.optim.Adam(model.parameters(), lr=1e-3)  # rec.optimizer is not told
    return None


def test_a_new_optimizer_not_given_to_the_recorder(run_path):
    caught = _warnings_of_training(run_path, steps=9, schedule=every(4), adam=True, change=_a_new_optimizer_at_step_5)
    _assert_kind(caught, "rec.optimizer = new_optimizer", StaleOptimizerWarning)


def test_residuals_with_no_schedule_to_record_them(run_path):
    x, y = _data()
    model = _mlp()

    caught = _caught(lambda: _sgd_recorder(run_path, model, x, y, residuals=lambda m: (m(x) - y).squeeze(-1)).close())
    _assert_kind(caught, "neither is set", UnscheduledCaptureWarning)
