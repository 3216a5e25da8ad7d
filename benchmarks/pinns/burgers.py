"""Burgers benchmark (Appendix B.3): u_t + u u_x − ν u_xx = 0, ν = 1/(100π), on x ∈ [−1, 1], t ∈ [0, 1].

u(x, 0) = −sin(πx), u(±1, t) = 0. (Eq. B.6 prints the viscous term with the wrong sign; the
benchmark and its reference are the standard dissipative equation.) The loss is the initial and boundary
terms plus the PDE residual. Reference: Cole–Hopf by Gauss–Hermite quadrature on 256 × 101 points.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from benchmarks.pinns.reference.burgers import PAPER_NU, cole_hopf
from benchmarks.pinns.trainer import PINNProblem, gradient

__all__ = ["Burgers"]


class Burgers(PINNProblem):
    """Inputs ``(x, t)``; output u."""

    name = "burgers"
    stacked_residual = True
    lower = (-1.0, 0.0)
    upper = (1.0, 1.0)

    def __init__(self, nu: float = PAPER_NU):
        self.nu = nu

    def residual(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        u = model(x)[..., :1]  # "...": x may be (n, 2) or the vectorised engine's stacked (k, n, 2)
        du = gradient(u, x)
        u_x, u_t = du[..., :1], du[..., 1:2]
        u_xx = gradient(u_x, x)[..., :1]
        return u_t + u * u_x - self.nu * u_xx

    def boundary_data(self, n_boundary: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        x0 = np.linspace(-1.0, 1.0, n_boundary)
        t_b = np.sort(rng.uniform(0.0, 1.0, n_boundary))
        walls = np.concatenate([np.stack([-np.ones_like(t_b), t_b], 1), np.stack([np.ones_like(t_b), t_b], 1)])
        return {
            "initial": np.stack([x0, np.zeros_like(x0)], axis=1),
            "initial_u": -np.sin(np.pi * x0),
            "walls": walls,
        }

    def boundary_loss(self, model: nn.Module, data: dict[str, torch.Tensor]) -> torch.Tensor:
        loss_ic = (model(data["initial"])[:, 0] - data["initial_u"]).pow(2).mean()
        return loss_ic + model(data["walls"])[:, 0].pow(2).mean()

    def test_set(self, size: str) -> tuple[np.ndarray, np.ndarray]:
        nx, nt = (256, 101) if size == "paper" else (128, 51)
        xx, tt = np.meshgrid(np.linspace(-1.0, 1.0, nx), np.linspace(0.0, 1.0, nt), indexing="ij")
        return np.stack([xx.ravel(), tt.ravel()], axis=1), cole_hopf(xx, tt, self.nu).ravel()

    def describe(self) -> dict:
        return {"pde": self.name, "nu": self.nu}
