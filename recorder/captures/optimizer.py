"""Optimizer moments: Adam's bias-corrected ``m_hat`` and denominator per tensor (Eq. 13), raw state on raw steps.

Read from the optimizer's own state, betas, eps and step count; never written.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch

from pinnlog.analyzer.errors import StaleOptimizerWarning
from pinnlog.recorder.captures.base import Capture, Rows
from pinnlog.recorder.captures.layout import Layout, Live
from pinnlog.recorder.schedules import Schedule

__all__ = ["OptimizerMoments", "adam_reductions", "flat_adam_state", "is_adam"]


def is_adam(optimizer) -> bool:
    return isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW))


def _group_of(optimizer) -> dict[int, dict]:
    return {id(p): group for group in optimizer.param_groups for p in group["params"]}


def adam_reductions(layout: Layout, optimizer, weights=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per tensor ``sum m_hat^2`` and ``sum (sqrt(v_hat) + eps)^2`` (Eq 13), the optimizer's own betas/eps/t.

    A tensor without Adam state yet (no ``optimizer.step()`` so far), one the optimizer does not hold
    and one that is gone (None in ``weights``) get NaN.
    """
    groups = _group_of(optimizer)
    m_hat2, denom2 = [], []
    nan = torch.tensor(float("nan"), dtype=torch.float64, device=layout.device)
    for p in layout.params if weights is None else weights:
        state, group = (optimizer.state.get(p, {}), groups.get(id(p))) if p is not None else ({}, None)
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


def flat_adam_state(layout: Layout, optimizer, weights=None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Raw ``exp_avg`` and ``exp_avg_sq`` on P (NaN where there is no state yet) and Adam's step t (-1: none)."""
    exp_avg, exp_avg_sq, t = [], [], -1
    for entry, p in zip(layout.tensors, layout.params if weights is None else weights):
        state = optimizer.state.get(p, {}) if p is not None else {}
        if "exp_avg" in state:
            exp_avg.append(state["exp_avg"].detach().reshape(-1).to(torch.float32).to(layout.device))
            exp_avg_sq.append(state["exp_avg_sq"].detach().reshape(-1).to(torch.float32).to(layout.device))
            if t < 0:
                t = int(state["step"])
        else:
            missing = torch.full((entry["numel"],), float("nan"), dtype=torch.float32, device=layout.device)
            exp_avg.append(missing)
            exp_avg_sq.append(missing)
    return torch.cat(exp_avg), torch.cat(exp_avg_sq), t


class OptimizerMoments(Capture):
    """``sum_m_hat2`` and ``sum_adam_denom2`` (``gradient_stats``); ``exp_avg``/``exp_avg_sq`` on raw steps.

    Only for Adam and AdamW (:func:`is_adam`); other optimizers have no moments to record.
    """

    def __init__(
        self, schedule: Schedule, raw_schedule: Schedule, layout: Layout, optimizer, live: Callable[[], Live] | None = None
    ):
        super().__init__(schedule, raw_schedule)
        self.layout, self.optimizer, self.live = layout, optimizer, live
        self._seen: dict[str, tuple[int, float | None]] = {}  # per tensor: (weights' version, Adam's step t)
        self._warned: set[str] = set()

    def _stale(self, step: int, live: Live) -> list[int]:
        """Tensors whose weights changed since the last capture while this optimizer did not step them.

        Another optimizer trains them (a new one the recorder was not given): its moments would be stale.
        """
        stale = []
        for i, (entry, p) in enumerate(zip(self.layout.tensors, live.weights)):
            if p is None:
                continue
            t = self.optimizer.state.get(p, {}).get("step")
            now = (p._version, None if t is None else float(t))
            before = self._seen.get(entry["name"])
            self._seen[entry["name"]] = now
            if before is not None and now[1] is not None and before[1] == now[1] and before[0] != now[0]:
                stale.append(i)
        fresh = [self.layout.tensors[i]["name"] for i in stale if self.layout.tensors[i]["name"] not in self._warned]
        if fresh:
            self._warned.update(fresh)
            shown = ", ".join(fresh[:4]) + (f" and {len(fresh) - 4} more" if len(fresh) > 4 else "")
            warnings.warn(
                f"pinnlog: step {step}: {shown} changed but the optimizer the recorder reads did not step them; their Adam "
                "statistics are NaN. If you created a new optimizer, assign it: rec.optimizer = new_optimizer",
                StaleOptimizerWarning,
                stacklevel=5,
            )
        return stale

    def compute(self, step: int) -> list[Rows]:
        live = self.live() if self.live is not None else None
        weights = live.weights if live is not None else None
        m_hat2, denom2 = adam_reductions(self.layout, self.optimizer, weights)
        stale = self._stale(step, live) if live is not None else []
        if stale:
            index = torch.as_tensor(stale, device=m_hat2.device)
            m_hat2 = m_hat2.index_fill(0, index, float("nan"))
            denom2 = denom2.index_fill(0, index, float("nan"))
        rows = [Rows("gradient_stats", {"sum_m_hat2": m_hat2[None], "sum_adam_denom2": denom2[None]})]
        if self.is_raw(step):
            exp_avg, exp_avg_sq, t = flat_adam_state(self.layout, self.optimizer, weights)
            state = {"step": [step], "optimizer_step": [t], "exp_avg": exp_avg[None], "exp_avg_sq": exp_avg_sq[None]}
            rows.append(Rows("optimizer_state", state))
        return rows
