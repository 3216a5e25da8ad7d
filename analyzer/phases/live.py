"""Phases of a run while it is being recorded: the current phase, and a callback when total diffusion begins.

The detection is the same as for a finished run (:func:`~pinnlog.analyzer.phases.detect.detect_phases`
with the test error, loss and residual homogeneity as evidence), on the prefix the recorder has committed
so far. A phase is only seen once it has lasted: a boundary needs ``min_size`` grid cells (0.2 decade of
steps by default) on each side, so total diffusion is reported about 0.2-0.3 decade after it began
(at step 10,000, around step 16,000-20,000).

Plain loop::

    watcher = PhaseWatcher("runs/ac.zarr", on_total_diffusion=lambda table: print(table), flush=rec.flush)
    for step in range(steps):
        ...; rec.step(step, loss=loss); watcher.check(step)

Lightning: ``callbacks=[PinnlogCallback(...), lightning_callback("runs/ac.zarr", stop_training=True)]``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pinnlog.analyzer.errors import PinnlogError
from pinnlog.analyzer.phases.detect import phases_from_metrics
from pinnlog.analyzer.phases.labels import TOTAL_DIFFUSION
from pinnlog.analyzer.phases.table import PhaseTable

__all__ = ["PhaseWatcher", "lightning_callback", "live_phases"]


def _try(compute: Callable[[], Any]) -> Any:
    try:
        return compute()
    except (PinnlogError, KeyError, ValueError):  # not recorded (yet): the detection works without it
        return None


def live_phases(path: str | os.PathLike) -> PhaseTable | None:
    """Phases of the steps committed so far in the run store at ``path`` (None: no gradient statistics yet).

    Returns
    -------
    PhaseTable or None
        ``table.current`` is the phase the run is in now; a table with the verdict ``"too short"`` has
        no phases yet.
    """
    from pinnlog.analyzer import metrics as M
    from pinnlog.analyzer.io import open_run

    run = open_run(path)
    values = {
        "snr": _try(lambda: M.snr(run).compute()),
        "test_error": _try(lambda: M.relative_l2(run).compute()),
        "loss": _try(lambda: run["scalars"].to_dataset()["loss"].compute()),
    }
    if values["snr"] is None or values["snr"].sizes.get("step", 0) == 0:
        return None
    table, _, _ = phases_from_metrics({k: v for k, v in values.items() if v is not None})
    return table


class PhaseWatcher:
    """Re-detect the phases of a run being recorded every ``every`` steps; call back once total diffusion begins.

    Parameters
    ----------
    path : str or path-like
        The run store the recorder writes.
    on_total_diffusion : callable, optional
        Called once, with the :class:`PhaseTable`, the first time a check finds total diffusion
        (e.g. to stop, or to change the learning-rate schedule: the paper's Sec. 3.1 finds the fastest
        convergence there).
    every : int
        Steps between two checks (a check reads the store and runs the detector: about a second).
    flush : callable, optional
        Called before each check, e.g. ``rec.flush``, so the store holds every step recorded so far.

    Attributes
    ----------
    table : PhaseTable or None
        The last check's phases. ``fired_at`` is the step of the check that first found total diffusion
        (None before).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        on_total_diffusion: Callable[[PhaseTable], Any] | None = None,
        *,
        every: int = 1000,
        flush: Callable[[], Any] | None = None,
    ):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise PinnlogError(f"every must be a positive number of steps, got {every!r}")
        self.path, self.on_total_diffusion, self.every, self.flush = path, on_total_diffusion, every, flush
        self.table: PhaseTable | None = None
        self.fired_at: int | None = None
        self._last_check: int | None = None

    @property
    def current(self) -> str | None:
        """The phase the run was in at the last check (None before any phase is known)."""
        return None if self.table is None else self.table.current

    def check(self, step: int, *, force: bool = False) -> PhaseTable | None:
        """Look again if ``every`` steps passed since the last look (or ``force``); returns the table then."""
        if not force and self._last_check is not None and step - self._last_check < self.every:
            return None
        self._last_check = step
        if self.flush is not None:
            self.flush()
        self.table = live_phases(self.path)
        if self.fired_at is None and self.table is not None and self.table.transition(TOTAL_DIFFUSION) is not None:
            self.fired_at = step
            if self.on_total_diffusion is not None:
                self.on_total_diffusion(self.table)
        return self.table


class _LightningHooks:
    """The Lightning hook, kept apart from Lightning's base class so it can be used without it."""

    def __init__(self, watcher: PhaseWatcher, stop_training: bool):
        self.watcher, self.stop_training = watcher, stop_training

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.watcher.flush is None:  # the recorder of a PinnlogCallback on the same trainer, if any
            recorder = next((getattr(c, "recorder", None) for c in trainer.callbacks if getattr(c, "recorder", None)), None)
            flush = recorder.flush if recorder is not None else None
        else:
            flush = self.watcher.flush
        saved, self.watcher.flush = self.watcher.flush, flush
        try:
            fired_before = self.watcher.fired_at
            self.watcher.check(int(trainer.global_step))
            if self.stop_training and fired_before is None and self.watcher.fired_at is not None:
                trainer.should_stop = True
        finally:
            self.watcher.flush = saved


def lightning_callback(
    path: str | os.PathLike,
    on_total_diffusion: Callable[[PhaseTable], Any] | None = None,
    *,
    every: int = 1000,
    stop_training: bool = False,
):
    """A Lightning ``Callback`` that checks the phases every ``every`` optimizer steps (:class:`PhaseWatcher`).

    It flushes the recorder of a ``PinnlogCallback`` on the same trainer before each check. With
    ``stop_training=True`` the trainer stops once total diffusion begins. Needs Lightning (imported here,
    not by the analyzer).
    """
    if TYPE_CHECKING:  # one name for the type checker; at run time either package provides the same class
        from lightning.pytorch.callbacks import Callback
    else:
        try:
            from lightning.pytorch.callbacks import Callback
        except ImportError:
            try:
                from pytorch_lightning.callbacks import Callback
            except ImportError as exc:
                raise PinnlogError("lightning_callback needs Lightning >= 2.2: pip install 'pinnlog[lightning]'") from exc

    class PhaseCallback(_LightningHooks, Callback):
        pass

    return PhaseCallback(PhaseWatcher(path, on_total_diffusion, every=every), stop_training)
