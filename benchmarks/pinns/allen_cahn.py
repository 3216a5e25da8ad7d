"""Allen–Cahn benchmark (Appendix B.1): u_t − 1e-4 u_xx + 5u³ − 5u = 0 on x ∈ [−1, 1], t ∈ [0, 1].

Initial condition u(x, 0) = x² cos(πx), periodic in x. The loss is the initial-condition term, the
periodic boundary term u(−1, t) = u(1, t), and the PDE residual. The paper names a periodic boundary
loss (its code fits the initial condition only); we do not ask for u_x(−1, t) = u_x(1, t) as well because
the initial condition itself breaks it (u₀'(±1) = ∓2): with that term the network never fitted the
initial condition in our runs (docs/reproduction.md). Reference: Fourier pseudo-spectral + ETDRK4
(``reference.allen_cahn``) on 512 × 201 points, the grid of the authors' ``AC.mat``.
"""

from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from benchmarks.pinns.reference.allen_cahn import paper_initial_condition, solve_allen_cahn
from benchmarks.pinns.trainer import PINNProblem, gradient

__all__ = ["AllenCahn", "PaperBatches", "TanhMLP", "reference_solution"]


@lru_cache(maxsize=2)
def reference_solution(n_x: int = 512, n_t: int = 201):
    """The ETDRK4 solution on the periodic grid x_j = −1 + 2j/n_x × ``n_t`` times in [0, 1]."""
    return solve_allen_cahn(n_x, np.linspace(0.0, 1.0, n_t))


