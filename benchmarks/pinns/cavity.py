"""Lid-driven cavity benchmark (Appendix B.4): steady incompressible Navier–Stokes on (0, 1)².

The network outputs the stream function ψ and the pressure p; u = ψ_y, v = −ψ_x satisfy continuity
exactly (Eq. B.12-14). Residuals are the two momentum equations (Eq. B.9); with RBA one weight λ_j per
point multiplies both (Eq. B.17), updated from the point's residual norm √(e₁² + e₂²). The lid speed is
smoothed at the corners (``smoothed_lid``), the other walls are at rest. The test error compares the
velocity magnitude with our finite-difference solution (``reference.cavity``) on its grid nodes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from benchmarks.pinns.reference.cavity import smoothed_lid, solve_cavity
from benchmarks.pinns.trainer import PINNProblem, gradient

__all__ = ["Cavity", "reference_solution"]


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "pinnlog-benchmarks"


def reference_solution(reynolds: float, n: int) -> dict[str, np.ndarray]:
    """Finite-difference u, v on the (n+1)² nodes, cached on disk (Re = 1000 on 256² takes a minute)."""
    path = _cache_dir() / f"cavity_re{reynolds:g}_n{n}_smoothed.npz"
    if path.exists():
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    sol = solve_cavity(n, reynolds, lid=smoothed_lid)
    fields = {"x": sol.x, "y": sol.y, "u": sol.u, "v": sol.v}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **fields)
        tmp.replace(path)
    except OSError:
        pass  # a read-only home only costs the recomputation
    return fields


class Cavity(PINNProblem):
    """Inputs ``(x, y)``; outputs ``(ψ, p)``."""

    name = "cavity"
    output_dim = 2
    stacked_residual = True
    lower = (0.0, 0.0)
    upper = (1.0, 1.0)

    def __init__(self, reynolds: float = 1000.0):
        self.reynolds = float(reynolds)

    def velocity(self, model: nn.Module, x: torch.Tensor):
        """(u, v, p) at ``x`` (which must require grad): u = ψ_y, v = −ψ_x. ``x`` is (n, 2) or the
        vectorised engine's stacked (k, n, 2): every index is on the last axis."""
        out = model(x)
        dpsi = gradient(out[..., :1], x)
        return dpsi[..., 1:2], -dpsi[..., :1], out[..., 1:2]

    def residual(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        u, v, p = self.velocity(model, x)
        du, dv, dp = gradient(u, x), gradient(v, x), gradient(p, x)
        u_xx, u_yy = gradient(du[..., :1], x)[..., :1], gradient(du[..., 1:2], x)[..., 1:2]
        v_xx, v_yy = gradient(dv[..., :1], x)[..., :1], gradient(dv[..., 1:2], x)[..., 1:2]
        nu = 1.0 / self.reynolds
        e1 = u * du[..., :1] + v * du[..., 1:2] + dp[..., :1] - nu * (u_xx + u_yy)
        e2 = u * dv[..., :1] + v * dv[..., 1:2] + dp[..., 1:2] - nu * (v_xx + v_yy)
        return torch.cat([e1, e2], dim=-1)

    def boundary_data(self, n_boundary: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        s = rng.uniform(0.0, 1.0, (4, n_boundary))  # n_boundary points on each wall
        zero, one = np.zeros(n_boundary), np.ones(n_boundary)
        walls = [np.stack(p, 1) for p in ((zero, s[0]), (one, s[1]), (s[2], zero), (s[3], one))]
        u_wall = np.concatenate([zero, zero, zero, smoothed_lid(s[3])])
        return {"walls": np.concatenate(walls), "u": u_wall, "v": np.zeros(4 * n_boundary)}

    def boundary_loss(self, model: nn.Module, data: dict[str, torch.Tensor]) -> torch.Tensor:
        x = data["walls"].detach().requires_grad_(True)
        u, v, _ = self.velocity(model, x)
        return (u[:, 0] - data["u"]).pow(2).mean() + (v[:, 0] - data["v"]).pow(2).mean()

    def prediction(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        u, v, _ = self.velocity(model, x)
        return torch.sqrt(u**2 + v**2)[:, 0]

    def test_set(self, size: str) -> tuple[np.ndarray, np.ndarray]:
        # central differences need h ≲ 1/128 at Re = 1000 (ψ_min within 2 % of Ghia's); small: every 2nd node
        n, stride = (256, 1) if size == "paper" else (128, 2)
        ref = reference_solution(self.reynolds, n)
        x, y = ref["x"][::stride], ref["y"][::stride]
        speed = np.hypot(ref["u"], ref["v"])[::stride, ::stride]
        xx, yy = np.meshgrid(x, y, indexing="ij")
        return np.stack([xx.ravel(), yy.ravel()], axis=1), speed.ravel()

    def describe(self) -> dict:
        return {"pde": self.name, "reynolds": self.reynolds, "lid": "1 - cosh(50(x - 1/2)) / cosh(25)"}
