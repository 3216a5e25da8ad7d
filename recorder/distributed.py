"""Record a multi-process (``torch.distributed``, DDP) run into one store: every rank's batches are the K.

    rec = DistributedRecorder("runs/ddp.zarr", ddp_model, optimizer, batch_loss, n_batches=2)
    for step in range(n_steps):
        ...; loss.backward(); optimizer.step()
        rec.step(step, loss=loss)                  # on every rank, with the same steps
    rec.close()

With W processes each holding K_local fixed batches of its own data, the run's K = W x K_local batches
are rank 0's batches, then rank 1's, ... (batch ``b`` is batch ``b % K_local`` of rank ``b // K_local``).
On a scheduled step each rank computes the float64 moments (mean, M2 per parameter) of its K_local
batch gradients with its own gradient engine (``engines.py``: :func:`pinnlog.recorder.captures.moments`,
the loop ``Recorder`` uses, or the vectorised pass when ``batch_losses`` is given, self-checked on each
rank), then two ``all_reduce`` sums merge the ranks exactly (Chan et al.'s pairwise
formula, for W parts at once):

    mean = sum_r K_r mean_r / K        M2 = sum_r (M2_r + K_r (mean_r - mean)^2)

so communication is 2 x P float64 per capture whatever K is, and rank 0 writes the same reductions a
single process would compute over the union of the batches. Raw snapshots (``raw_schedule``) gather the
K_local x P float32 rows to rank 0. Only rank 0 writes (scalars, residuals and activations are rank 0's).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from pinnlog.analyzer.errors import RecorderError
from pinnlog.recorder import captures, engines
from pinnlog.recorder.recorder import Recorder
from pinnlog.recorder.schedules import Schedule, as_schedule, every

__all__ = ["DistributedRecorder", "merge_moments"]


def _unwrap(model: nn.Module) -> nn.Module:
    """The module inside DDP: its gradients are this rank's own, not the average DDP's hooks make."""
    from torch.nn.parallel import DistributedDataParallel

    return model.module if isinstance(model, DistributedDataParallel) else model


def merge_moments(mean: torch.Tensor, m2: torch.Tensor, count: int, group=None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Merge every rank's Welford ``(mean, M2, count)`` exactly: the moments of the union of their samples.

    Two ``all_reduce`` sums (Chan et al. 1979, for W parts at once); every rank gets the result.
    """
    counts = torch.tensor([float(count)], dtype=torch.float64, device=mean.device)
    dist.all_reduce(counts, group=group)
    total = int(counts.item())
    merged = mean * (count / total)
    dist.all_reduce(merged, group=group)
    spread = m2 + count * (mean - merged) ** 2
    dist.all_reduce(spread, group=group)
    return merged, spread, total


class _GatheringRecorder(Recorder):
    """Rank 0's recorder: its captures merge every rank's batches (``DistributedRecorder``)."""

    def __init__(
        self,
        *args,
        exchange: Callable[..., captures.GradientCapture],
        describe_engine: Callable[[], dict],
        distributed_attrs: dict,
        **kwargs,
    ):
        self._exchange, self._describe_engine = exchange, describe_engine
        super().__init__(*args, **kwargs)
        self._writer.submit(lambda store: store.set_attrs(distributed=distributed_attrs))

    def _capture_batch_gradients(self, raw: bool) -> captures.GradientCapture:
        result = self._exchange(raw, self._current().grads)
        self._update_engine_attrs()
        return result

    def _engine_description(self) -> dict:
        return self._describe_engine()  # rank 0's engine; gradient_stats/engine says "mixed" if ranks differ


