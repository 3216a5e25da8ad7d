"""Gradient moments: the K batch gradients at fixed weights, reduced per tensor (Eq. 8), and their raw rows.

Gradients come from ``torch.autograd.grad`` (never ``.grad``, never the optimizer). :func:`moments` is
the one Welford loop over batch gradients; :class:`~pinnlog.recorder.Recorder` reduces it per tensor
and :class:`~pinnlog.recorder.distributed.DistributedRecorder` merges it across ranks first. Results
stay on the model's device; the recorder hands them to the writer thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from pinnlog.analyzer.errors import RecorderError
from pinnlog.recorder.captures.base import Capture, Rows
from pinnlog.recorder.captures.layout import FROZEN, Layout, Live
from pinnlog.recorder.schedules import Schedule

__all__ = [
    "ENGINE_CODES",
    "GradientCapture",
    "GradientMoments",
    "capture_gradients",
    "check_loss",
    "flat_gradient",
    "moments",
    "per_tensor_moments",
]

#: ``gradient_stats/engine``: which engine computed a capture's K batch gradients (docs/format.md,
#: ``recorder/engines.py``); "mixed": DDP ranks used different engines.
ENGINE_CODES = {"loop": 0, "vectorised": 1, "mixed": 2}

# Columns of the raw K x P buffer reduced at once on the raw path: K x block float64 stays <= 1 MiB.
_BLOCK_BYTES = 2**20


def check_loss(loss, where: str) -> None:
    """Refuse what ``torch.autograd.grad`` cannot differentiate, with the fix in one sentence."""
    if not isinstance(loss, torch.Tensor):
        raise RecorderError(
            f"{where} returned {type(loss).__name__}, not a torch tensor; return the loss tensor itself (no .item())"
        )
    if loss.numel() != 1:
        raise RecorderError(
            f"{where} returned a tensor of shape {tuple(loss.shape)}, not a scalar; reduce it to the batch's loss (e.g. .mean())"
        )
    if not loss.requires_grad:
        raise RecorderError(
            f"{where} returned a tensor that does not require grad; compute it from the model's output, "
            "without torch.no_grad() or .detach()"
        )


def _check_grad_mode(where: str) -> None:
    if torch.is_inference_mode_enabled():
        raise RecorderError(
            f"{where} ran under torch.inference_mode(), where nothing can be differentiated; call rec.step outside "
            "torch.inference_mode() (torch.no_grad() is fine)"
        )


def flat_gradient(loss, params, where: str, out: torch.Tensor | None = None, numels=None) -> torch.Tensor:
    """d loss / d params, flattened in layout order; unused parameters get zeros.

    ``params`` may hold None (a frozen or replaced tensor, :class:`~pinnlog.recorder.captures.layout.Live`):
    its slice is NaN, with ``numels`` giving its size. Sparse gradients (``nn.Embedding(sparse=True)``)
    are made dense.
    """
    check_loss(loss, where)
    live = [p for p in params if p is not None]
    try:
        grads = iter(torch.autograd.grad(loss, live, allow_unused=True) if live else ())
    except RuntimeError as exc:
        if "backward through the graph a second time" in str(exc):
            what = "its graph was already used by a backward pass"
        elif "modified by an inplace operation" in str(exc):
            what = "a tensor of its graph was changed in place (optimizer.step()?)"
        else:
            raise
        raise RecorderError(
            f"{where}: {what}; return the loss without calling .backward() or optimizer.step(): "
            "the recorder differentiates it itself"
        ) from None
    like = live[0] if live else loss
    parts = []
    for i, p in enumerate(params):
        if p is None:
            parts.append(torch.full((int(numels[i]),), float("nan"), dtype=like.dtype, device=like.device))
            continue
        g = next(grads)
        if g is None:
            parts.append(torch.zeros(p.numel(), dtype=p.dtype, device=p.device))
        else:
            parts.append((g.to_dense() if g.is_sparse else g).reshape(-1))
    del grads
    if out is not None and all(part.dtype == out.dtype for part in parts):
        return torch.cat(parts, out=out)
    flat = torch.cat(parts)
    if out is not None:
        out.copy_(flat)
    return flat


def _call(fn, *args, where: str):
    """``fn(*args)``, with the two mistakes a user function makes here said in one line."""
    try:
        return fn(*args)
    except RuntimeError as exc:
        if "does not require grad" in str(exc) or "Trying to backward through the graph" in str(exc):
            raise RecorderError(
                f"{where} failed ({str(exc).splitlines()[0]}); return the loss without calling .backward() or "
                "optimizer.step(): the recorder differentiates it itself"
            ) from None
        raise


@dataclass
class GradientCapture:
    """Per-tensor ``sum_mu2`` and ``sum_sigma2`` (float64, on the device), on raw steps the K x P rows,
    and the engine that computed them (a key of ``ENGINE_CODES``)."""

    sum_mu2: torch.Tensor
    sum_sigma2: torch.Tensor
    raw: torch.Tensor | None
    engine: str = "loop"


def moments(
    model,
    layout: Layout,
    batch_loss,
    n_batches: int,
    shared_loss=None,
    rows: torch.Tensor | None = None,
    params=None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Welford's ``(mean, M2)`` over the ``n_batches`` batch gradients, float64 on the device (4 x P x 4 bytes).

    Streaming in float64 leaves ``sigma^2 = M2 / K`` without the E[g^2] - mu^2 cancellation even at
    SNR 100. ``shared_loss``'s gradient is computed once and added to the mean: it shifts every batch
    gradient alike and leaves M2 unchanged. With ``rows`` (K x P float32) each batch gradient is also
    kept there, the shared gradient added (the raw rows a distributed capture gathers). ``params``
    (default ``layout.params``) are the tensors now, None where frozen or gone (NaN sums there).
    """
    params = layout.params if params is None else params
    numels = [t["numel"] for t in layout.tensors]
    _check_grad_mode("rec.step")
    mean = torch.zeros(layout.n_params, dtype=torch.float64, device=layout.device)
    m2 = torch.zeros_like(mean)
    for b in range(n_batches):
        where = f"batch_loss(model, {b})"
        g = flat_gradient(_call(batch_loss, model, b, where=where), params, where, numels=numels)
        if rows is not None:
            rows[b] = g
        delta = g.to(torch.float64)  # a new tensor unless g already is float64 (then g itself: no longer needed)
        del g
        delta.sub_(mean)
        mean.add_(delta, alpha=1.0 / (b + 1))
        m2.addcmul_(delta, delta, value=b / (b + 1))  # Welford: M2 += delta * (g - new mean)
        del delta
    if shared_loss is not None:
        where = "shared_loss(model)"
        shared = flat_gradient(_call(shared_loss, model, where=where), params, where, numels=numels)
        mean.add_(shared.to(torch.float64))
        if rows is not None:
            rows.add_(shared)
    return mean, m2


