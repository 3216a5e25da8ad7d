"""``Recorder``: the one object a training loop talks to.

    with Recorder("run.zarr", model, optimizer, batch_loss, n_batches=100) as rec:
        for step in range(n_steps):
            ...; loss.backward(); optimizer.step()
            rec.step(step, loss=loss, test_error=err)

``rec.step`` buffers one row of scalars (no device sync) and, on the steps a capture's schedule picks,
runs the captures that are due (``captures/``: gradient moments, weights, optimizer moments,
residuals, activations) at the current weights. This module holds the schedules, the dispatch and
the lifecycle; a background thread (``writer.py``) writes through the commit protocol of
:mod:`pinnlog.analyzer.store.write`. docs/recording.md is the user guide.
"""

from __future__ import annotations

import atexit
import copy
import inspect
import operator
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from torch import nn

from pinnlog.analyzer import __version__
from pinnlog.analyzer.errors import (
    NonFiniteGradientWarning,
    OverlapOffWarning,
    RecorderError,
    RecorderNotClosedWarning,
    RecordingStoppedWarning,
    UnscheduledCaptureWarning,
    WriterError,
)
from pinnlog.analyzer.store.write import RunWriter
from pinnlog.recorder import captures, engines
from pinnlog.recorder.schedules import Schedule, as_schedule, every
from pinnlog.recorder.writer import Writer, hand_over, rows_job, scalars_job

__all__ = ["Recorder"]

#: Scalar rows are handed to the writer every this many rows, this many seconds, and at each capture.
ROWS_PER_HANDOVER = 512
SECONDS_PER_HANDOVER = 1.0

_RESERVED_SCALARS = frozenset({"step", "wall_time"})
_open_recorders: weakref.WeakSet = weakref.WeakSet()


def _close_forgotten_recorders() -> None:
    for rec in list(_open_recorders):
        warnings.warn(
            f"pinnlog: {rec.path} was not closed; closing it at exit with status 'interrupted'",
            RecorderNotClosedWarning,
            stacklevel=2,
        )
        rec._close("interrupted", raise_errors=False)


# threading's exit hooks run before concurrent.futures shuts its executors down (zarr writes through
# them); a plain atexit hook would be too late to write anything.
getattr(threading, "_register_atexit", atexit.register)(_close_forgotten_recorders)


def _jsonable_hyper(group: Mapping) -> dict:
    hyper = {}
    for key, value in group.items():
        if key == "params":
            continue
        if isinstance(value, torch.Tensor):
            value = value.item() if value.numel() == 1 else value.tolist()
        hyper[key] = value
    return hyper


def _describe_optimizer(optimizer) -> dict:
    """Name and hyperparameters of every param group (``hyperparameters`` is group 0's, as format 1 had it)."""
    groups = getattr(optimizer, "param_groups", None) or [{}]
    described = [{**_jsonable_hyper(g), "n_tensors": len(g.get("params", ()))} for g in groups]
    return {"name": type(optimizer).__name__, "hyperparameters": _jsonable_hyper(groups[0]), "param_groups": described}


