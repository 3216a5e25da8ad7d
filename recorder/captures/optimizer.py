"""Optimizer moments: Adam's bias-corrected ``m_hat`` and denominator per tensor (Eq. 13), raw state on raw steps.

Read from the optimizer's own state, betas, eps and step count; never written.
"""

from __future__ import annotations

import torch

from pinnlog.recorder.captures.base import Capture, Rows
from pinnlog.recorder.captures.layout import Layout
from pinnlog.recorder.schedules import Schedule

__all__ = ["OptimizerMoments", "adam_reductions", "flat_adam_state", "is_adam"]


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


class OptimizerMoments(Capture):
    """``sum_m_hat2`` and ``sum_adam_denom2`` (``gradient_stats``); ``exp_avg``/``exp_avg_sq`` on raw steps.

    Only for Adam and AdamW (:func:`is_adam`); other optimizers have no moments to record.
    """

    def __init__(self, schedule: Schedule, raw_schedule: Schedule, layout: Layout, optimizer):
        super().__init__(schedule, raw_schedule)
        self.layout, self.optimizer = layout, optimizer

    def compute(self, step: int) -> list[Rows]:
        m_hat2, denom2 = adam_reductions(self.layout, self.optimizer)
        rows = [Rows("gradient_stats", {"sum_m_hat2": m_hat2[None], "sum_adam_denom2": denom2[None]})]
        if self.is_raw(step):
            exp_avg, exp_avg_sq, t = flat_adam_state(self.layout, self.optimizer)
            state = {"step": [step], "optimizer_step": [t], "exp_avg": exp_avg[None], "exp_avg_sq": exp_avg_sq[None]}
            rows.append(Rows("optimizer_state", state))
        return rows
