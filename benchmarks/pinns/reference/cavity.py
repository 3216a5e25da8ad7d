"""Lid-driven cavity reference: steady stream function–vorticity finite differences, solved by Newton.

On the unit square with ψ = 0 on the walls, u = ψ_y, v = −ψ_x and ω = −∇²ψ, the steady equations

    ∇²ψ + ω = 0,        ψ_y ω_x − ψ_x ω_y − ∇²ω / Re = 0

are discretised with second-order central differences on a uniform (n+1)² grid; the wall vorticity
comes from Thom's formula (ω_wall = −2ψ_1/h² − 2U/h, U the wall's tangential speed), substituted into
the interior stencils so that the unknowns are ψ and ω at the interior nodes only. The coupled system is
solved by Newton's method with the exact sparse Jacobian, continued in Re from Stokes flow for large Re.

Checked at Re = 100 against the centreline table of Ghia, Ghia & Shin (1982) in ``ghia.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sps
from scipy.sparse.linalg import spsolve

__all__ = ["CavitySolution", "smoothed_lid", "solve_cavity", "uniform_lid"]


@dataclass(frozen=True)
class CavitySolution:
    """Fields on the nodes x_i = i/n, y_j = j/n; every array is indexed ``[i, j]`` (x first)."""

    x: np.ndarray
    y: np.ndarray
    psi: np.ndarray
    omega: np.ndarray
    u: np.ndarray
    v: np.ndarray
    reynolds: float
    newton_iterations: int

    def centreline_u(self, y: np.ndarray) -> np.ndarray:
        """u(0.5, y) by cubic interpolation along the vertical centreline (``n`` must be even)."""
        from scipy.interpolate import CubicSpline

        n = self.x.size - 1
        if n % 2:
            raise ValueError("centreline values need an even number of cells")
        return CubicSpline(self.y, self.u[n // 2, :])(y)

    def centreline_v(self, x: np.ndarray) -> np.ndarray:
        """v(x, 0.5) by cubic interpolation along the horizontal centreline."""
        from scipy.interpolate import CubicSpline

        n = self.y.size - 1
        return CubicSpline(self.x, self.v[:, n // 2])(x)


def uniform_lid(x: np.ndarray) -> np.ndarray:
    """U(x) = 1: the classical (singular-corner) lid of Ghia et al."""
    return np.ones_like(x)


def smoothed_lid(x: np.ndarray, sharpness: float = 50.0) -> np.ndarray:
    """U(x) = 1 − cosh(C(x − ½)) / cosh(C/2): a lid speed that vanishes at the corners (Appendix B.4).

    The paper smooths the lid's edges to remove the corner singularity without saying how; this is the
    usual choice in the PINN literature (C = 50: U > 0.99 on 0.1 < x < 0.9).
    """
    return 1.0 - np.cosh(sharpness * (x - 0.5)) / np.cosh(0.5 * sharpness)


def _operators(n: int):
    h = 1.0 / n
    m = n - 1
    eye_full = sps.identity(n + 1, format="csr")
    restrict = eye_full[1:n, :]  # interior rows of the full grid
    d1 = sps.diags([-1.0, 1.0], [0, 2], shape=(m, n + 1)) / (2 * h)
    d2 = sps.diags([1.0, -2.0, 1.0], [0, 1, 2], shape=(m, n + 1)) / h**2
    dx = sps.kron(d1, restrict, format="csr")  # full-grid vector → interior ∂/∂x (index i*(n+1)+j)
    dy = sps.kron(restrict, d1, format="csr")
    lap = (sps.kron(d2, restrict) + sps.kron(restrict, d2)).tocsr()
    embed = sps.kron(restrict.T, restrict.T, format="csr")  # interior → full grid, zero on the walls
    return h, m, dx, dy, lap, embed


def _thom(n: int, h: float, lid_speed: np.ndarray):
    """Wall vorticity as a linear map of interior ψ plus a constant (the moving lid)."""
    m = n - 1
    full = lambda i, j: i * (n + 1) + j  # noqa: E731
    inner = lambda i, j: (i - 1) * m + (j - 1)  # noqa: E731
    rows, cols = [], []
    const = np.zeros((n + 1) ** 2)
    for k in range(1, n):
        for wall, nbr in (((k, 0), (k, 1)), ((k, n), (k, n - 1)), ((0, k), (1, k)), ((n, k), (n - 1, k))):
            rows.append(full(*wall))
            cols.append(inner(*nbr))
        const[full(k, n)] = -2.0 * lid_speed[k] / h
    thom = sps.csr_matrix((np.full(len(rows), -2.0 / h**2), (rows, cols)), shape=((n + 1) ** 2, m * m))
    return thom, const


def solve_cavity(
    n: int = 128,
    reynolds: float = 100.0,
    *,
    lid: Callable[[np.ndarray], np.ndarray] = uniform_lid,
    continuation: tuple[float, ...] | None = None,
    tol: float = 1e-10,
    max_newton: int = 30,
) -> CavitySolution:
    """Steady lid-driven cavity flow on the unit square (lid y = 1 moving with speed ``lid(x)``).

    Parameters
    ----------
    n : int
        Cells per side (grid spacing 1/n).
    reynolds : float
        Re = U L / ν.
    lid : callable
        Lid speed U(x); ``uniform_lid`` (Ghia et al.) or ``smoothed_lid`` (the PINN benchmark).
    continuation : tuple of float, optional
        Reynolds numbers solved first, each solution seeding the next (default: steps of 250 up to Re).
    tol : float
        Newton stops when the max-norm of the update is below ``tol``.
    max_newton : int
        Newton iterations per Reynolds number.

    Returns
    -------
    CavitySolution
    """
    h, m, dx, dy, lap, embed = _operators(n)
    x = np.linspace(0.0, 1.0, n + 1)
    lid_speed = lid(x)
    thom, const = _thom(n, h, lid_speed)
    wall_to_full = thom  # ω_full = embed ω + thom ψ + const
    eye = sps.identity(m * m, format="csr")
    lap_e, dx_e, dy_e = lap @ embed, dx @ embed, dy @ embed
    lap_t, dx_t, dy_t = lap @ wall_to_full, dx @ wall_to_full, dy @ wall_to_full
    lap_c, dx_c, dy_c = lap @ const, dx @ const, dy @ const

    if continuation is None:
        continuation = tuple(np.arange(250.0, reynolds, 250.0))
    psi = np.zeros(m * m)
    omega = np.zeros(m * m)
    total_iterations = 0
    for re in (*continuation, reynolds):
        for _ in range(max_newton):
            psi_x, psi_y = dx_e @ psi, dy_e @ psi
            om_x = dx_e @ omega + dx_t @ psi + dx_c
            om_y = dy_e @ omega + dy_t @ psi + dy_c
            lap_om = lap_e @ omega + lap_t @ psi + lap_c
            r1 = lap_e @ psi + omega
            r2 = psi_y * om_x - psi_x * om_y - lap_om / re
            j11, j12 = lap_e, eye
            j21 = sps.diags(om_x) @ dy_e + sps.diags(psi_y) @ dx_t - sps.diags(om_y) @ dx_e - sps.diags(psi_x) @ dy_t - lap_t / re
            j22 = sps.diags(psi_y) @ dx_e - sps.diags(psi_x) @ dy_e - lap_e / re
            jac = sps.bmat([[j11, j12], [j21, j22]], format="csc")
            delta = spsolve(jac, -np.concatenate([r1, r2]))
            psi += delta[: m * m]
            omega += delta[m * m :]
            total_iterations += 1
            if np.max(np.abs(delta)) < tol * max(1.0, np.max(np.abs(omega))):
                break
        else:
            raise RuntimeError(f"Newton did not converge at Re={re} on n={n}; add continuation steps")

    psi_full = (embed @ psi).reshape(n + 1, n + 1)
    omega_full = (embed @ omega + thom @ psi + const).reshape(n + 1, n + 1)
    u = np.zeros((n + 1, n + 1))
    v = np.zeros((n + 1, n + 1))
    u[1:n, 1:n] = (dy_e @ psi).reshape(m, m)
    v[1:n, 1:n] = -(dx_e @ psi).reshape(m, m)
    u[:, n] = lid_speed
    return CavitySolution(x, x.copy(), psi_full, omega_full, u, v, float(reynolds), total_iterations)