def _check_signature(fn: Callable, name: str, args: tuple, usage: str) -> None:
    """Refuse at construction a function that cannot be called the way a capture will call it."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins and some C callables: nothing to check
        return
    try:
        signature.bind(*args)
    except TypeError:
        raise RecorderError(f"{name}{signature} cannot be called as {usage}; define it as {usage}") from None


class Recorder:
    """Record the batch-gradient statistics of a training run into a Zarr v3 store (docs/format.md).

    Parameters
    ----------
    path : str or path-like
        Where the run goes: a ``*.zarr`` directory or an fsspec URL.
    model : torch.nn.Module
        The model being trained.
    optimizer : torch.optim.Optimizer
        Its optimizer; read only (Adam/AdamW moments give ``sum_m_hat2`` and ``sum_adam_denom2``).
    batch_loss : callable
        ``batch_loss(model, b) -> scalar tensor``: the loss of fixed batch ``b`` in ``range(n_batches)``,
        weighted as training weighs it; it may use ``torch.autograd.grad(..., create_graph=True)``.
    n_batches : int
        K >= 2, the number of fixed batches.
    schedule : Schedule, int, list of int or None
        Steps whose K batch gradients are captured and reduced (default ``every(100)``).
    raw_schedule : Schedule, int, list of int or None
        Steps whose raw arrays (K x P batch gradients, weights, Adam moments) are stored too.
    residuals : callable, optional
        ``residuals(model) -> residual`` or ``(residual, rba_weight)``, per sample.
    probe : tensor, tuple or dict, optional
        Input whose activations are stored per layer (``model(probe)``).
    layers : list of str, optional
        Module names whose outputs are recorded on ``probe``; default: every hidden layer of an MLP.
    config : dict, optional
        Anything JSON-like that describes the run; stored as the ``config`` attribute.
    overwrite : bool
        Replace an existing store at ``path``.
    shared_loss : callable, optional
        ``shared_loss(model) -> scalar tensor``: a loss term that is the same in every batch (the paper's
        boundary/initial loss). Its gradient is computed once per capture and added to every batch
        gradient; ``batch_loss`` then returns the batch-dependent part only.
    residual_schedule, probe_schedule : optional
        When to record residuals / activations (default: ``raw_schedule``).
    on_error : {"raise", "warn"}
        What a writer failure does: raise ``WriterError`` at the next ``step``/``close`` (default), or
        warn once and let training continue unrecorded.
    parameters : {"trainable", "all"}
        The tensors recorded: those with ``requires_grad`` now (default), or every parameter, so that
        tensors frozen now are recorded once they are unfrozen (NaN while frozen).
    batch_losses : callable, optional
        ``batch_losses(model, batches) -> Tensor[len(batches)]``: the same batch losses as ``batch_loss``
        for the batches in the slice ``batches``, evaluated at once on stacked (k, n, ...) inputs; it
        enables the vectorised engine (``recorder/engines.py``, docs/recording.md).
    engine : {"auto", "loop", "vectorised"}
        How a capture computes the K batch gradients; "auto": vectorised when ``batch_losses`` is given.
    check_every : int or None
        The vectorised engine is compared with the loop at the first capture and every ``check_every``-th
        (default 1000; None: the first only); beyond 1e-5 relative it falls back to the loop with a warning.
    check_batches : int or None
        Batches a self-check compares (default 4: the first, the last and two others that move on from
        check to check; None: all K). Each costs about a training step on a GPU (docs/recording.md).
    chunk_size : int or None
        Batches per vectorised pass (default: all K on CUDA, 25 on CPU; halved on CUDA out-of-memory).
    overlap : bool
        Compute vectorised gradient captures in a background thread on a snapshot of the weights (a
        private copy of the model), while training goes on (docs/recording.md#overlapped-captures). Only
        for loss functions that read nothing training changes besides the model they are given.
    """

    def __init__(
        self,
        path,
        model: nn.Module,
        optimizer,
        batch_loss: Callable,
        n_batches: int,
        schedule: Schedule | int | Iterable[int] | None = every(100),
        raw_schedule: Schedule | int | Iterable[int] | None = None,
        residuals: Callable | None = None,
        probe: Any = None,
        layers: list[str] | None = None,
        config: Mapping | None = None,
        overwrite: bool = False,
        shared_loss: Callable | None = None,
        residual_schedule: Schedule | int | Iterable[int] | None = None,
        probe_schedule: Schedule | int | Iterable[int] | None = None,
        on_error: str = "raise",
        parameters: str = "trainable",
        batch_losses: Callable | None = None,
        engine: str = "auto",
        check_every: int | None = 1000,
        check_batches: int | None = engines.CHECK_BATCHES,
        chunk_size: int | None = None,
        overlap: bool = False,
    ):
        if not isinstance(model, nn.Module):
            raise RecorderError(f"model must be a torch.nn.Module, got {type(model).__name__}; pass the model being trained")
        for name, fn in (("batch_loss", batch_loss), ("shared_loss", shared_loss), ("residuals", residuals)):
            if fn is not None and not callable(fn):
                raise RecorderError(
                    f"{name} must be a function, got {type(fn).__name__}; pass e.g. {name}=lambda model, ...: ..."
                )
        if isinstance(n_batches, bool) or not isinstance(n_batches, (int, np.integer)) or n_batches < 2:
            raise RecorderError(
                f"n_batches={n_batches!r}: the spread of batch gradients needs K >= 2 fixed batches; split the data into n_batches >= 2"
            )
        if on_error not in ("raise", "warn"):
            raise RecorderError(f"on_error={on_error!r}; use 'raise' or 'warn'")
        if layers is not None and probe is None:
            raise RecorderError("layers= names the modules recorded on the probe input; pass probe= too")
        _check_signature(batch_loss, "batch_loss", (model, 0), "batch_loss(model, b)")
        for name, fn in (("shared_loss", shared_loss), ("residuals", residuals)):
            if fn is not None:
                _check_signature(fn, name, (model,), f"{name}(model)")
        self.path = path
        self.model = model
        self.optimizer = optimizer  # before the tracker exists: the setter skips it
        self._batch_loss, self._shared_loss, self._residuals = batch_loss, shared_loss, residuals
        self._n_batches, self._on_error = int(n_batches), on_error
        self._layout = captures.build_layout(model, parameters)
        self._tracker = captures.ParameterTracker(self._layout, model, optimizer)
        self._engine = engines.GradientEngine(
            model,
            self._layout,
            batch_loss,
            self._n_batches,
            shared_loss,
            batch_losses=batch_losses,
            engine=engine,
            check_every=check_every,
            check_batches=check_batches,
            chunk_size=chunk_size,
        )
        self._live: captures.Live | None = None
        self._parameters = parameters
        # Overlapped captures (docs/recording.md#overlapped-captures): requested, allowed once a synchronous
        # vectorised capture showed the loss functions draw no random numbers, off for good with a reason.
        self._overlap, self._overlap_ready = bool(overlap), False
        self._overlap_reason: str | None = None
        self._twin: tuple[nn.Module, engines.GradientEngine, list, list] | None = None
        self._background: Future | None = None
        self._pool: ThreadPoolExecutor | None = None
        device = self._layout.device
        self._schedule, self._raw_schedule = as_schedule(schedule), as_schedule(raw_schedule)
        residuals_when = as_schedule(raw_schedule if residual_schedule is None else residual_schedule)
        probe_when = as_schedule(raw_schedule if probe_schedule is None else probe_schedule)
        sites = captures.activation_sites(model, self._layout, layers) if probe is not None else []
        for given, when, option in ((residuals, residual_schedule, "residual"), (probe, probe_schedule, "probe")):
            if given is not None and when is None and raw_schedule is None:
                warnings.warn(
                    f"{option}s are recorded on {option}_schedule= or raw_schedule=, and neither is set",
                    UnscheduledCaptureWarning,
                    stacklevel=2,
                )
        # The captures, in the order they run at a step (the order the store's variables are created in).
        self._captures: list[captures.Capture] = []
        self._adam_moments: captures.OptimizerMoments | None = None
        if schedule is not None or raw_schedule is not None:
            self._captures += [
                captures.GradientMoments(
                    self._schedule, self._raw_schedule, self._layout, self._capture_batch_gradients, self._current
                ),
                captures.Weights(self._schedule, self._raw_schedule, self._layout, self._current),
            ]
            if captures.is_adam(optimizer):
                self._adam_moments = captures.OptimizerMoments(
                    self._schedule, self._raw_schedule, self._layout, optimizer, self._current
                )
                self._captures.append(self._adam_moments)
        if residuals is not None:
            self._captures.append(captures.Residuals(residuals_when, model, residuals))
        if probe is not None:
            activations = captures.Activations(probe_when, model, _to_device(probe, device), sites)
            with captures.frozen_training_state(model):  # a dry run: what a probe step would meet, said now
                activations.units = {
                    k: v.shape[1] for k, v in captures.record_activations(model, activations.probe, sites).items()
                }
            self._captures.append(activations)

        attrs: dict[str, Any] = {
            "pinnlog_version": __version__,
            "torch_version": torch.__version__,
            "device": str(device),
            "model": repr(model)[:4000],
            "optimizer": _describe_optimizer(optimizer),
            "n_batches": self._n_batches,
            "schedule": repr(self._schedule),
            "raw_schedule": repr(self._raw_schedule),
            "shared_loss": shared_loss is not None,
            "config": dict(config or {}),
            "layout": list(self._layout.tensors),
            "layers": [_with_units(layer, self._captures) for layer in self._layout.layers],
            "activation_layers": [site.name for site in sites],
            "engine": self._engine_description(),
        }
        for c in self._captures:
            attrs.update(c.attrs())
        store = RunWriter(path, attrs, overwrite=overwrite)
        for c in self._captures:
            for group, values in c.static().items():
                store.set_static(group, values)
        self._writer = Writer(store)
        self._engine_attrs = attrs["engine"]
        self._t0 = self._last_handover = time.perf_counter()
        self._rows: list[tuple[int, float, dict]] = []
        self._scalar_names: set[str] = set()
        self._last_step: int | None = None
        self._closed = self._disabled = self._reported = self._warned_nonfinite = False
        _open_recorders.add(self)

    @property
    def optimizer(self):
        """The optimizer whose state is read; assign a new one here if training switches optimizers."""
        return self._optimizer

    @optimizer.setter
    def optimizer(self, optimizer) -> None:
        self._optimizer = optimizer
        tracker = getattr(self, "_tracker", None)
        if tracker is not None:
            tracker.optimizer = optimizer
        moments = getattr(self, "_adam_moments", None)
        if moments is not None:
            moments.optimizer = optimizer

    def _current(self) -> captures.Live:
        """The model's tensors at this capture (resolved once per capture step)."""
        if self._live is None:
            self._live = self._tracker.resolve(self._last_step if self._last_step is not None else 0)
        return self._live

    def __repr__(self) -> str:
        state = "closed" if self._closed else "recording"
        return f"Recorder({str(self.path)!r}, n_batches={self._n_batches}, schedule={self._schedule!r}, {state})"

    # -- the training-loop API -------------------------------------------------------------------

    def step(self, step: int, **scalars) -> None:
        """Record the scalars of ``step`` and, if a schedule picks it, capture at the current weights.

        Call it once per optimizer step, after ``optimizer.step()``, with increasing ``step``.
        Scalars are numbers or one-element tensors (kept without a device sync).
        """
        if self._closed:
            raise RecorderError("rec.step() after the recorder was closed; create a new Recorder for a new run")
        self._report_writer()
        if self._disabled:
            return
        if self._background is not None and self._background.done():
            self._wait_background()  # its failure surfaces here, one step later than a synchronous capture's
        try:
            step = operator.index(step)
        except TypeError:
            raise RecorderError(f"step must be an integer, got {type(step).__name__}; pass the optimizer step count") from None
        if self._last_step is not None and step <= self._last_step:
            raise RecorderError(
                f"step {step} does not come after step {self._last_step}; call rec.step once per optimizer step with increasing steps"
            )
        values = {name: self._scalar(name, value) for name, value in scalars.items()}
        self._last_step = step
        now = time.perf_counter()
        self._rows.append((step, now - self._t0, values))
        due = [c for c in self._captures if c.should_compute(step)]
        if due:
            self._hand_over_rows(now)
            self._capture(step, due)
        elif len(self._rows) >= ROWS_PER_HANDOVER or now - self._last_handover > SECONDS_PER_HANDOVER:
            self._hand_over_rows(now)

    def describe(self, scalar: str, *, long_name: str | None = None, units: str | None = None) -> None:
        """Say what a scalar of ``rec.step`` is: stored as its variable's ``long_name`` and ``units`` attributes.

        Reports label their axes with them: ``rec.describe("test_error", long_name="top-1 classification
        error")`` makes a classifier's test-error axis say so instead of "relative L2 test error".
        """
        if not isinstance(scalar, str) or not scalar.isidentifier():
            raise RecorderError(f"describe({scalar!r}): give the keyword the scalar is passed to rec.step with")
        if self._closed:
            raise RecorderError("rec.describe() after the recorder was closed; describe scalars while recording")
        if self._disabled:
            return
        self._writer.submit(lambda store: store.describe("scalars", scalar, long_name=long_name, units=units))

    def flush(self) -> None:
        """Hand over buffered rows and wait until everything recorded so far is committed to the store."""
        if not self._closed and not self._disabled:
            self._wait_background()
            self._hand_over_rows(time.perf_counter())
            self._writer.flush()
        self._report_writer()

    def close(self, status: str = "complete") -> None:
        """Write what is buffered, wait for the writer, trim the store and set its ``status``.

        ``status`` is ``"complete"`` or ``"interrupted"``. Leaving a ``with`` block by an exception
        closes with ``"interrupted"``. Closing twice does nothing.
        """
        self._close(status, raise_errors=True)

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._close("interrupted" if exc_type is not None else "complete", raise_errors=exc_type is None)

    # -- internals -------------------------------------------------------------------------------

    def _close(self, status: str, raise_errors: bool) -> None:
        if status not in ("complete", "interrupted"):
            raise RecorderError(f"close(status={status!r}); use 'complete' or 'interrupted'")
        if self._closed:
            return
        self._closed = True
        _open_recorders.discard(self)
        try:
            self._wait_background()
        except Exception:
            if raise_errors:
                self._writer.close("interrupted")
                raise
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
        if not self._disabled and self._rows:
            self._hand_over_rows(time.perf_counter())
        self._writer.close(status)
        if raise_errors:
            self._report_writer()
        elif self._writer.error is not None and not self._reported:
            self._reported = True
            warnings.warn(
                f"pinnlog: writing {self.path} failed as well: {self._writer.error}", RecordingStoppedWarning, stacklevel=3
            )

    def _report_writer(self) -> None:
        """Surface what the writer thread found: a failure (once) and non-finite gradients (once)."""
        writer = self._writer
        if writer.nonfinite_step is not None and not self._warned_nonfinite:
            self._warned_nonfinite = True
            warnings.warn(
                f"pinnlog: non-finite batch gradients (NaN or Inf) at step {writer.nonfinite_step}; they are stored as they are",
                NonFiniteGradientWarning,
                stacklevel=3,
            )
        if writer.error is None or self._reported:
            return
        self._reported = True
        self._disabled = True
        message = (
            f"writing {self.path} failed: {type(writer.error).__name__}: {writer.error}; the steps committed before it are in the store. "
            "Fix the cause (disk space, permissions) and restart, or pass on_error='warn' to keep training unrecorded"
        )
        if self._on_error == "warn":
            warnings.warn(f"pinnlog: {message}; training continues unrecorded", RecordingStoppedWarning, stacklevel=3)
            return
        raise WriterError(message) from writer.error

    def _scalar(self, name: str, value):
        if name not in self._scalar_names:
            if name in _RESERVED_SCALARS or "/" in name or name.startswith("__"):
                raise RecorderError(f"rec.step(..., {name}=...): {name!r} is reserved or not a valid variable name; rename it")
            self._scalar_names.add(name)
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                raise RecorderError(
                    f"rec.step(..., {name}=...) got a tensor of shape {tuple(value.shape)}; pass one number per keyword"
                )
            if value.device.type == "cpu":
                return value.item()
            return value.detach().reshape(())  # read by the writer thread: no device sync, no kernel launch here
        try:
            return float(value)
        except (TypeError, ValueError):
            raise RecorderError(
                f"rec.step(..., {name}=...) got {type(value).__name__}; pass a number or a one-element tensor"
            ) from None

    def _hand_over_rows(self, now: float) -> None:
        self._last_handover = now
        if not self._rows:
            return
        rows, self._rows = self._rows, []
        self._writer.submit(scalars_job(rows))

    def _capture_batch_gradients(self, raw: bool) -> captures.GradientCapture:
        """The K batch gradients at the current weights, reduced per tensor, by the run's gradient engine
        (``recorder/engines.py``; ``recorder/distributed.py`` overrides this to merge every process's)."""
        result = self._engine.capture(keep_raw=raw, params=self._current().grads)
        self._update_engine_attrs()
        return result

    def _engine_description(self) -> dict:
        """The ``engine`` root attribute (docs/format.md)."""
        return self._engine.describe()

    def _update_engine_attrs(self) -> None:
        described = self._engine_description()
        if described != self._engine_attrs:  # a fall-back, or a self-check's figure
            self._engine_attrs = described
            self._writer.submit(lambda store: store.set_attrs(engine=described))

    def _capture(self, step: int, due: list[captures.Capture]) -> None:
        """Run the due captures at fixed weights and hand their rows, one job, to the writer.

        A K x P raw buffer is only filled once the writer holds no other (its raw slot); the slot is
        given back when the job is on disk, or here if a capture fails.
        """
        if torch.is_inference_mode_enabled():
            raise RecorderError(
                f"rec.step({step}) captures here, and it was called under torch.inference_mode(), where nothing can be "
                "differentiated; call rec.step outside torch.inference_mode() (torch.no_grad() is fine)"
            )
        self._wait_background()  # at most one capture in flight: every group's rows stay in step order
        self._live = None
        gradients = next((c for c in due if isinstance(c, captures.GradientMoments)), None)
        if gradients is not None and self._overlap and self._start_background(step, due, gradients):
            return
        raw = any(c.holds_raw_buffer and c.is_raw(step) for c in due)
        if raw:
            self._writer.acquire_raw()
        submitted = False
        grads_before = _grad_versions(self.model)
        probe_rng = gradients is not None and self._overlap and not self._overlap_ready and self._overlap_reason is None
        try:
            with captures.frozen_training_state(self.model):
                rng_before = _rng_states() if probe_rng else None
                rows = [r for c in due for r in c.compute(step)]
                if rng_before is not None and not _same_rng(rng_before, _rng_states()):
                    self._overlap_off("batch_loss, batch_losses or shared_loss draws random numbers")
            if probe_rng and self._overlap_reason is None and self._engine.history[-1] == "vectorised":
                self._overlap_ready = True
            if _grad_versions(self.model) != grads_before:
                raise RecorderError(
                    "a capture changed the model's .grad or weights: batch_loss (or shared_loss, residuals) called "
                    ".backward() or optimizer.step(); return the loss only: the recorder differentiates it itself"
                )
            job = rows_job(self._writer, [hand_over(r) for r in captures.merge_rows(rows)])
            del rows  # the device tensors now live in the job only
            self._writer.submit(job, releases_raw=raw)
            submitted = True
        finally:
            if raw and not submitted:
                self._writer.release_raw()

    # -- overlapped captures (docs/recording.md#overlapped-captures) --------------------------------

    def _overlap_off(self, reason: str) -> None:
        self._overlap_reason = reason
        warnings.warn(f"pinnlog: overlap=True: gradient captures stay synchronous: {reason}", OverlapOffWarning, stacklevel=4)

    def _twin_engine(self):
        """The capture thread's private copy of the model and its engine (made once), or None with the reason."""
        if self._twin is None:
            try:
                with torch.no_grad():
                    twin = copy.deepcopy(self.model)
            except Exception as error:
                self._overlap_off(f"the model cannot be copied ({type(error).__name__}: {str(error)[:200]})")
                return None
            layout = captures.build_layout(twin, self._parameters)
            if [t["name"] for t in layout.tensors] != [t["name"] for t in self._layout.tensors]:
                self._overlap_off("the model's copy does not have the recorded tensors")
                return None
            buffers = dict(twin.named_buffers())
            pairs = [(buffers[name], buf) for name, buf in self.model.named_buffers() if name in buffers]
            self._twin = (twin, self._engine.twin(twin, layout), list(zip(layout.params, self._layout.params)), pairs)
        return self._twin

    def _start_background(self, step: int, due: list[captures.Capture], gradients: captures.GradientMoments) -> bool:
        """Run the due captures with the gradients on a snapshot in the capture thread; False: capture synchronously."""
        engine = self._engine
        if self._overlap_reason is None and type(self)._capture_batch_gradients is not Recorder._capture_batch_gradients:
            self._overlap_off("this recorder merges the batch gradients of every process at the capture step (DDP)")
        if (
            not self._overlap_ready
            or self._overlap_reason is not None
            or engine.name != "vectorised"
            or engine.check_due()  # a self-check runs synchronously, against the live model
            or gradients.is_raw(step)  # the K x P raw buffer: synchronous, with the writer's raw slot
        ):
            return False
        live = self._current()
        if any(p is None or p is not q for p, q in zip(live.grads, self._layout.params)):
            return False  # a frozen or gone tensor: this capture is the loop's (engines.GradientEngine.capture)
        twin = self._twin_engine()
        if twin is None:
            return False
        _, twin_engine, param_pairs, buffer_pairs = twin
        grads_before = _grad_versions(self.model)
        with torch.no_grad():  # the snapshot: training may change the live tensors as soon as rec.step returns
            for mine, theirs in param_pairs:
                mine.copy_(theirs)
            for mine, theirs in buffer_pairs:
                mine.copy_(theirs)
        others = [c for c in due if c is not gradients]
        with captures.frozen_training_state(self.model):
            rows = [r for c in others for r in c.compute(step)]
        if _grad_versions(self.model) != grads_before:
            raise RecorderError(
                "a capture changed the model's .grad or weights: residuals called .backward() or optimizer.step(); "
                "return the values only"
            )
        on_snapshot = captures.GradientMoments(  # the live tensors' states, resolved now; the sums from the twin
            gradients.schedule,
            gradients.raw_schedule,
            self._layout,
            lambda raw: twin_engine.capture(keep_raw=False),
            lambda: live,
        )

        def work() -> str:
            with torch.enable_grad():
                gradient_rows = on_snapshot.compute(step)
            self._writer.submit(rows_job(self._writer, [hand_over(r) for r in captures.merge_rows(rows + gradient_rows)]))
            return twin_engine.history[-1]

        if self._pool is None:
            threads = torch.get_num_threads()  # the same intra-op threads as training: the same numbers as a synchronous capture
            self._pool = ThreadPoolExecutor(
                1, thread_name_prefix="pinnlog-capture", initializer=torch.set_num_threads, initargs=(threads,)
            )
        engine.count("vectorised")
        self._background = self._pool.submit(work)
        return True

    def _wait_background(self) -> None:
        """Wait for the capture thread's capture (re-raising its error here) and take over its engine's verdict."""
        future, self._background = self._background, None
        if future is None:
            return
        used = future.result()
        if used != "vectorised":
            assert self._twin is not None
            self._engine.adopt_fallback(self._twin[1])
            self._update_engine_attrs()


def _rng_states() -> list[torch.Tensor]:
    states = [torch.get_rng_state()]
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states += torch.cuda.get_rng_state_all()
    return states


def _same_rng(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


def _grad_versions(model: nn.Module) -> list:
    """In-place versions of every parameter and identity and version of its ``.grad``: a ``.backward()`` or
    ``optimizer.step()`` inside a user function changes them (a capture itself changes neither)."""
    return [(p._version, None if p.grad is None else (id(p.grad), p.grad._version)) for p in model.parameters()]


def _with_units(layer: dict, due: list) -> dict:
    """A layer entry with ``units``: how many values per probe sample its activations hold (when recorded)."""
    for c in due:
        units = getattr(c, "units", None) or {}
        if layer["name"] in units:
            return {**layer, "units": int(units[layer["name"]])}
    return layer


def _to_device(probe, device):
    if probe is None:
        return None
    if isinstance(probe, torch.Tensor):
        return probe.to(device)
    if isinstance(probe, dict):
        return {k: _to_device(v, device) for k, v in probe.items()}
    if isinstance(probe, (tuple, list)):
        return type(probe)(_to_device(v, device) for v in probe)
    return probe
