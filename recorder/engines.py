"""How one capture computes the K batch gradients: a loop of K backward passes, or one vectorised pass.

The **loop** engine calls the user's ``batch_loss(model, b)`` K times and takes K ``torch.autograd.grad``
(``captures.capture_gradients``). On a GPU those K small (double) backward passes are launch-bound: at
the paper's size a capture costs 50-90 plain steps (docs/performance.md).

The **vectorised** engine evaluates all K batches at once with the FLOPs of one full-batch gradient.
Every trainable tensor is stacked K times (an ``expand``: no copy) and the model runs functionally,
``torch.func.vmap`` over (stacked parameters, (K, n, ...) inputs) of ``torch.func.functional_call``, so
batch b's rows only meet parameter copy b. The user's optional ``batch_losses(model, batches)`` sees that
vmapped model as an ordinary callable on (k, n, ...) inputs (input derivatives with
``torch.autograd.grad(u, x, create_graph=True)`` work outside the vmap) and returns the k losses; one
``torch.autograd.grad`` of their sum with respect to the stacked parameters gives, in row b, exactly the
gradient of batch b's loss (loss b depends on no other copy). ``batches`` is a ``slice`` of
``range(K)``: chunks of ``chunk_size`` batches bound the memory.

Self-check: at the first capture and every ``check_every``-th, the rows of ``check_batches`` batches (the
first, the last, and others that move on from check to check) are compared with the loop's gradients
of the same batches; beyond ``tolerance`` (max over batches of ||g_vec - g_loop|| / ||g_loop||) the engine falls back
to the loop for good, with one warning naming the reason. Models the vmap cannot run batch-wise
(BatchNorm in train mode, dropout, data-dependent control flow, in-place buffer updates) fall back the
same way. ``GradientEngine.history`` says which engine made each capture; the Recorder stores it
(``gradient_stats/engine``, docs/format.md).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from pinnlog.analyzer.errors import EngineFallbackWarning, RecorderError
from pinnlog.recorder import captures
from pinnlog.recorder.captures.gradients import ENGINE_CODES, _raw_reductions

__all__ = [
    "CHECK_BATCHES",
    "ENGINE_CODES",
    "ENGINE_NAMES",
    "GradientEngine",
    "Moments",
    "StackedModel",
    "checked_batches",
    "stacked_batch_losses",
    "unsupported_reason",
    "vectorised_rows",
]

ENGINE_NAMES = ("auto", "loop", "vectorised")
#: Default batches per vectorised pass off CUDA. On a CPU the pass is bound by memory traffic, and
#: activations of 25 batches of 256 points stay in cache better than 100 (benchmarks/engine_routes.py:
#: 0.63 against 1.07 full-batch gradients on the paper's problem). On CUDA the default is all K (one launch each).
CPU_CHUNK = 25
#: Default batches compared with the loop at a self-check (:func:`checked_batches`).
CHECK_BATCHES = 4


class EngineMismatch(Exception):
    """The vectorised rows disagree with the loop's beyond the tolerance (the reason is the message)."""


@dataclass
class Moments:
    """Float64 Welford moments of K batch gradients: ``mean`` (``shared_loss`` included), ``m2``; raw rows."""

    mean: torch.Tensor
    m2: torch.Tensor
    raw: torch.Tensor | None
    count: int
    engine: str


class StackedModel:
    """``model`` with its trainable tensors stacked k times: ``stacked(x)`` for x of shape (k, n, ...).

    Row b of every positional input goes through parameter copy b (``torch.func.vmap`` of
    ``torch.func.functional_call``); keyword arguments are passed unbatched to every copy. The output is
    an ordinary (k, n, ...) tensor: differentiate it with ``torch.autograd.grad`` as usual.
    """

    def __init__(self, module: nn.Module, stacked: dict[str, torch.Tensor]):
        self.module, self.stacked = module, stacked
        self.n_stacked = next(iter(stacked.values())).shape[0]

    def __call__(self, *inputs, **kwargs):
        def one(params, *args):
            return torch.func.functional_call(self.module, params, args, kwargs)

        for x in inputs:
            if isinstance(x, torch.Tensor) and (x.dim() == 0 or x.shape[0] != self.n_stacked):
                raise RecorderError(
                    f"batch_losses: the model was called with an input of shape {tuple(x.shape)}; its first dimension "
                    f"must be the {self.n_stacked} batches of this chunk (index the stacked batches with the slice it gets)"
                )
        return torch.func.vmap(one, randomness="error")(self.stacked, *inputs)

    def __getattr__(self, name):  # model attributes (e.g. a custom helper) read through
        if name in ("module", "stacked", "n_stacked"):  # not set yet: no recursion through self.module
            raise AttributeError(name)
        return getattr(self.module, name)


