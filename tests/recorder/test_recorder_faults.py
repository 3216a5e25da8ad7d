"""Bad input gets one-line errors; writer failures surface and leave a readable prefix; nothing is dropped."""

from __future__ import annotations

import threading
import time
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from recorder_problems import disk_fills_after
from torch import nn

from pinnlog.analyzer import open_run
from pinnlog.analyzer.errors import PinnlogError, RecorderError, WriterError
from pinnlog.analyzer.store.write import RunWriter
from pinnlog.recorder import Recorder, every
from pinnlog.recorder import writer as writer_module

X = torch.randn(8, 3)


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))


def _loss(m, b):
    return (m(X[b * 4 : (b + 1) * 4]) ** 2).mean()


def _recorder(path, model=None, **options):
    model = model or _model()
    options = {"batch_loss": _loss, "n_batches": 2, **options}
    return Recorder(path, model, torch.optim.SGD(model.parameters(), lr=0.1), **options)


def _one_line_error(excinfo, *needles):
    message = str(excinfo.value)
    assert isinstance(excinfo.value, PinnlogError)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message


# -- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "batch_loss, needles",
    [
        (lambda m, b: _loss(m, b).item(), ["returned float", "no .item()"]),
        (lambda m, b: m(X[:4]).squeeze(-1), ["shape (4,)", "not a scalar", ".mean()"]),
        (lambda m, b: _loss(m, b).detach(), ["does not require grad", "torch.no_grad()"]),
    ],
    ids=["float", "vector", "detached"],
)
def test_batch_loss_that_is_not_a_differentiable_scalar(run_path, batch_loss, needles):
    rec = _recorder(run_path, batch_loss=batch_loss, schedule=[0], raw_schedule=[0])
    with pytest.raises(RecorderError) as excinfo:
        rec.step(0)
    _one_line_error(excinfo, "batch_loss(model, 0)", *needles)
    rec.close()


def test_a_failed_capture_releases_the_raw_slot_and_restores_training_state(run_path):
    calls = {"n": 0}

    def flaky(m, b):
        calls["n"] += 1
        if calls["n"] == 1:
            torch.rand(3)  # consumes RNG before failing: must be undone
            return 1.0
        return _loss(m, b)

    rec = _recorder(run_path, batch_loss=flaky, schedule=every(1), raw_schedule=every(1))
    rng = torch.get_rng_state()
    with pytest.raises(RecorderError):
        rec.step(0)
    assert torch.equal(torch.get_rng_state(), rng)
    done = threading.Event()
    threading.Thread(target=lambda: (rec.step(1), done.set()), daemon=True).start()
    assert done.wait(30), "the raw slot of the failed capture was never given back"
    rec.close()
    assert open_run(run_path)["batch_gradients"]["step"].values.tolist() == [1]


@pytest.mark.parametrize("n_batches", [1, 0, 2.5, True])
def test_n_batches_below_two(run_path, n_batches):
    with pytest.raises(RecorderError) as excinfo:
        _recorder(run_path, n_batches=n_batches)
    _one_line_error(excinfo, "n_batches", ">= 2")


def test_existing_path_needs_overwrite(run_path):
    _recorder(run_path).close()
    with pytest.raises(RecorderError) as excinfo:
        _recorder(run_path)
    _one_line_error(excinfo, "already exists", "overwrite=True")
    _recorder(run_path, overwrite=True).close()


def test_model_without_trainable_parameters(run_path):
    model = _model().requires_grad_(False)
    with pytest.raises(RecorderError) as excinfo:
        Recorder(run_path, model, torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1), _loss, 2)
    _one_line_error(excinfo, "no trainable parameters")


@pytest.mark.parametrize("second", [3, 5])
def test_step_must_increase(run_path, second):
    rec = _recorder(run_path)
    rec.step(5)
    with pytest.raises(RecorderError) as excinfo:
        rec.step(second)
    _one_line_error(excinfo, f"step {second} does not come after step 5", "increasing")
    rec.close()


@pytest.mark.parametrize(
    "options, needles",
    [
        ({"on_error": "ignore"}, ["on_error='ignore'", "'warn'"]),
        ({"layers": ["0"]}, ["probe="]),
        ({"probe": X, "layers": ["nope"], "raw_schedule": 1}, ["no module named 'nope'"]),
        ({"probe": X, "layers": ["0", "1"], "raw_schedule": 1}, ["both come out of layer_0"]),
        ({"batch_loss": 3}, ["batch_loss must be a function"]),
    ],
    ids=["on_error", "layers-without-probe", "unknown-layer", "same-layer-twice", "not-callable"],
)
def test_option_mistakes(run_path, options, needles):
    with pytest.raises(RecorderError) as excinfo:
        _recorder(run_path, **options)
    _one_line_error(excinfo, *needles)


