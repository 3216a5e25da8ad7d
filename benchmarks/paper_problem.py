"""The paper's Allen-Cahn PINN set-up, shared by the recorder benchmarks (not a test fixture).

MLP [2] + [128] x 6 + [1] with ``torch.tanh`` in ``forward``; 25,600 fixed collocation points in
K = 100 batches of 256; 512 initial-condition points whose loss is added to every batch (paper
Appendix B.1: u_t - 1e-4 u_xx + 5u^3 - 5u = 0, u(0, x) = x^2 cos(pi x)).
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn


class PaperMLP(nn.Module):
    def __init__(self, widths=(2, 128, 128, 128, 128, 128, 128, 1)):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(widths))

    def forward(self, x):
        for layer in self.layers[:-1]:
            x = torch.tanh(layer(x))
        return self.layers[-1](x)


class AllenCahnProblem:
    def __init__(self, device="cpu", n_batches=100, batch_size=256, n_ic=512, seed=0):
        g = torch.Generator().manual_seed(seed)
        n = n_batches * batch_size
        t = torch.rand(n, 1, generator=g)
        x = torch.rand(n, 1, generator=g) * 2 - 1
        self.points = torch.cat([t, x], dim=1).to(device)
        self.batches = self.points.view(n_batches, batch_size, 2)
        x0 = torch.linspace(-1, 1, n_ic).unsqueeze(1)
        self.ic_points = torch.cat([torch.zeros_like(x0), x0], dim=1).to(device)
        self.ic_values = (x0**2 * torch.cos(math.pi * x0)).squeeze(1).to(device)
        self.n_batches = n_batches

    def residual(self, model, pts):
        pts = pts.clone().requires_grad_(True)
        u = model(pts).squeeze(-1)
        du = torch.autograd.grad(u.sum(), pts, create_graph=True)[0]
        u_xx = torch.autograd.grad(du[:, 1].sum(), pts, create_graph=True)[0][:, 1]
        return du[:, 0] - 1e-4 * u_xx + 5 * u**3 - 5 * u

    def ic_loss(self, model):
        return ((model(self.ic_points).squeeze(-1) - self.ic_values) ** 2).mean()

    def residual_loss(self, model, b):
        return (self.residual(model, self.batches[b]) ** 2).mean()

    def batch_loss(self, model, b):
        """The paper's batch loss: residual loss of batch b plus the whole initial-condition loss."""
        return self.residual_loss(model, b) + self.ic_loss(model)

    def full_loss(self, model):
        return (self.residual(model, self.points) ** 2).mean() + self.ic_loss(model)


def make_run(device="cpu", seed=0, lr=1e-3):
    torch.manual_seed(seed)
    model = PaperMLP().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    return model, optimizer


def plain_step(model, optimizer, problem):
    optimizer.zero_grad()
    loss = problem.full_loss(model)
    loss.backward()
    optimizer.step()
    return loss