def stacked_batch_losses(batches: torch.Tensor, point_losses: Callable) -> tuple[Callable, Callable]:
    """``(batch_loss, batch_losses)`` for the Recorder, both derived from one pointwise loss.

    ``batches``: the K fixed batches stacked, shape (K, n, ...) (e.g. ``points.view(K, n, d)``).
    ``point_losses(model, x)``: the loss of every point of ``x``, shape ``x.shape[:2]`` for x of
    shape (k, n, ...), and ``x.shape[:1]`` for x of shape (n, ...); index inputs with ``...``. Batch b's
    loss is the mean over its points, for the loop (``batch_loss(model, b)``) and the vectorised engine
    (``batch_losses(model, batches)`` on the stacked points) alike, so the two cannot disagree.
    """
    if not isinstance(batches, torch.Tensor) or batches.dim() < 2:
        raise RecorderError("stacked_batch_losses: batches must be a tensor of shape (K, n, ...): the K batches stacked")

    def batch_loss(model, b):
        return point_losses(model, batches[b]).mean()

    def batch_losses(model, chunk: slice):
        return point_losses(model, batches[chunk]).mean(dim=-1)

    return batch_loss, batch_losses


def _tensor_names(layout: captures.Layout) -> list[str]:
    return [t["name"] for t in layout.tensors]


def unsupported_reason(model: nn.Module) -> str | None:
    """Why the vectorised engine cannot run ``model`` batch-wise, found without running it (or None)."""
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.training:
            return (
                f"module {name or 'model'!r} is {type(module).__name__} in train mode (it mixes the samples of a batch and "
                "updates its running statistics in place)"
            )
    return None


def vectorised_rows(model: nn.Module, layout: captures.Layout, batch_losses: Callable, start: int, stop: int) -> torch.Tensor:
    """Rows ``start:stop`` of the K x P batch-gradient matrix from one vmapped forward and one backward."""
    k = stop - start
    stacked = {
        name: p.detach().unsqueeze(0).expand(k, *p.shape).requires_grad_()
        for name, p in zip(_tensor_names(layout), layout.params)
    }
    losses = batch_losses(StackedModel(model, stacked), slice(start, stop))
    where = f"batch_losses(model, slice({start}, {stop}))"
    if not isinstance(losses, torch.Tensor):
        raise RecorderError(f"{where} returned {type(losses).__name__}; return a tensor of the {k} batch losses")
    if losses.shape != (k,):
        raise RecorderError(
            f"{where} returned a tensor of shape {tuple(losses.shape)}; return one loss per batch, shape ({k},) "
            "(e.g. reduce with .mean(dim=-1))"
        )
    if not losses.requires_grad:
        raise RecorderError(f"{where} returned a tensor that does not require grad; compute it from the model's output")
    grads = torch.autograd.grad(losses.sum(), list(stacked.values()), allow_unused=True)
    return torch.cat(
        [
            g.reshape(k, -1) if g is not None else torch.zeros((k, p.numel()), dtype=p.dtype, device=p.device)
            for g, p in zip(grads, layout.params)
        ],
        dim=1,
    )


def _loop_rows(model, layout: captures.Layout, batch_loss: Callable, start: int, stop: int) -> torch.Tensor:
    return _loop_rows_of(model, layout, batch_loss, range(start, stop))


def _loop_rows_of(model, layout: captures.Layout, batch_loss: Callable, batches) -> torch.Tensor:
    """The loop's gradient rows of the batches ``batches`` (indices), in that order."""
    return torch.stack([captures.flat_gradient(batch_loss(model, b), layout.params, f"batch_loss(model, {b})") for b in batches])


def checked_batches(n_batches: int, check_batches: int | None, check: int) -> list[int]:
    """The batches the self-check number ``check`` (0, 1, ...) compares with the loop, in order.

    All K when ``check_batches`` is None or at least K; else the first and the last batch (where a slicing
    mistake in ``batch_losses`` shows first) and ``check_batches - 2`` of the others, the next ones at each
    check, so that successive checks go through every batch. One batch gradient by the loop costs about
    a training step of kernel launches on a GPU: checking all K = 100 there costs ~60 steps.
    """
    if check_batches is None or check_batches >= n_batches:
        return list(range(n_batches))
    inner, moving = n_batches - 2, check_batches - 2
    return sorted({0, n_batches - 1} | {1 + (check * moving + i) % inner for i in range(moving)})