class DistributedRecorder:
    """Record a ``torch.distributed`` run: each rank's fixed batches are part of the K; rank 0 writes.

    Create it on every rank after ``torch.distributed.init_process_group`` and call ``step`` on every
    rank with the same steps (the captures are collective operations).

    Parameters
    ----------
    path : str or path-like
        The store rank 0 writes (directory or fsspec URL); other ranks ignore it.
    model : torch.nn.Module
        The model, DDP-wrapped or not; ``batch_loss`` gets the module inside DDP, whose gradients are
        this rank's own (DDP's hooks would average them over ranks).
    optimizer : torch.optim.Optimizer
        Read on rank 0 only (Adam moments are the same on every rank under DDP).
    batch_loss : callable
        ``batch_loss(model, b)`` for ``b`` in ``range(n_batches)``: the loss of this rank's batch ``b``.
    n_batches : int
        K_local, the fixed batches per rank (default 1: each rank's whole shard is one batch). Every
        rank must pass the same; the store's ``n_batches`` is ``world_size * n_batches`` >= 2.
    shared_loss : callable, optional
        A batch-independent term added to each of this rank's batch losses (as ``Recorder``).
    batch_losses, engine, check_every, check_batches, chunk_size
        This rank's gradient engine (as ``Recorder``; ``batch_losses(model, batches)`` over this rank's
        batches). The store's ``gradient_stats/engine`` is "mixed" where ranks used different engines.
    schedule, raw_schedule, **options
        As :class:`pinnlog.recorder.Recorder` (``residuals``, ``probe`` ... are recorded on rank 0).
    """

    def __init__(
        self,
        path,
        model: nn.Module,
        optimizer,
        batch_loss: Callable,
        n_batches: int = 1,
        *,
        schedule: Schedule | int | Iterable[int] | None = every(100),
        raw_schedule: Schedule | int | Iterable[int] | None = None,
        shared_loss: Callable | None = None,
        batch_losses: Callable | None = None,
        engine: str = "auto",
        check_every: int | None = 1000,
        check_batches: int | None = engines.CHECK_BATCHES,
        chunk_size: int | None = None,
        **options: Any,
    ):
        if not (dist.is_available() and dist.is_initialized()):
            raise RecorderError(
                "DistributedRecorder needs torch.distributed: call torch.distributed.init_process_group "
                "first, or use Recorder in a single process"
            )
        if isinstance(n_batches, bool) or not isinstance(n_batches, int) or n_batches < 1:
            raise RecorderError(f"n_batches={n_batches!r}: pass the number of fixed batches of each rank (>= 1)")
        self.model = _unwrap(model)
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self._batch_loss, self._shared_loss, self._n_local = batch_loss, shared_loss, n_batches
        self._layout = captures.build_layout(self.model, options.get("parameters", "trainable"))
        # Every rank follows its own model (frozen or replaced tensors give NaN on every rank alike).
        self._tracker = captures.ParameterTracker(self._layout, self.model, optimizer)
        self._step = 0
        self._engine = engines.GradientEngine(
            self.model,
            self._layout,
            batch_loss,
            n_batches,
            shared_loss,
            batch_losses=batch_losses,
            engine=engine,
            check_every=check_every,
            check_batches=check_batches,
            chunk_size=chunk_size,
        )
        self._check_ranks_agree()
        self._schedule, self._raw_schedule = as_schedule(schedule), as_schedule(raw_schedule)
        self._closed = self._exchanged = False
        self._recorder: Recorder | None = None
        if self.rank == 0:
            attrs = {
                "backend": str(dist.get_backend()),
                "world_size": self.world_size,
                "batches_per_rank": n_batches,
                "batch_order": "rank-major: batch b is batch b % batches_per_rank of rank b // batches_per_rank",
            }
            self._recorder = _GatheringRecorder(
                path,
                self.model,
                optimizer,
                batch_loss,
                self.world_size * n_batches,
                schedule=schedule,
                raw_schedule=raw_schedule,
                shared_loss=shared_loss,
                exchange=self._exchange,
                describe_engine=self._engine.describe,
                distributed_attrs=attrs,
                **options,
            )

    def _check_ranks_agree(self) -> None:
        """Refuse, on every rank alike, ranks whose K_local or parameter count differ (no hang later)."""
        device = self._layout.params[0].device if dist.get_backend() == "nccl" else "cpu"  # NCCL: device tensors only
        mine = torch.tensor([self._n_local, self._layout.n_params], dtype=torch.int64, device=device)
        everyone = [torch.zeros_like(mine) for _ in range(dist.get_world_size())]
        dist.all_gather(everyone, mine)
        if any(not torch.equal(other, everyone[0]) for other in everyone):
            seen = [tuple(t.tolist()) for t in everyone]
            raise RecorderError(
                f"ranks disagree on (n_batches, parameters): {seen}; pass the same n_batches and model on every rank"
            )

    def _exchange(self, raw: bool, params=None) -> captures.GradientCapture | None:
        """This rank's part of one capture; on rank 0, the merged reductions (and gathered raw rows) with the
        engine every rank used ("mixed" when they differ). ``params``: this rank's tensors now (None: frozen
        or gone), rank 0's recorder passes its own; other ranks follow their model here."""
        self._exchanged = True
        layout = self._layout
        if params is None:
            params = self._tracker.resolve(self._step).grads
        local = self._engine.moments(keep_raw=raw, params=params)  # this rank's engine: the loop or the vectorised pass
        rows = local.raw
        mean, m2, total = merge_moments(local.mean, local.m2, self._n_local)
        vectorised = torch.tensor([float(local.engine == "vectorised")], dtype=torch.float64, device=mean.device)
        dist.all_reduce(vectorised)
        n_vectorised = round(vectorised.item())
        used = "vectorised" if n_vectorised == self.world_size else "loop" if n_vectorised == 0 else "mixed"
        gathered = None
        if raw:
            parts = [torch.empty_like(rows) for _ in range(self.world_size)] if self.rank == 0 else None
            dist.gather(rows, parts, dst=0)
            gathered = torch.cat(parts) if parts is not None else None  # rank 0 only
        if self.rank != 0:
            return None
        sum_mu2, sum_sigma2 = captures.per_tensor_moments(mean, m2, total, layout)
        return captures.GradientCapture(sum_mu2, sum_sigma2, raw=gathered, engine=used)

    def step(self, step: int, **scalars) -> None:
        """Call on every rank after ``optimizer.step()``; rank 0 records ``scalars`` (its own values)."""
        if self._closed:
            raise RecorderError("rec.step() after the recorder was closed; create a new DistributedRecorder for a new run")
        raw = bool(self._raw_schedule(step))
        self._exchanged = False
        self._step = step
        if self._recorder is not None:
            self._recorder.step(step, **scalars)
        if (raw or self._schedule(step)) and not self._exchanged:
            # Other ranks, and rank 0 when its recorder skipped the capture (on_error="warn" after a writer
            # failure): every rank must still take part, or the others would wait in all_reduce forever.
            with captures.frozen_training_state(self.model):
                self._exchange(raw)

    def flush(self) -> None:
        if self._recorder is not None:
            self._recorder.flush()

    def close(self, status: str = "complete") -> None:
        """Close rank 0's store with ``status``; then every rank waits for it (a barrier)."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._recorder is not None:
                self._recorder.close(status)
        finally:
            dist.barrier()

    def __enter__(self) -> DistributedRecorder:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close("complete")
        elif self._recorder is not None:
            self._closed = True  # no barrier: the other ranks may never get here
            self._recorder.__exit__(exc_type, exc, tb)
