"""The paper's Allen-Cahn PINN, recorded with the vectorised gradient engine (``batch_losses``).

A PINN's batch loss needs input derivatives (u_t, u_xx by ``torch.autograd.grad(..., create_graph=True)``).
``batch_loss(model, b)`` is all the recorder needs; giving ``batch_losses(model, batches)`` as well lets a
capture compute all K batch gradients in one vectorised pass instead of K backward passes (on a GPU:
the difference between ~60 plain steps and a few per capture; docs/recording.md). The same
``residual`` serves both, because it indexes with ``...``: the recorder calls ``batch_losses`` with a
stacked model that maps (k, n, 2) points to (k, n, 1), copy b of the weights on batch b.

    python examples/allen_cahn.py                          # small: K = 10 batches of 64, 300 steps
    python examples/allen_cahn.py --paper --device cuda    # the paper's MLP [2]+[128]x6+[1], K = 100 x 256

Writes runs/allen_cahn.zarr; ``pinnlog analyze runs/allen_cahn.zarr`` then makes the report.
"""

from __future__ import annotations

import argparse
import itertools
import math
from pathlib import Path

import torch
from torch import nn

from pinnlog.recorder import Recorder, every


class MLP(nn.Module):
    def __init__(self, widths):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(widths))

    def forward(self, x):
        for layer in self.layers[:-1]:
            x = torch.tanh(layer(x))
        return self.layers[-1](x)


class AllenCahn:
    """u_t - 1e-4 u_xx + 5u^3 - 5u = 0, u(0, x) = x^2 cos(pi x) (paper Appendix B.1); points are (t, x)."""

    def __init__(self, n_batches, batch_size, n_ic=512, device="cpu", seed=0):
        g = torch.Generator().manual_seed(seed)
        n = n_batches * batch_size
        points = torch.cat([torch.rand(n, 1, generator=g), torch.rand(n, 1, generator=g) * 2 - 1], dim=1)
        self.n_batches = n_batches
        self.batches = points.view(n_batches, batch_size, 2).to(device)  # K fixed batches, kept all run
        x0 = torch.linspace(-1, 1, n_ic).unsqueeze(1)
        self.ic_points = torch.cat([torch.zeros_like(x0), x0], dim=1).to(device)
        self.ic_values = (x0**2 * torch.cos(math.pi * x0)).squeeze(1).to(device)

    def residual(self, model, pts):
        """The PDE residual at ``pts`` of shape (..., 2): (n, 2) in training, (k, n, 2) stacked."""
        pts = pts.clone().requires_grad_(True)
        u = model(pts).squeeze(-1)
        du = torch.autograd.grad(u.sum(), pts, create_graph=True)[0]
        u_xx = torch.autograd.grad(du[..., 1].sum(), pts, create_graph=True)[0][..., 1]
        return du[..., 0] - 1e-4 * u_xx + 5 * u**3 - 5 * u

    def batch_loss(self, model, b):
        """The loss of fixed batch b: what the loop engine differentiates K times."""
        return (self.residual(model, self.batches[b]) ** 2).mean()

    def batch_losses(self, model, batches):
        """The same losses for the batches in the slice ``batches``, all at once (the vectorised engine)."""
        return (self.residual(model, self.batches[batches]) ** 2).mean(dim=-1)

    def ic_loss(self, model):
        """The initial-condition loss every batch shares (``shared_loss``: its gradient once per capture)."""
        return ((model(self.ic_points).squeeze(-1) - self.ic_values) ** 2).mean()

    def full_loss(self, model):
        return (self.residual(model, self.batches.reshape(-1, 2)) ** 2).mean() + self.ic_loss(model)


def train(out, steps=300, paper=False, device="cpu", overwrite=True):
    """Train with Adam, recording every 10 steps (raw snapshots at the first and last); returns ``out``."""
    torch.manual_seed(0)
    widths, k, n = ((2, *[128] * 6, 1), 100, 256) if paper else ((2, 32, 32, 32, 1), 10, 64)
    problem = AllenCahn(k, n, device=device)
    model = MLP(widths).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with Recorder(
        out,
        model,
        optimizer,
        batch_loss=problem.batch_loss,
        batch_losses=problem.batch_losses,  # optional: enables the vectorised engine (engine="auto")
        n_batches=k,
        shared_loss=problem.ic_loss,
        schedule=every(10),
        raw_schedule=[0, steps - 1],
        config={"pde": "allen-cahn", "example": "examples/allen_cahn.py"},
        overwrite=overwrite,
    ) as rec:
        for step in range(steps):
            optimizer.zero_grad()
            loss = problem.full_loss(model)
            loss.backward()
            optimizer.step()
            rec.step(step, loss=loss)
    return Path(out)


def build_parser() -> argparse.ArgumentParser:
    """The command line this script accepts (tests/test_docs.py parses the documented commands with it)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/allen_cahn.zarr")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--paper", action="store_true", help="the paper's network and batches (for a GPU)")
    parser.add_argument("--device", default="cpu")
    return parser


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    path = train(args.out, args.steps, args.paper, args.device)
    print(f"recorded {path}; next: pinnlog analyze {path}")


if __name__ == "__main__":
    main()