def _merge(count: int, mean, m2, rows: torch.Tensor):
    """Chan et al.'s exact merge of running (count, mean, M2) with the float64 moments of ``rows``."""
    x = rows.to(torch.float64)
    n = x.shape[0]
    chunk_mean = x.mean(dim=0)
    x.sub_(chunk_mean)
    chunk_m2 = x.square_().sum(dim=0)
    del x
    if count == 0:
        return n, chunk_mean, chunk_m2
    total = count + n
    delta = chunk_mean.sub_(mean)
    mean.add_(delta, alpha=n / total)
    m2.add_(chunk_m2).addcmul_(delta, delta, value=count * n / total)
    return total, mean, m2


class GradientEngine:
    """Computes one capture's K batch gradients with the engine chosen for the run, and says which.

    Parameters
    ----------
    model, layout, batch_loss, n_batches, shared_loss
        As the Recorder's (``batch_loss(model, b)``: the loop's loss of batch b).
    batch_losses : callable, optional
        ``batch_losses(model, batches) -> Tensor[len(batches)]``: the losses of the batches in the slice
        ``batches``, with ``model`` a :class:`StackedModel` called on the stacked (k, n, ...) inputs of
        those batches. Same losses as ``batch_loss`` (without ``shared_loss``'s part when it is given).
    engine : {"auto", "loop", "vectorised"}
        "auto": vectorised when ``batch_losses`` is given, else the loop.
    check_every : int or None
        Compare with the loop at the first capture and every ``check_every``-th after it (None: first only).
    check_batches : int or None
        Batches compared at a self-check (:func:`checked_batches`; at least 2; None: all K).
    chunk_size : int or None
        Batches per vectorised pass (None: all K on CUDA, ``CPU_CHUNK`` elsewhere; halved on a CUDA
        out-of-memory error).
    tolerance : float
        Largest accepted max_b ||g_vec,b - g_loop,b|| / ||g_loop,b|| at a self-check.
    """

    def __init__(
        self,
        model: nn.Module,
        layout: captures.Layout,
        batch_loss: Callable,
        n_batches: int,
        shared_loss: Callable | None = None,
        batch_losses: Callable | None = None,
        engine: str = "auto",
        check_every: int | None = 1000,
        chunk_size: int | None = None,
        tolerance: float = 1e-5,
        check_batches: int | None = CHECK_BATCHES,
    ):
        if engine not in ENGINE_NAMES:
            raise RecorderError(f"engine={engine!r}; use 'auto', 'loop' or 'vectorised'")
        if batch_losses is not None and not callable(batch_losses):
            raise RecorderError(f"batch_losses must be a function, got {type(batch_losses).__name__}")
        if engine == "vectorised" and batch_losses is None:
            raise RecorderError(
                "engine='vectorised' needs batch_losses=: a function (model, batches) -> the losses of those batches "
                "on stacked inputs (docs/recording.md#the-vectorised-engine)"
            )
        if check_every is not None and (isinstance(check_every, bool) or not isinstance(check_every, int) or check_every < 1):
            raise RecorderError(f"check_every={check_every!r}; pass a positive number of captures, or None (first capture only)")
        if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
            raise RecorderError(f"chunk_size={chunk_size!r}; pass a positive number of batches, or None (all K at once)")
        if check_batches is not None and (
            isinstance(check_batches, bool) or not isinstance(check_batches, int) or check_batches < 2
        ):
            raise RecorderError(
                f"check_batches={check_batches!r}; pass the number of batches a self-check compares (>= 2: the first "
                "and the last at least), or None (all of them)"
            )
        self.check_batches = check_batches
        self.model, self.layout = model, layout
        self.batch_loss, self.shared_loss, self.batch_losses = batch_loss, shared_loss, batch_losses
        self.n_batches, self.check_every, self.tolerance = n_batches, check_every, tolerance
        if chunk_size is None:
            chunk_size = n_batches if layout.device.type == "cuda" else CPU_CHUNK
        self.chunk_size = min(chunk_size, n_batches)
        self.requested = engine
        self.name = "vectorised" if batch_losses is not None and engine != "loop" else "loop"
        self.reason: str | None = None  # why the loop runs although batch_losses was given
        self.fallback_step: int | None = None
        self.history: list[str] = []
        self.max_check_error: float | None = None
        self._captures = 0
        self._checks = 0  # self-checks made: which batches the next one compares

    def describe(self) -> dict:
        """The ``engine`` root attribute of the store (docs/format.md)."""
        return {
            "requested": self.requested,
            "engine": self.name,
            "batch_losses": self.batch_losses is not None,
            "check_every": self.check_every,
            "check_batches": self.check_batches,
            "chunk_size": self.chunk_size,
            "tolerance": self.tolerance,
            "fallback_reason": self.reason,
            "fallback_capture": self.fallback_step,
            "max_check_error": self.max_check_error,
        }

    # -- one capture ----------------------------------------------------------------------------

    def capture(self, keep_raw: bool = False, params=None) -> captures.GradientCapture:
        """The reductions of the K batch gradients (``captures.GradientCapture``); ``history[-1]`` says how.

        ``params``: the model's tensors now, None where frozen or gone (``captures.Live.grads``; NaN sums
        there). A capture with such a tensor is made by the loop (the stacked copies would differentiate
        a frozen tensor); the vectorised engine resumes at the next capture where all are live.
        """
        moments = self._try_vectorised(keep_raw, params)
        if moments is None:
            self._done("loop")
            return captures.capture_gradients(
                self.model, self.layout, self.batch_loss, self.n_batches, self.shared_loss, keep_raw=keep_raw, params=params
            )
        self._done("vectorised")
        raw = moments.raw
        shared = self._shared_gradient()
        if raw is not None:
            # The loop engine's raw path, unchanged: exact two-pass sums over the float32 rows, then the shared gradient.
            sum_mu2, sum_sigma2 = _raw_reductions(raw, self.layout, shared)
            if shared is not None:
                raw.add_(shared.to(raw.dtype))
            return captures.GradientCapture(sum_mu2, sum_sigma2, raw=raw, engine="vectorised")
        mean, m2 = moments.mean, moments.m2
        if shared is not None:
            mean.add_(shared)
            del shared
        sum_mu2, sum_sigma2 = captures.per_tensor_moments(mean, m2, self.n_batches, self.layout)
        return captures.GradientCapture(sum_mu2, sum_sigma2, raw=None, engine="vectorised")

    def moments(self, keep_raw: bool = False, params=None) -> Moments:
        """Float64 ``(mean, M2)`` over the K batch gradients and the raw rows (``shared_loss`` in both);
        ``params`` as for :meth:`capture`."""
        moments = self._try_vectorised(keep_raw, params)
        if moments is None:
            self._done("loop")
            layout = self.layout
            raw = torch.empty((self.n_batches, layout.n_params), dtype=torch.float32, device=layout.device) if keep_raw else None
            mean, m2 = captures.moments(
                self.model, layout, self.batch_loss, self.n_batches, self.shared_loss, rows=raw, params=params
            )
            return Moments(mean, m2, raw, self.n_batches, "loop")
        self._done("vectorised")
        shared = self._shared_gradient()
        if shared is not None:
            moments.mean.add_(shared)
            if moments.raw is not None:
                moments.raw.add_(shared.to(moments.raw.dtype))
        return moments

    # -- overlapped captures (the Recorder's capture thread) ---------------------------------------

    def check_due(self) -> bool:
        """Whether the next capture compares the vectorised rows with the loop's."""
        return self.name == "vectorised" and self._check_due()

    def count(self, name: str) -> None:
        """Count a capture that another engine (:meth:`twin`) made with ``name``."""
        self._done(name)

    def twin(self, model: nn.Module, layout: captures.Layout) -> GradientEngine:
        """The same engine for ``model``, a copy of this engine's model: vectorised, never self-checked
        (this engine's synchronous captures do the checks), with this engine's chunk size."""
        twin = GradientEngine(
            model,
            layout,
            self.batch_loss,
            self.n_batches,
            self.shared_loss,
            batch_losses=self.batch_losses,
            engine="vectorised",
            check_every=None,
            chunk_size=self.chunk_size,
            tolerance=self.tolerance,
            check_batches=self.check_batches,
        )
        twin.max_check_error, twin._captures = self.max_check_error, 1
        return twin

    def adopt_fallback(self, twin: GradientEngine) -> None:
        """Take over a fall-back of :meth:`twin`'s (it warned): this engine's last capture was the loop's too."""
        if self.history:
            self.history[-1] = "loop"
        if self.name == "vectorised":
            self.name, self.reason, self.fallback_step = "loop", twin.reason, len(self.history) - 1

    # -- internals --------------------------------------------------------------------------------

    def _done(self, name: str) -> None:
        self.history.append(name)
        self._captures += 1

    def _check_due(self) -> bool:
        if self._captures == 0 or self.max_check_error is None:  # no vectorised capture was checked yet
            return True
        return self.check_every is not None and self._captures % self.check_every == 0

    def _shared_gradient(self) -> torch.Tensor | None:
        if self.shared_loss is None:
            return None
        return captures.flat_gradient(self.shared_loss(self.model), self.layout.params, "shared_loss(model)").to(torch.float64)

    def _fall_back(self, reason: str) -> None:
        self.name, self.reason, self.fallback_step = "loop", reason, self._captures
        warnings.warn(
            f"pinnlog: the vectorised gradient engine falls back to the loop of K batch_loss calls from capture "
            f"{self._captures} on: {reason}",
            EngineFallbackWarning,
            stacklevel=5,
        )

    def _try_vectorised(self, keep_raw: bool, params=None) -> Moments | None:
        """The vectorised moments, or None when the loop must make this capture (after a fall-back, or
        for this capture only when a tensor is frozen or gone, or not the layout's tensor)."""
        if self.name != "vectorised":
            return None
        if params is not None and any(p is None or p is not q for p, q in zip(params, self.layout.params)):
            return None
        reason = unsupported_reason(self.model)
        if reason is not None:
            self._fall_back(reason)
            return None
        check = self._check_due()
        while True:
            try:
                return self._vectorised(keep_raw, check)
            except RecorderError:
                raise  # the user's batch_losses broke the contract: say so, do not hide it behind the loop
            except EngineMismatch as mismatch:
                self._fall_back(str(mismatch))
                return None
            except torch.cuda.OutOfMemoryError:
                if self.chunk_size == 1:
                    self._fall_back("out of GPU memory even one batch at a time")
                    return None
                self.chunk_size = max(1, self.chunk_size // 2)  # memory asks: smaller chunks, same numbers
                if self.layout.device.type == "cuda":
                    torch.cuda.empty_cache()
            except Exception as error:  # what vmap cannot run batch-wise (dropout, data-dependent control flow, ...)
                first = str(error).strip().splitlines()[0] if str(error).strip() else ""
                self._fall_back(f"the vmapped model failed: {type(error).__name__}: {first[:300]}")
                return None

    def _vectorised(self, keep_raw: bool, check: bool) -> Moments:
        layout, k = self.layout, self.n_batches
        assert self.batch_losses is not None  # only chosen when the user gave batch_losses
        raw = torch.empty((k, layout.n_params), dtype=torch.float32, device=layout.device) if keep_raw else None
        count, mean, m2 = 0, None, None
        worst = 0.0
        compared = checked_batches(k, self.check_batches, self._checks) if check else []
        for start in range(0, k, self.chunk_size):
            stop = min(start + self.chunk_size, k)
            rows = vectorised_rows(self.model, layout, self.batch_losses, start, stop)
            here = [b for b in compared if start <= b < stop]
            if here:
                reference = _loop_rows_of(self.model, layout, self.batch_loss, here)
                scale = reference.norm(dim=1)
                mine = rows[[b - start for b in here]]
                error = ((mine - reference).norm(dim=1) / scale.clamp_min(torch.finfo(scale.dtype).tiny)).max().item()
                worst = max(worst, error) if math.isfinite(error) else math.inf
                del reference, mine
                if not worst <= self.tolerance:
                    shown = ", ".join(map(str, here)) if len(here) <= 6 else f"{here[0]}..{here[-1]}"
                    raise EngineMismatch(
                        f"at the self-check its batch gradients differ from the loop's by {worst:.2e} relative "
                        f"(tolerance {self.tolerance:g}; batches {shown}): batch_losses does not compute "
                        "the same losses as batch_loss"
                    )
            if raw is not None:
                raw[start:stop] = rows
            count, mean, m2 = _merge(count, mean, m2, rows)
            del rows
        if check:
            self._checks += 1
            self.max_check_error = worst if self.max_check_error is None else max(self.max_check_error, worst)
        assert mean is not None and m2 is not None  # k >= 1 chunks were merged
        return Moments(mean, m2, raw, count, "vectorised")
