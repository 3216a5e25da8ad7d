"""One capture, at fixed weights after ``optimizer.step()``: the K batch gradients and what they reduce to.

Everything here runs on the training thread inside :func:`frozen_training_state`, which puts back the
RNG states, the train/eval mode and the buffers of every module afterwards, so a recorded run trains
bit for bit like an unrecorded one. Gradients come from ``torch.autograd.grad`` (never ``.grad``, never
the optimizer). Results stay on the model's device; ``writer.to_host`` moves them off it.
"""

from __future__ import annotations

import itertools
import random
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from pinnlog.analyzer.errors import RecorderError

__all__ = [
    "ActivationSite",
    "GradientCapture",
    "Layout",
    "activation_sites",
    "adam_reductions",
    "build_layout",
    "capture_gradients",
    "check_loss",
    "flat_adam_state",
    "flat_weights",
    "frozen_training_state",
    "is_adam",
    "record_activations",
    "record_residuals",
    "sum_w2",
]

# Columns of the raw K x P buffer reduced at once on the raw path: K x block float64 stays <= 1 MiB.
_BLOCK_BYTES = 2**20


@dataclass(frozen=True)
class Layout:
    """The trainable tensors in ``model.named_parameters()`` order and the layers that own them.

    ``tensors`` and ``layers`` are the ``layout`` and ``layers`` root attributes of docs/format.md.
    """

    params: tuple[torch.Tensor, ...]
    tensors: tuple[dict, ...]
    layers: tuple[dict, ...]

    @property
    def n_params(self) -> int:
        return sum(t["numel"] for t in self.tensors)

    @property
    def spans(self) -> list[tuple[int, int]]:
        return [(t["offset"], t["numel"]) for t in self.tensors]


def _width(module: nn.Module) -> int | None:
    for attr in ("out_features", "out_channels", "embedding_dim", "hidden_size"):
        value = getattr(module, attr, None)
        if isinstance(value, int):
            return value
    return None


def build_layout(model: nn.Module) -> Layout:
    """Number the modules that own trainable parameters (``layer_0``, ...) and place each tensor on P."""
    seen: set[int] = set()
    params, tensors, layers = [], [], []
    offset = 0
    for module_name, module in model.named_modules():
        own = [(n, p) for n, p in module.named_parameters(recurse=False) if p.requires_grad and id(p) not in seen]
        if not own:
            continue
        index = len(layers)
        layers.append({"index": index, "name": f"layer_{index}", "module": module_name, "width": _width(module)})
        for local, p in own:
            seen.add(id(p))
            tensors.append(
                {
                    "name": f"{module_name}.{local}" if module_name else local,
                    "module": module_name,
                    "shape": list(p.shape),
                    "numel": p.numel(),
                    "offset": offset,
                    "layer": index,
                    "is_bias": local == "bias",
                }
            )
            params.append(p)
            offset += p.numel()
    if not params:
        raise RecorderError(
            "the model has no trainable parameters (none with requires_grad=True); pass the model the optimizer trains"
        )
    return Layout(tuple(params), tuple(tensors), tuple(layers))


@contextmanager
def frozen_training_state(model: nn.Module):
    """Run a block, then put back RNG states, train/eval modes and buffers exactly as they were.

    The capture's forward passes would otherwise draw dropout masks from the training RNG stream and
    move batch-norm running statistics, and training would no longer be the unrecorded one.
    """
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    py_rng, np_rng = random.getstate(), np.random.get_state()
    modules = list(model.modules())
    modes = [m.training for m in modules]
    buffers = [(m, name, buf, buf.detach().clone()) for m in modules for name, buf in m._buffers.items() if buf is not None]
    try:
        with torch.enable_grad():
            yield
    finally:
        for m, mode in zip(modules, modes):
            m.training = mode
        with torch.no_grad():
            for m, name, buf, saved in buffers:
                m._buffers[name] = buf
                buf.copy_(saved)
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
        random.setstate(py_rng)
        np.random.set_state(np_rng)


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


def _gradient(loss, params, where: str, out: torch.Tensor | None = None) -> torch.Tensor:
    """d loss / d params, flattened in layout order; unused parameters get zeros."""
    check_loss(loss, where)
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    parts = [
        g.reshape(-1) if g is not None else torch.zeros(p.numel(), dtype=p.dtype, device=p.device) for g, p in zip(grads, params)
    ]
    del grads
    if out is not None and all(part.dtype == out.dtype for part in parts):
        return torch.cat(parts, out=out)
    flat = torch.cat(parts)
    if out is not None:
        out.copy_(flat)
    return flat


@dataclass
class GradientCapture:
    """Per-tensor ``sum_mu2`` and ``sum_sigma2`` (float64, on the device) and, on raw steps, the K x P rows."""

    sum_mu2: torch.Tensor
    sum_sigma2: torch.Tensor
    raw: torch.Tensor | None