class AllenCahn(PINNProblem):
    """Inputs ``(x, t)``; output u."""

    name = "allen_cahn"
    lower = (-1.0, 0.0)
    upper = (1.0, 1.0)
    stacked_residual = True

    def __init__(self, eps: float = 1e-4, reaction: float = 5.0):
        self.eps, self.reaction = eps, reaction

    def residual(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        u = model(x)[..., :1]  # "...": x may be (n, 2) or the vectorised engine's stacked (k, n, 2)
        du = gradient(u, x)
        u_x, u_t = du[..., :1], du[..., 1:2]
        u_xx = gradient(u_x, x)[..., :1]
        return u_t - self.eps * u_xx + self.reaction * (u**3 - u)

    def boundary_data(self, n_boundary: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        x0 = np.linspace(-1.0, 1.0, n_boundary)
        t_b = np.sort(rng.uniform(0.0, 1.0, n_boundary))
        return {
            "initial": np.stack([x0, np.zeros_like(x0)], axis=1),
            "initial_u": paper_initial_condition(x0),
            "left": np.stack([-np.ones_like(t_b), t_b], axis=1),
            "right": np.stack([np.ones_like(t_b), t_b], axis=1),
        }

    def boundary_loss(self, model: nn.Module, data: dict[str, torch.Tensor]) -> torch.Tensor:
        loss_ic = (model(data["initial"])[:, 0] - data["initial_u"]).pow(2).mean()
        loss_periodic = (model(data["left"])[:, 0] - model(data["right"])[:, 0]).pow(2).mean()
        return loss_ic + loss_periodic

    def test_set(self, size: str) -> tuple[np.ndarray, np.ndarray]:
        ref = reference_solution()
        stride = 1 if size == "paper" else 4  # small: 128 × 51 points
        x, t, u = ref.x[::stride], ref.t[::stride], ref.u[::stride, ::stride]
        xx, tt = np.meshgrid(x, t)  # (n_t, n_x), like u
        return np.stack([xx.ravel(), tt.ravel()], axis=1), u.ravel()

    def describe(self) -> dict:
        return {"pde": self.name, "eps": self.eps, "reaction": self.reaction}


class PaperBatches:
    """The paper's recording set-up of this problem (Appendix B.1): K fixed collocation batches whose
    residual losses are the batch losses, and an initial-condition loss shared by every batch.

    The recorder benchmarks use it at the paper's size (K = 100 batches of 256, 512 initial points); the
    recorder's tests at a tiny one. Points are ``(x, t)``, like :class:`AllenCahn`, whose residual it uses.
    """

    def __init__(self, n_batches: int = 100, batch_size: int = 256, n_ic: int = 512, seed: int = 0, device="cpu"):
        g = torch.Generator().manual_seed(seed)
        n = n_batches * batch_size
        t = torch.rand(n, 1, generator=g)
        x = torch.rand(n, 1, generator=g) * 2 - 1
        self.n_batches, self.batch_size = n_batches, batch_size
        self.pde = AllenCahn()
        self.points = torch.cat([x, t], dim=1).to(device)
        x0 = torch.linspace(-1, 1, n_ic).unsqueeze(1)
        self.ic_points = torch.cat([x0, torch.zeros_like(x0)], dim=1).to(device)
        self.ic_values = (x0**2 * torch.cos(torch.pi * x0)).squeeze(1).to(device)

    def to(self, device) -> PaperBatches:
        for name in ("points", "ic_points", "ic_values"):
            setattr(self, name, getattr(self, name).to(device))
        return self

    def batch(self, b: int) -> torch.Tensor:
        return self.points[b * self.batch_size : (b + 1) * self.batch_size]

    @property
    def batches(self) -> torch.Tensor:
        """The K batches stacked, (K, batch_size, 2): batch b is ``batch(b)``."""
        return self.points.view(self.n_batches, self.batch_size, -1)

    def residual_at(self, model: nn.Module, points: torch.Tensor) -> torch.Tensor:
        """The residual at (n, 2) points, or at the vectorised engine's stacked (k, n, 2) points."""
        return self.pde.residual(model, points.clone().requires_grad_(True))[..., 0]

    def ic_loss(self, model: nn.Module) -> torch.Tensor:
        return ((model(self.ic_points).squeeze(-1) - self.ic_values) ** 2).mean()

    def residual_loss(self, model: nn.Module, b: int) -> torch.Tensor:
        return (self.residual_at(model, self.batch(b)) ** 2).mean()

    def batch_loss(self, model: nn.Module, b: int) -> torch.Tensor:
        """The paper's batch loss: the batch's residual loss plus the whole initial-condition loss."""
        return self.residual_loss(model, b) + self.ic_loss(model)

    def residual_losses(self, model, batches: slice) -> torch.Tensor:
        """``residual_loss`` of the batches in the slice ``batches`` at once (the recorder's ``batch_losses``:
        ``model`` is then its stacked model, (k, n, 2) points to (k, n, 1), copy b of the weights on batch b)."""
        return (self.residual_at(model, self.batches[batches]) ** 2).mean(dim=-1)

    def batch_losses(self, model, batches: slice) -> torch.Tensor:
        """``batch_loss`` of the batches in ``batches`` at once: every copy also sees the initial points."""
        k = len(range(self.n_batches)[batches])
        ic = model(self.ic_points.expand(k, *self.ic_points.shape)).squeeze(-1)
        return self.residual_losses(model, batches) + ((ic - self.ic_values) ** 2).mean(dim=-1)

    def full_loss(self, model: nn.Module) -> torch.Tensor:
        return (self.residual_at(model, self.points) ** 2).mean() + self.ic_loss(model)

    def residuals(self, model: nn.Module) -> torch.Tensor:
        return self.residual_at(model, self.points).detach()

    def train_step(self, model: nn.Module, optimizer) -> torch.Tensor:
        """One plain optimizer step on the full loss (no recorder); returns the loss."""
        optimizer.zero_grad()
        loss = self.full_loss(model)
        loss.backward()
        optimizer.step()
        return loss


class TanhMLP(nn.Module):
    """The paper's network shape as the recorder benchmarks and tests use it: ``nn.Linear`` layers with
    ``torch.tanh`` applied inside ``forward`` (not an ``nn.Module``), optionally dropout after each."""

    def __init__(self, widths=(2, 128, 128, 128, 128, 128, 128, 1), dropout: float = 0.0):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(widths))
        self.dropout = nn.Dropout(dropout) if dropout else None

    def forward(self, x):
        for layer in self.layers[:-1]:
            x = torch.tanh(layer(x))
            if self.dropout is not None:
                x = self.dropout(x)
        return self.layers[-1](x)
