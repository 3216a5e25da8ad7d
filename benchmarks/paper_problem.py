"""The paper's Allen-Cahn network and optimizer for the recorder benchmarks; the problem is ``benchmarks.pinns.allen_cahn``.

MLP [2] + [128] x 6 + [1] with ``torch.tanh`` in ``forward``; 25,600 fixed collocation points in
K = 100 batches of 256; 512 initial-condition points whose loss is added to every batch (paper
Appendix B.1: u_t - 1e-4 u_xx + 5u^3 - 5u = 0, u(0, x) = x^2 cos(pi x)).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the checkout's benchmarks package
from benchmarks.pinns.allen_cahn import PaperBatches, TanhMLP

#: MLP [2] + [128] x 6 + [1], tanh inside forward.
PaperMLP = TanhMLP

#: The paper's set-up at its size (K = 100 batches of 256 points, 512 initial points).
AllenCahnProblem = PaperBatches


def make_run(device="cpu", seed=0, lr=1e-3):
    torch.manual_seed(seed)
    model = PaperMLP().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    return model, optimizer


def plain_step(model, optimizer, problem):
    return problem.train_step(model, optimizer)
