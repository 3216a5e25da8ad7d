"""Helmholtz benchmark (Appendix B.2): u_xx + u_yy + k²u − q = 0 on [−1, 1]², u = 0 on the edges.

Manufactured solution u = sin(a₁πx) sin(a₂πy) with a₁ = a₂ = 6, k = 1, so
q = (k² − (a₁π)² − (a₂π)²) sin(a₁πx) sin(a₂πy) (Eq. B.4 writes the last term as k·sin sin; with k = 1 the
two agree).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from benchmarks.pinns.trainer import PINNProblem, gradient

__all__ = ["Helmholtz", "exact_solution"]


def exact_solution(x: np.ndarray, y: np.ndarray, a1: float = 6.0, a2: float = 6.0) -> np.ndarray:
    """u(x, y) = sin(a₁πx) sin(a₂πy)."""
    return np.sin(a1 * np.pi * x) * np.sin(a2 * np.pi * y)


class Helmholtz(PINNProblem):
    """Inputs ``(x, y)``; output u."""

    name = "helmholtz"
    stacked_residual = True
    lower = (-1.0, -1.0)
    upper = (1.0, 1.0)

    def __init__(self, a1: float = 6.0, a2: float = 6.0, k: float = 1.0):
        self.a1, self.a2, self.k = a1, a2, k

    def forcing(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """q(x, y) of Eq. B.4."""
        a1, a2, k = self.a1 * np.pi, self.a2 * np.pi, self.k
        return (k**2 - a1**2 - a2**2) * torch.sin(a1 * x) * torch.sin(a2 * y)

    def residual(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        u = model(x)[..., :1]  # "...": x may be (n, 2) or the vectorised engine's stacked (k, n, 2)
        du = gradient(u, x)
        u_xx = gradient(du[..., :1], x)[..., :1]
        u_yy = gradient(du[..., 1:2], x)[..., 1:2]
        return u_xx + u_yy + self.k**2 * u - self.forcing(x[..., :1], x[..., 1:2])

    def boundary_data(self, n_boundary: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        s = rng.uniform(-1.0, 1.0, (4, n_boundary))  # n_boundary points on each side
        one = np.ones(n_boundary)
        sides = [np.stack(p, axis=1) for p in ((-one, s[0]), (one, s[1]), (s[2], -one), (s[3], one))]
        return {"boundary": np.concatenate(sides)}

    def boundary_loss(self, model: nn.Module, data: dict[str, torch.Tensor]) -> torch.Tensor:
        return model(data["boundary"])[:, 0].pow(2).mean()

    def test_set(self, size: str) -> tuple[np.ndarray, np.ndarray]:
        n = 256 if size == "paper" else 101
        g = np.linspace(-1.0, 1.0, n)
        xx, yy = np.meshgrid(g, g, indexing="ij")
        return np.stack([xx.ravel(), yy.ravel()], axis=1), exact_solution(xx, yy, self.a1, self.a2).ravel()

    def describe(self) -> dict:
        return {"pde": self.name, "a1": self.a1, "a2": self.a2, "k": self.k}