def test_bad_scalars_and_changing_residual_count(run_path):
    sizes = iter([8, 7])
    rec = _recorder(run_path, residuals=lambda m: torch.zeros(next(sizes)), residual_schedule=every(1))
    with pytest.raises(RecorderError) as excinfo:
        rec.step(0, loss=torch.ones(2))
    _one_line_error(excinfo, "shape (2,)", "one number")
    with pytest.raises(RecorderError) as excinfo:
        rec.step(1, wall_time=1.0)
    _one_line_error(excinfo, "'wall_time' is reserved")
    rec.step(2)
    with pytest.raises(RecorderError) as excinfo:
        rec.step(3)
    _one_line_error(excinfo, "7 samples at step 3 but 8 before")
    rec.close()
    with pytest.raises(RecorderError) as excinfo:
        rec.step(4)
    _one_line_error(excinfo, "after the recorder was closed")


# -- non-finite gradients ---------------------------------------------------------------------------


def test_nan_gradients_are_stored_as_they_are_with_one_warning(run_path):
    def batch_loss(m, b):
        loss = _loss(m, b)
        return loss * float("nan") if b == 1 else loss

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with _recorder(run_path, batch_loss=batch_loss, schedule=every(1), raw_schedule=every(2)) as rec:
            for step in range(4):
                rec.step(step)
                rec.flush()
    nonfinite = [w for w in caught if "non-finite batch gradients" in str(w.message)]
    assert len(nonfinite) == 1 and "step 0" in str(nonfinite[0].message)
    run = open_run(run_path)
    assert np.isnan(run["gradient_stats"]["sum_mu2"].values).all()
    raw = run["batch_gradients"]["batch_gradients"].values
    assert np.isnan(raw[:, 1]).all() and np.isfinite(raw[:, 0]).all()


# -- writer failures --------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:pinnlog. the writer thread is behind")
def test_writer_failure_surfaces_at_a_later_call_and_the_prefix_survives(run_path, monkeypatch):
    disk_fills_after(monkeypatch, n_ok=6)  # scalars and gradient_stats commits alternate
    rec = _recorder(run_path, schedule=every(1))
    raised_at = None
    with pytest.raises(WriterError) as excinfo:
        for step in range(200):
            raised_at = step
            rec.step(step, loss=step / 2)
            time.sleep(0.002)
        rec.close()
    _one_line_error(excinfo, "No space left on device", "committed before it", "on_error='warn'")
    assert raised_at is not None and raised_at >= 3
    rec.close()  # closing after the failure does not raise again
    run = open_run(run_path)
    assert run.attrs["status"] == "interrupted"
    steps = run["scalars"]["step"].values
    assert len(steps) >= 1 and steps.tolist() == list(range(len(steps)))
    np.testing.assert_array_equal(run["scalars"]["loss"].values, steps / 2)
    stats = run["gradient_stats"]
    assert stats["step"].values.tolist() == list(range(stats.sizes["step"]))
    np.testing.assert_allclose(stats["sum_rms2"].values, (stats["sum_mu2"] + stats["sum_sigma2"]).values, rtol=1e-12)


def test_writer_failure_with_on_error_warn_keeps_training(run_path, monkeypatch):
    disk_fills_after(monkeypatch, n_ok=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with _recorder(run_path, schedule=every(1), on_error="warn") as rec:
            for step in range(60):
                rec.step(step)
                time.sleep(0.002)
    failures = [w for w in caught if "training continues unrecorded" in str(w.message)]
    assert len(failures) == 1 and "No space left on device" in str(failures[0].message)
    assert open_run(run_path).attrs["status"] == "interrupted"


def _record_through_a_slow_writer(run_path, monkeypatch, append_s: float, n_steps: int) -> list[str]:
    """Capture every step for ``n_steps`` through a one-slot queue whose appends each take ``append_s``
    seconds; the warning messages the run gave."""
    monkeypatch.setattr(writer_module, "QUEUE_SIZE", 1)
    real = RunWriter.append

    def slow_append(self, group, rows, dims=None):
        time.sleep(append_s)
        return real(self, group, rows, dims)

    monkeypatch.setattr(RunWriter, "append", slow_append)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with _recorder(run_path, schedule=every(1)) as rec:
            for step in range(n_steps):
                rec.step(step, loss=step)
    return [str(w.message) for w in caught]


def test_a_full_queue_blocks_with_one_warning_and_drops_nothing(run_path, monkeypatch):
    monkeypatch.setattr(writer_module, "PATIENCE_S", 0.005)
    caught = _record_through_a_slow_writer(run_path, monkeypatch, append_s=0.02, n_steps=40)
    behind = [message for message in caught if "writer thread is behind" in message]
    assert len(behind) == 1
    run = open_run(run_path)
    assert run["scalars"]["loss"].values.tolist() == list(range(40))
    assert run["gradient_stats"]["step"].values.tolist() == list(range(40))


def test_a_queue_that_drains_within_patience_says_nothing(run_path, monkeypatch):
    """Issue 15: a 150-step run capturing every step warned "writer thread is behind" for a moment's wait."""
    caught = _record_through_a_slow_writer(run_path, monkeypatch, append_s=0.002, n_steps=30)
    assert not [message for message in caught if "writer thread is behind" in message]
    assert open_run(run_path)["scalars"]["loss"].values.tolist() == list(range(30))