def per_tensor_moments(mean: torch.Tensor, m2: torch.Tensor, count: int, layout: Layout) -> tuple[torch.Tensor, torch.Tensor]:
    """``sum_mu2`` and ``sum_sigma2`` per tensor from Welford's ``(mean, M2)`` over ``count`` batches."""
    sum_mu2 = torch.stack([torch.dot(mean[o : o + c], mean[o : o + c]) for o, c in layout.spans])
    sum_sigma2 = torch.stack([m2[o : o + c].sum() for o, c in layout.spans]) / count
    return sum_mu2, sum_sigma2


def capture_gradients(
    model, layout: Layout, batch_loss, n_batches: int, shared_loss=None, keep_raw: bool = False, params=None
) -> GradientCapture:
    """The K batch gradients at the current weights, reduced per tensor (Eq 8: mean and std over batches).

    Without ``keep_raw`` the gradients stream through :func:`moments`. With it they fill a K x P
    float32 buffer that is reduced afterwards by an exact two-pass sum in float64 blocks, so no
    accumulator is added to the buffer; the shared gradient is added to the rows after the reduction.
    A model with float64 tensors streams through :func:`moments` on raw steps too (the float32 rows
    are only stored), so its sums keep float64 precision on every step. ``params``: as for :func:`moments`.
    """
    params = layout.params if params is None else params
    if not keep_raw:
        mean, m2 = moments(model, layout, batch_loss, n_batches, shared_loss, params=params)
        sum_mu2, sum_sigma2 = per_tensor_moments(mean, m2, n_batches, layout)
        return GradientCapture(sum_mu2, sum_sigma2, raw=None)
    raw = torch.empty((n_batches, layout.n_params), dtype=torch.float32, device=layout.device)
    if any(p is not None and p.dtype == torch.float64 for p in params):
        mean, m2 = moments(model, layout, batch_loss, n_batches, shared_loss, rows=raw, params=params)
        sum_mu2, sum_sigma2 = per_tensor_moments(mean, m2, n_batches, layout)
        return GradientCapture(sum_mu2, sum_sigma2, raw=raw)
    _check_grad_mode("rec.step")
    numels = [t["numel"] for t in layout.tensors]
    for b in range(n_batches):
        where = f"batch_loss(model, {b})"
        flat_gradient(_call(batch_loss, model, b, where=where), params, where, out=raw[b], numels=numels)
    shared = None
    if shared_loss is not None:
        where = "shared_loss(model)"
        shared = flat_gradient(_call(shared_loss, model, where=where), params, where, numels=numels).to(torch.float64)
    # Reduce before adding the shared gradient: float32 rows of g_b + g_shared would carry
    # rounding noise into sigma^2 (first order in |g| / sigma, i.e. ~1e-7 x SNR relative).
    sum_mu2, sum_sigma2 = _raw_reductions(raw, layout, shared)
    if shared is not None:
        raw.add_(shared.to(raw.dtype))
    return GradientCapture(sum_mu2, sum_sigma2, raw=raw)


