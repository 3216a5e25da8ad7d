"""Residuals: the per-sample residuals (and RBA weights) that ``residuals(model)`` returns, on its schedule."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from pinnlog.analyzer.errors import RecorderError
from pinnlog.recorder.captures.base import Capture, Rows
from pinnlog.recorder.schedules import Schedule

__all__ = ["Residuals", "record_residuals"]


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


class Residuals(Capture):
    """``residuals/residual`` (and ``rba_weight``) per sample; the same fixed samples every time."""

    def __init__(self, schedule: Schedule, model: nn.Module, residuals: Callable):
        super().__init__(schedule)
        self.model, self.residuals = model, residuals
        self.n_samples: int | None = None

    def attrs(self):
        return {"residual_schedule": repr(self.schedule)}

    def compute(self, step: int) -> list[Rows]:
        residual, weight = record_residuals(self.model, self.residuals)
        if self.n_samples is None:
            self.n_samples = residual.numel()
        elif residual.numel() != self.n_samples:
            raise RecorderError(
                f"residuals(model) returned {residual.numel()} samples at step {step} but {self.n_samples} before; "
                "evaluate it on the same fixed samples every time"
            )
        values = {"step": [step], "residual": residual[None]}
        if weight is not None:
            values["rba_weight"] = weight[None]
        return [Rows("residuals", values)]
