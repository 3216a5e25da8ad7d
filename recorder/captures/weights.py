"""Weights: ``||w||^2`` per tensor (``gradient_stats.sum_w2``) and, on raw steps, the flat weights on P."""

from __future__ import annotations

import torch

from pinnlog.recorder.captures.base import Capture, Rows
from pinnlog.recorder.captures.layout import Layout
from pinnlog.recorder.schedules import Schedule

__all__ = ["Weights", "flat_weights", "sum_w2"]


def sum_w2(layout: Layout) -> torch.Tensor:
    """``||w||^2`` per tensor, in float64."""
    out = []
    for p in layout.params:
        w = p.detach().reshape(-1).to(torch.float64)
        out.append(torch.dot(w, w))
    return torch.stack(out)


def flat_weights(layout: Layout) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1).to(torch.float32) for p in layout.params])


class Weights(Capture):
    """``sum_w2`` on every capture (the denominator of Eq. 11's SRR_B); the weights themselves on raw steps."""

    def __init__(self, schedule: Schedule, raw_schedule: Schedule, layout: Layout):
        super().__init__(schedule, raw_schedule)
        self.layout = layout

    def compute(self, step: int) -> list[Rows]:
        rows = [Rows("gradient_stats", {"sum_w2": sum_w2(self.layout)[None]})]
        if self.is_raw(step):
            rows.append(Rows("weights", {"step": [step], "weights": flat_weights(self.layout)[None]}))
        return rows