def capture_gradients(
    model, layout: Layout, batch_loss, n_batches: int, shared_loss=None, keep_raw: bool = False
) -> GradientCapture:
    """The K batch gradients at the current weights, reduced per tensor (Eq 8: mean and std over batches).

    Without ``keep_raw`` the gradients stream through Welford's update in float64 (``mean``, ``M2``:
    4 x P x 4 bytes), so ``sigma^2`` has no E[g^2] - mu^2 cancellation even at SNR 100. With it they
    fill a K x P float32 buffer that is reduced afterwards by an exact two-pass sum in float64 blocks,
    so no accumulator is added to the buffer. ``shared_loss``'s gradient is computed once and added to
    the mean and to every row: it shifts every batch gradient alike and leaves the variance unchanged.
    """
    params, device, k = layout.params, layout.params[0].device, n_batches
    n = layout.n_params
    raw = torch.empty((k, n), dtype=torch.float32, device=device) if keep_raw else None
    mean = m2 = None
    if raw is None:
        mean = torch.zeros(n, dtype=torch.float64, device=device)
        m2 = torch.zeros(n, dtype=torch.float64, device=device)
    for b in range(k):
        if raw is not None:
            _gradient(batch_loss(model, b), params, f"batch_loss(model, {b})", out=raw[b])
            continue
        delta = _gradient(batch_loss(model, b), params, f"batch_loss(model, {b})").to(torch.float64)
        delta.sub_(mean)
        mean.add_(delta, alpha=1.0 / (b + 1))
        m2.addcmul_(delta, delta, value=b / (b + 1))  # Welford: M2 += delta * (g - new mean)
        del delta
    shared = None
    if shared_loss is not None:
        shared = _gradient(shared_loss(model), params, "shared_loss(model)").to(torch.float64)
    if raw is not None:
        # Reduce before adding the shared gradient: float32 rows of g_b + g_shared would carry
        # rounding noise into sigma^2 (first order in |g| / sigma, i.e. ~1e-7 x SNR relative).
        sum_mu2, sum_sigma2 = _raw_reductions(raw, layout, shared)
        if shared is not None:
            raw.add_(shared.to(raw.dtype))
        return GradientCapture(sum_mu2, sum_sigma2, raw=raw)
    if shared is not None:
        mean.add_(shared)
        del shared
    sum_mu2 = torch.stack([torch.dot(mean[o : o + c], mean[o : o + c]) for o, c in layout.spans])
    sum_sigma2 = torch.stack([m2[o : o + c].sum() for o, c in layout.spans]) / k
    return GradientCapture(sum_mu2, sum_sigma2, raw=None)


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


def sum_w2(layout: Layout) -> torch.Tensor:
    """``||w||^2`` per tensor, in float64."""
    out = []
    for p in layout.params:
        w = p.detach().reshape(-1).to(torch.float64)
        out.append(torch.dot(w, w))
    return torch.stack(out)


def is_adam(optimizer) -> bool:
    return isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW))


def _group_of(optimizer) -> dict[int, dict]:
    return {id(p): group for group in optimizer.param_groups for p in group["params"]}


def adam_reductions(layout: Layout, optimizer) -> tuple[torch.Tensor, torch.Tensor]:
    """Per tensor ``sum m_hat^2`` and ``sum (sqrt(v_hat) + eps)^2`` (Eq 13), the optimizer's own betas/eps/t.

    A tensor without Adam state yet (no ``optimizer.step()`` so far) gets NaN.
    """
    groups = _group_of(optimizer)
    m_hat2, denom2 = [], []
    nan = torch.tensor(float("nan"), dtype=torch.float64, device=layout.params[0].device)
    for p in layout.params:
        state, group = optimizer.state.get(p, {}), groups.get(id(p))
        if group is None or "exp_avg" not in state:
            m_hat2.append(nan)
            denom2.append(nan)
            continue
        beta1, beta2 = group["betas"]
        t = state["step"]
        t = t.to(torch.float64) if isinstance(t, torch.Tensor) else float(t)
        second = state["max_exp_avg_sq"] if group.get("amsgrad") else state["exp_avg_sq"]
        # Out-of-place on purpose: .to() may return the optimizer's own tensor when it is float64.
        m_hat = state["exp_avg"].reshape(-1).to(torch.float64) / (1 - beta1**t)
        denom = (second.reshape(-1).to(torch.float64) / (1 - beta2**t)).sqrt() + group["eps"]
        m_hat2.append(torch.dot(m_hat, m_hat).to(nan.device))
        denom2.append(torch.dot(denom, denom).to(nan.device))
    return torch.stack(m_hat2), torch.stack(denom2)


def flat_weights(layout: Layout) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1).to(torch.float32) for p in layout.params])


def flat_adam_state(layout: Layout, optimizer) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Raw ``exp_avg`` and ``exp_avg_sq`` on P (NaN where there is no state yet) and Adam's step t (-1: none)."""
    exp_avg, exp_avg_sq, t = [], [], -1
    for p in layout.params:
        state = optimizer.state.get(p, {})
        if "exp_avg" in state:
            exp_avg.append(state["exp_avg"].detach().reshape(-1).to(torch.float32))
            exp_avg_sq.append(state["exp_avg_sq"].detach().reshape(-1).to(torch.float32))
            if t < 0:
                t = int(state["step"])
        else:
            missing = torch.full((p.numel(),), float("nan"), dtype=torch.float32, device=p.device)
            exp_avg.append(missing)
            exp_avg_sq.append(missing)
    return torch.cat(exp_avg), torch.cat(exp_avg_sq), t


