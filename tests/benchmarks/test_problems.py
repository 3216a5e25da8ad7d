"""PDE residuals and boundary losses of the four benchmarks against hand-derived closed forms.

Each problem's residual is evaluated on an analytic torch function (float64) and compared with the
derivatives written out by hand here, so a wrong sign, coefficient or derivative index fails.
"""

import numpy as np
import pytest
import torch

from benchmarks.pinns.allen_cahn import AllenCahn
from benchmarks.pinns.burgers import Burgers
from benchmarks.pinns.cavity import Cavity
from benchmarks.pinns.helmholtz import Helmholtz, exact_solution
from benchmarks.pinns.reference.burgers import PAPER_NU
from benchmarks.pinns.reference.cavity import smoothed_lid

RNG = np.random.default_rng(1)


class Analytic(torch.nn.Module):
    """A model that is a fixed formula of its inputs (one column per output)."""

    def __init__(self, *formulas):
        super().__init__()
        self.formulas = formulas

    def forward(self, x):
        return torch.stack([f(x[:, 0], x[:, 1]) for f in self.formulas], dim=1)


def points(lower, upper, n=64):
    p = torch.as_tensor(RNG.uniform(lower, upper, (n, 2)))
    return p.requires_grad_(True)


def test_allen_cahn_residual_matches_hand_derivatives():
    # u = sin(2x) e^{−t} + 0.3 x² t: u_t = −sin(2x)e^{−t} + 0.3x², u_xx = −4 sin(2x)e^{−t} + 0.6 t
    model = Analytic(lambda x, t: torch.sin(2 * x) * torch.exp(-t) + 0.3 * x**2 * t)
    p = points((-1, 0), (1, 1))
    r = AllenCahn().residual(model, p)[:, 0].detach().numpy()
    x, t = p.detach().numpy().T
    u = np.sin(2 * x) * np.exp(-t) + 0.3 * x**2 * t
    u_t = -np.sin(2 * x) * np.exp(-t) + 0.3 * x**2
    u_xx = -4 * np.sin(2 * x) * np.exp(-t) + 0.6 * t
    np.testing.assert_allclose(r, u_t - 1e-4 * u_xx + 5 * u**3 - 5 * u, rtol=1e-12, atol=1e-12)


def test_allen_cahn_boundary_loss_is_initial_misfit_plus_periodic_mismatch():
    # u = x² cos(πx) + 0.1 x t fits u(x, 0) exactly and breaks periodicity by u(−1, t) − u(1, t) = −0.2 t
    problem = AllenCahn()
    raw = problem.boundary_data(50, RNG)
    data = {k: torch.as_tensor(v) for k, v in raw.items()}
    model = Analytic(lambda x, t: x**2 * torch.cos(np.pi * x) + 0.1 * x * t)
    t = raw["left"][:, 1]
    np.testing.assert_array_equal(raw["right"][:, 1], t)
    assert problem.boundary_loss(model, data).item() == pytest.approx(np.mean((0.2 * t) ** 2), rel=1e-12)
    shifted = Analytic(lambda x, t: x**2 * torch.cos(np.pi * x) + 0.5 + 0 * t)  # periodic, initial misfit 0.5
    assert problem.boundary_loss(shifted, data).item() == pytest.approx(0.25, rel=1e-12)


def test_burgers_residual_and_boundary_loss():
    # u = −sin(πx) e^{−t} meets u(x, 0) and u(±1, t) exactly: boundary loss 0
    model = Analytic(lambda x, t: -torch.sin(np.pi * x) * torch.exp(-t))
    problem = Burgers()
    p = points((-1, 0), (1, 1))
    x, t = p.detach().numpy().T
    u = -np.sin(np.pi * x) * np.exp(-t)
    u_x = -np.pi * np.cos(np.pi * x) * np.exp(-t)
    u_xx = np.pi**2 * np.sin(np.pi * x) * np.exp(-t)
    expected = -u + u * u_x - PAPER_NU * u_xx
    np.testing.assert_allclose(problem.residual(model, p)[:, 0].detach().numpy(), expected, rtol=1e-12, atol=1e-12)
    data = {k: torch.as_tensor(v) for k, v in problem.boundary_data(40, RNG).items()}
    assert problem.boundary_loss(model, data).item() < 1e-28


