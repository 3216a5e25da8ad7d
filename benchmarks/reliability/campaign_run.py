"""What the kill and disk-full campaigns record: one small seeded training run, and a tap on every commit.

``toy_run`` is a tanh MLP (2 -> width -> width -> 1) fitting ``sin(3 x0) x1`` on random points with Adam,
batch b being rows ``b * batch_size`` to ``(b + 1) * batch_size``; ``watching_commits`` reports each
``RunWriter.append`` of the real store as it starts and once it committed (the campaigns' side channel:
what the recording process knows to be on disk).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from pinnlog.analyzer.store import write as store_module
from pinnlog.recorder import Recorder


@dataclass
class ToyRun:
    x: torch.Tensor
    y: torch.Tensor
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    n_batches: int
    batch_size: int

    def batch_loss(self, model: torch.nn.Module, b: int) -> torch.Tensor:
        rows = slice(b * self.batch_size, (b + 1) * self.batch_size)
        return ((model(self.x[rows]) - self.y[rows]) ** 2).mean()

    def full_loss(self) -> torch.Tensor:
        return ((self.model(self.x) - self.y) ** 2).mean()

    def residuals(self, model: torch.nn.Module) -> torch.Tensor:
        return (model(self.x) - self.y).squeeze(-1)

    def recorder(self, path, **options) -> Recorder:
        """A Recorder of this run on its K batch losses, with its residuals (``options``: schedules, probe, ...)."""
        return Recorder(path, self.model, self.optimizer, self.batch_loss, self.n_batches, residuals=self.residuals, **options)

    def train_step(self) -> torch.Tensor:
        """One Adam step on the full loss; returns that loss."""
        self.optimizer.zero_grad()
        loss = self.full_loss()
        loss.backward()
        self.optimizer.step()
        return loss


def toy_run(n_batches: int, batch_size: int, width: int, seed: int) -> ToyRun:
    """The seeded problem, model and Adam optimizer (``torch.manual_seed(seed)`` first, so reruns are bitwise equal)."""
    torch.manual_seed(seed)
    x = torch.rand(n_batches * batch_size, 2) * 2 - 1
    y = torch.sin(3 * x[:, :1]) * x[:, 1:]
    model = torch.nn.Sequential(
        torch.nn.Linear(2, width), torch.nn.Tanh(), torch.nn.Linear(width, width), torch.nn.Tanh(), torch.nn.Linear(width, 1)
    )
    return ToyRun(x, y, model, torch.optim.Adam(model.parameters(), lr=1e-2), n_batches, batch_size)


@contextlib.contextmanager
def watching_commits(
    started: Callable[[str], None] | None = None, committed: Callable[[str, int], None] | None = None
) -> Iterator[None]:
    """Call ``started(group)`` as every ``RunWriter.append`` begins and ``committed(group, n_committed)`` after it."""
    append = store_module.RunWriter.append

    def watched_append(self, group, rows, dims=None):
        if started is not None:
            started(group)
        n = append(self, group, rows, dims)
        if committed is not None:
            committed(group, n)
        return n

    store_module.RunWriter.append = watched_append
    try:
        yield
    finally:
        store_module.RunWriter.append = append