# -- activations ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ActivationSite:
    """Where one layer's activations are read: the ``input`` of ``module`` or its ``output``."""

    name: str  # layer_<i>: the layer the values come out of
    module_name: str
    module: nn.Module
    kind: str


def activation_sites(model: nn.Module, layout: Layout, layers: list[str] | None) -> list[ActivationSite]:
    """The hooks for ``probe=``: by default the input of every ``nn.Linear`` but the first.

    That input is the post-activation output of the previous hidden layer, whether the activation is
    an ``nn.Module`` or ``torch.tanh`` inside ``forward``; it is named after that layer. With
    ``layers=[module names]`` each named module's output is recorded, named after the last layer
    inside it or, failing that, before it in module order.
    """
    layer_of = {entry["module"]: entry["index"] for entry in layout.layers}
    modules = list(model.named_modules())
    sites: list[ActivationSite] = []
    if layers is None:
        linears = [(name, m) for name, m in modules if isinstance(m, nn.Linear)]
        for (prev_name, _), (name, module) in itertools.pairwise(linears):
            if prev_name in layer_of:
                sites.append(ActivationSite(f"layer_{layer_of[prev_name]}", name, module, "input"))
        if not sites:
            raise RecorderError(
                "probe= records the inputs of the 2nd, 3rd, ... nn.Linear by default, and this model has fewer than two; "
                "name the modules to record with layers=[...]"
            )
        return sites
    by_name = dict(modules)
    taken: dict[str, str] = {}
    for name in layers:
        if name not in by_name:
            examples = ", ".join(repr(n) for n, _ in modules[1:6])
            raise RecorderError(
                f"layers=: the model has no module named {name!r}; pick names from model.named_modules(), e.g. {examples}"
            )
        position = next(i for i, (n, _) in enumerate(modules) if n == name)
        inside = [layer_of[n] for n, _ in modules if n in layer_of and (n == name or n.startswith(f"{name}.") or name == "")]
        before = [layer_of[n] for n, _ in modules[:position] if n in layer_of]
        if not inside and not before:
            raise RecorderError(
                f"layers=: module {name!r} comes before any layer with parameters; record a module after the first layer"
            )
        layer_name = f"layer_{(inside or before)[-1]}"
        if layer_name in taken:
            raise RecorderError(
                f"layers=: modules {taken[layer_name]!r} and {name!r} both come out of {layer_name}; keep one of them"
            )
        taken[layer_name] = name
        sites.append(ActivationSite(layer_name, name, by_name[name], "output"))
    return sites


def _forward(model: nn.Module, probe):
    if isinstance(probe, dict):
        return model(**probe)
    if isinstance(probe, (tuple, list)):
        return model(*probe)
    return model(probe)


def record_activations(model: nn.Module, probe, sites: list[ActivationSite]) -> dict[str, torch.Tensor]:
    """One forward pass of ``probe`` under ``torch.no_grad``; ``{layer_<i>: (probe, units) float32}``."""
    seen: dict[str, torch.Tensor] = {}

    def keep(name: str, value) -> None:
        value = value[0] if isinstance(value, (tuple, list)) else value
        seen[name] = value.detach().reshape(value.shape[0], -1).to(torch.float32, copy=True)

    handles = []
    for site in sites:
        if site.kind == "input":
            handles.append(site.module.register_forward_pre_hook(lambda m, args, name=site.name: keep(name, args)))
        else:
            handles.append(site.module.register_forward_hook(lambda m, args, out, name=site.name: keep(name, out)))
    try:
        with torch.no_grad():
            _forward(model, probe)
    finally:
        for handle in handles:
            handle.remove()
    missing = [site.module_name for site in sites if site.name not in seen]
    if missing:
        raise RecorderError(
            f"the probe's forward pass never reached module(s) {missing}; name modules that forward() calls in layers="
        )
    return {site.name: seen[site.name] for site in sites}


def record_residuals(model: nn.Module, residuals) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``residuals(model)`` as flat float32 (residual, RBA weight or None), detached copies."""
    out = residuals(model)
    weight = None
    if isinstance(out, (tuple, list)):
        if len(out) != 2:
            raise RecorderError(
                f"residuals(model) returned {len(out)} values; return the residual vector or (residual, rba_weight)"
            )
        out, weight = out
    if not isinstance(out, torch.Tensor) or (weight is not None and not isinstance(weight, torch.Tensor)):
        raise RecorderError(
            "residuals(model) must return a tensor of per-sample residuals, or a pair (residual, rba_weight) of tensors"
        )
    res = out.detach().reshape(-1).to(torch.float32, copy=True)
    if weight is not None:
        weight = weight.detach().reshape(-1).to(torch.float32, copy=True)
        if weight.numel() != res.numel():
            raise RecorderError(
                f"residuals(model) returned {res.numel()} residuals but {weight.numel()} RBA weights; return one weight per sample"
            )
    return res, weight