def test_helmholtz_exact_solution_has_zero_residual_and_boundary_loss():
    problem = Helmholtz()
    model = Analytic(lambda x, y: torch.sin(6 * np.pi * x) * torch.sin(6 * np.pi * y))
    p = points((-1, -1), (1, 1))
    r = problem.residual(model, p).detach().numpy()
    # residual scale: (a π)² ≈ 355; float64 leaves ~1e-13 of it
    assert np.abs(r).max() < 1e-9
    data = {k: torch.as_tensor(v) for k, v in problem.boundary_data(30, RNG).items()}
    assert problem.boundary_loss(model, data).item() < 1e-25


def test_helmholtz_residual_of_another_function():
    # u = x² y: Δu + u − q = 2y + x²y − q
    problem = Helmholtz()
    p = points((-1, -1), (1, 1))
    r = problem.residual(Analytic(lambda x, y: x**2 * y), p)[:, 0].detach().numpy()
    x, y = p.detach().numpy().T
    q = (1 - 2 * (6 * np.pi) ** 2) * exact_solution(x, y)
    np.testing.assert_allclose(r, 2 * y + x**2 * y - q, rtol=1e-12, atol=1e-10)


def test_cavity_residuals_match_hand_derivatives():
    # ψ = x² y³, p = x y: u = ψ_y = 3x²y², v = −ψ_x = −2xy³
    re = 400.0
    problem = Cavity(reynolds=re)
    model = Analytic(lambda x, y: x**2 * y**3, lambda x, y: x * y)
    p = points((0, 0), (1, 1))
    r = problem.residual(model, p).detach().numpy()
    x, y = p.detach().numpy().T
    u, v = 3 * x**2 * y**2, -2 * x * y**3
    u_x, u_y, v_x, v_y = 6 * x * y**2, 6 * x**2 * y, -2 * y**3, -6 * x * y**2
    lap_u, lap_v = 6 * y**2 + 6 * x**2, -12 * x * y
    e1 = u * u_x + v * u_y + y - lap_u / re
    e2 = u * v_x + v * v_y + x - lap_v / re
    np.testing.assert_allclose(r, np.stack([e1, e2], 1), rtol=1e-12, atol=1e-12)


def test_cavity_boundary_loss_of_fluid_at_rest_is_the_mean_squared_lid_speed():
    problem = Cavity()
    raw = problem.boundary_data(25, RNG)
    data = {k: torch.as_tensor(v) for k, v in raw.items()}
    at_rest = Analytic(lambda x, y: 0 * x, lambda x, y: 0 * x)
    top = raw["walls"][:, 1] == 1.0
    expected = np.sum(smoothed_lid(raw["walls"][top, 0]) ** 2) / raw["walls"].shape[0]
    assert problem.boundary_loss(at_rest, data).item() == pytest.approx(expected, rel=1e-12)
    # the velocity the test error compares is |(ψ_y, −ψ_x)|
    p = points((0, 0), (1, 1))
    speed = problem.prediction(Analytic(lambda x, y: x**2 * y**3, lambda x, y: x * y), p).detach().numpy()
    x, y = p.detach().numpy().T
    np.testing.assert_allclose(speed, np.hypot(3 * x**2 * y**2, 2 * x * y**3), rtol=1e-12)


@pytest.mark.parametrize("problem", [AllenCahn(), Helmholtz(), Burgers(), Cavity()], ids=lambda p: p.name)
def test_collocation_points_fill_the_domain_as_a_latin_hypercube(problem):
    n = 64
    pts = problem.sample_collocation(n, np.random.default_rng(0))
    lo, hi = np.array(problem.lower), np.array(problem.upper)
    assert pts.shape == (n, 2) and np.all(pts >= lo) and np.all(pts <= hi)
    # one point in each of the n equal strata of every coordinate
    strata = np.floor((pts - lo) / (hi - lo) * n).astype(int)
    for d in range(2):
        assert sorted(strata[:, d]) == list(range(n))
