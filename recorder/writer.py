"""The background writer: a daemon thread drains a bounded queue of jobs into a ``RunWriter``.

The training thread only enqueues; the writer converts to numpy, compresses and commits
(:class:`~pinnlog.analyzer.store.write.RunWriter`). Jobs are :class:`~pinnlog.recorder.captures.Rows`
that name their variables, so the writer knows no variable name.
A full queue blocks the training thread (and says so once): data is never dropped. A failing job does
not kill the thread; it records the error, which the recorder re-raises at its next call, and the
thread keeps draining (discarding) so that nobody ever blocks on a dead writer.
"""

from __future__ import annotations

import math
import queue
import threading
import warnings
from collections.abc import Callable

import numpy as np
import torch

from pinnlog.analyzer.errors import WriterBehindWarning
from pinnlog.analyzer.store.write import RunWriter
from pinnlog.recorder.captures.base import Rows

__all__ = ["QUEUE_SIZE", "HostArray", "Writer", "hand_over", "rows_job", "scalars_job", "to_host"]

#: Jobs waiting for the writer before ``submit`` blocks the training thread.
QUEUE_SIZE = 64
#: Seconds the training thread waits on a full queue before it says so.
PATIENCE_S = 2.0

_STOP = object()


class HostArray:
    """A tensor on its way to host memory; ``numpy()`` (in the writer) waits for the copy to land."""

    __slots__ = ("event", "tensor")

    def __init__(self, tensor: torch.Tensor, event=None):
        self.tensor, self.event = tensor, event

    def numpy(self) -> np.ndarray:
        if self.event is not None:
            self.event.synchronize()
        return self.tensor.numpy()


def to_host(tensor: torch.Tensor) -> HostArray:
    """Start moving a tensor the caller no longer modifies to host memory, without waiting for it.

    On CUDA: a pinned buffer, a ``non_blocking`` copy and an event the writer waits on. On CPU the
    tensor already is host memory (CPU-only torch refuses pinned memory).
    """
    tensor = tensor.detach()
    if tensor.device.type != "cuda":
        return HostArray(tensor)
    host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
    host.copy_(tensor, non_blocking=True)
    event = torch.cuda.Event()
    event.record()
    return HostArray(host, event)


class HostRow:
    """Row ``index`` of a stack of small columns moved to the host in one copy (one event, one transfer)."""

    __slots__ = ("index", "stack")

    def __init__(self, stack: HostArray, index: int):
        self.stack, self.index = stack, index

    def numpy(self) -> np.ndarray:
        return self.stack.numpy()[self.index]


#: Device columns up to this many elements are stacked and moved to the host together.
SMALL_COLUMN = 2**16


def hand_over(rows: Rows) -> Rows:
    """``rows`` with every tensor on its way to host memory (:func:`to_host`), for the writer thread.

    On CUDA the small columns of equal shape and dtype (``gradient_stats``' per-tensor sums) share one
    copy; on the CPU a tensor already is host memory and moves as it is.
    """
    values: dict = {}
    stackable: dict[tuple, list[str]] = {}
    for name, value in rows.values.items():
        if isinstance(value, torch.Tensor):
            value = value.detach()
            if value.device.type == "cuda" and value.numel() <= SMALL_COLUMN:
                stackable.setdefault((tuple(value.shape), value.dtype, value.device), []).append(name)
                values[name] = value
                continue
            value = to_host(value)
        values[name] = value
    for names in stackable.values():
        if len(names) == 1:
            values[names[0]] = to_host(values[names[0]])
            continue
        stack = to_host(torch.stack([values[n] for n in names]))
        for i, n in enumerate(names):
            values[n] = HostRow(stack, i)
    return Rows(rows.group, values, rows.dims, rows.finite, rows.finite_mask)


def as_numpy(value) -> np.ndarray:
    """Numpy view of what the training thread handed over (``HostArray``, CPU tensor, list, array)."""
    if isinstance(value, (HostArray, HostRow)):
        return value.numpy()
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


