"""Weights: ``||w||^2`` per tensor (``gradient_stats.sum_w2``) and, on raw steps, the flat weights on P."""

from __future__ import annotations

from collections.abc import Callable

import torch

from pinnlog.recorder.captures.base import Capture, Rows
from pinnlog.recorder.captures.layout import Layout, Live
from pinnlog.recorder.schedules import Schedule

__all__ = ["Weights", "flat_weights", "sum_w2"]


def sum_w2(layout: Layout, weights=None) -> torch.Tensor:
    """``||w||^2`` per tensor, in float64; NaN for a tensor that is gone (``weights`` holds None there)."""
    out = []
    nan = torch.tensor(float("nan"), dtype=torch.float64, device=layout.device)
    for p in layout.params if weights is None else weights:
        if p is None:
            out.append(nan)
            continue
        w = p.detach().reshape(-1).to(torch.float64)
        out.append(torch.dot(w, w).to(nan.device))
    return torch.stack(out)


def flat_weights(layout: Layout, weights=None) -> torch.Tensor:
    """The weights on P, float32; NaN where a tensor is gone."""
    parts = []
    for t, p in zip(layout.tensors, layout.params if weights is None else weights):
        if p is None:
            parts.append(torch.full((t["numel"],), float("nan"), dtype=torch.float32, device=layout.device))
        else:
            parts.append(p.detach().reshape(-1).to(torch.float32).to(layout.device))
    return torch.cat(parts)


class Weights(Capture):
    """``sum_w2`` on every capture (the denominator of Eq. 11's SRR_B); the weights themselves on raw steps."""

    def __init__(self, schedule: Schedule, raw_schedule: Schedule, layout: Layout, live: Callable[[], Live] | None = None):
        super().__init__(schedule, raw_schedule)
        self.layout, self.live = layout, live

    def compute(self, step: int) -> list[Rows]:
        weights = self.live().weights if self.live is not None else None
        rows = [Rows("gradient_stats", {"sum_w2": sum_w2(self.layout, weights)[None]})]
        if self.is_raw(step):
            rows.append(Rows("weights", {"step": [step], "weights": flat_weights(self.layout, weights)[None]}))
        return rows