def _raw_reductions(raw: torch.Tensor, layout: Layout, shared: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact two-pass mean and variance over the K rows in float64, a block of columns at a time."""
    k = raw.shape[0]
    block = max(1, _BLOCK_BYTES // (8 * k))
    mu2, sigma2 = [], []
    for o, c in layout.spans:
        s_mu2 = torch.zeros((), dtype=torch.float64, device=raw.device)
        s_sigma2 = torch.zeros((), dtype=torch.float64, device=raw.device)
        for start in range(o, o + c, block):
            x = raw[:, start : min(start + block, o + c)].to(torch.float64)
            mu = x.mean(dim=0)
            x.sub_(mu)
            if shared is not None:
                mu.add_(shared[start : start + x.shape[1]])
            s_mu2 += torch.dot(mu, mu)
            s_sigma2 += x.square_().sum() / k
        mu2.append(s_mu2)
        sigma2.append(s_sigma2)
    return torch.stack(mu2), torch.stack(sigma2)


class GradientMoments(Capture):
    """``sum_mu2``, ``sum_sigma2``, ``sum_rms2`` per tensor (``gradient_stats``); on raw steps the K x P rows.

    ``source(raw)`` computes the K batch gradients at the current weights: :func:`capture_gradients`
    in one process, every rank's batches merged in :class:`~pinnlog.recorder.distributed.DistributedRecorder`.
    """

    holds_raw_buffer = True

    def __init__(
        self,
        schedule: Schedule,
        raw_schedule: Schedule,
        layout: Layout,
        source: Callable[[bool], GradientCapture],
        live: Callable[[], Live] | None = None,
    ):
        super().__init__(schedule, raw_schedule)
        self.layout, self.source, self.live = layout, source, live

    def static(self):
        tensors = self.layout.tensors
        return {
            "gradient_stats": {
                "numel": np.array([t["numel"] for t in tensors], dtype=np.int64),
                "layer": np.array([t["layer"] for t in tensors], dtype=np.int32),
                "is_bias": np.array([t["is_bias"] for t in tensors], dtype=bool),
            }
        }

    def compute(self, step: int) -> list[Rows]:
        raw = self.is_raw(step)
        result = self.source(raw)
        stats = {
            "step": [step],
            "sum_mu2": result.sum_mu2[None],
            "sum_sigma2": result.sum_sigma2[None],
            "sum_rms2": (result.sum_mu2 + result.sum_sigma2)[None],
            "engine": np.array([ENGINE_CODES[result.engine]], dtype=np.int8),
        }
        mask = None
        if self.live is not None:
            state = self.live().state
            stats["tensor_state"] = state[None]
            mask = state < FROZEN  # frozen and gone tensors are NaN by design, not a diverging run
        rows = [Rows("gradient_stats", stats, finite=("sum_mu2", "sum_sigma2", "sum_rms2"), finite_mask=mask)]
        if raw and result.raw is not None:
            rows.append(Rows("batch_gradients", {"step": [step], "batch_gradients": result.raw[None]}))
        return rows