class Writer:
    """One daemon thread that runs ``job(store)`` for each submitted job, in order.

    Parameters
    ----------
    store : RunWriter
        The store the jobs write to; only this thread touches it until ``close``.
    """

    def __init__(self, store: RunWriter):
        self.store = store
        self.error: BaseException | None = None
        self.nonfinite_step: int | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=QUEUE_SIZE)
        # At most one raw K x P bundle exists at a time: the recorder takes the slot before filling a
        # buffer and the writer gives it back once the bundle is on disk (docs/performance.md, memory).
        self._raw_slot = threading.Semaphore(1)
        self._warned_full = False
        self._thread = threading.Thread(target=self._run, name="pinnlog-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            job, releases_raw = self._queue.get()
            try:
                if job is _STOP:
                    return
                if self.error is None:
                    job(self.store)
            except BaseException as exc:
                self.error = exc
            finally:
                job = None  # drop the rows (maybe a raw K x P buffer) before its slot is given back
                if releases_raw:
                    self._raw_slot.release()
                self._queue.task_done()

    def submit(self, job: Callable[[RunWriter], None], releases_raw: bool = False) -> None:
        """Queue ``job``; if the queue stays full, wait for the writer (warning once), never drop.

        A full queue that drains within ``PATIENCE_S`` (the first chunks of a short run being created)
        is not worth a warning; a writer that keeps training waiting that long is.
        """
        item = (job, releases_raw)
        try:
            self._queue.put(item, timeout=PATIENCE_S)
        except queue.Full:
            if not self._warned_full:
                self._warned_full = True
                warnings.warn(
                    f"pinnlog: the writer thread is behind the training loop (training waited {PATIENCE_S:g} s for it); "
                    "no data is dropped. Capture less often or record raw arrays on a sparser raw_schedule.",
                    WriterBehindWarning,
                    stacklevel=3,
                )
            self._queue.put(item)

    def acquire_raw(self) -> None:
        """Wait until no raw bundle is pending in the writer."""
        self._raw_slot.acquire()

    def release_raw(self) -> None:
        self._raw_slot.release()

    def flush(self) -> None:
        """Wait until every job submitted so far has been written (or failed)."""
        self._queue.join()

    def close(self, status: str) -> None:
        """Finish the queued jobs, then trim and consolidate the store with ``status``."""
        self._queue.put((_STOP, False))
        self._thread.join()
        try:
            self.store.close(status if self.error is None else "interrupted")
        except Exception as exc:
            if self.error is None:
                self.error = exc


# -- jobs: what the training thread hands over, turned into numpy and appended on the writer thread ----


def rows_job(writer: Writer, rows: list[Rows]) -> Callable[[RunWriter], None]:
    """Append each group's rows of one capture step; report the first step whose ``finite`` variables are not."""

    def job(store: RunWriter) -> None:
        for r in rows:
            values = {name: as_numpy(value) for name, value in r.values.items()}
            mask = Ellipsis if r.finite_mask is None else (Ellipsis, r.finite_mask)
            if writer.nonfinite_step is None and any(not np.isfinite(values[n][mask]).all() for n in r.finite if n in values):
                writer.nonfinite_step = int(values["step"][0]) if "step" in values else -1
            store.append(r.group, values, r.dims or None)

    return job


def scalars_job(rows: list[tuple[int, float, dict]]):
    """Buffered ``(step, wall_time, {name: value})`` rows as columns; missing values become NaN."""

    def job(store: RunWriter) -> None:
        names: dict[str, None] = {}
        for _, _, values in rows:
            names.update(dict.fromkeys(values))
        columns = {"step": np.array([r[0] for r in rows], dtype=np.int64), "wall_time": np.array([r[1] for r in rows])}
        for name in names:
            column = [values.get(name, math.nan) for _, _, values in rows]
            on_device = [i for i, v in enumerate(column) if isinstance(v, torch.Tensor)]
            if on_device:  # one transfer for the whole column, on this thread
                host = torch.stack([column[i] for i in on_device]).to(torch.float64).cpu().tolist()
                for i, v in zip(on_device, host):
                    column[i] = v
            columns[name] = np.asarray(column, dtype=np.float64)
        store.append("scalars", columns)

    return job
