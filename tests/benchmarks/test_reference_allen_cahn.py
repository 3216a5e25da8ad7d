"""The Allen–Cahn ETDRK4 solver against closed forms and its own convergence order."""

import numpy as np
import pytest

from benchmarks.pinns.reference.allen_cahn import etdrk4_coefficients, solve_allen_cahn


def test_linear_heat_modes_are_integrated_exactly():
    # ρ = 0 leaves u_t = ε u_xx: each Fourier mode decays as exp(−ε k² t), which ETDRK4 integrates
    # exactly whatever the step
    eps = 0.01
    init = lambda x: np.cos(3 * np.pi * x) + 0.5 * np.sin(np.pi * x) + 0.2  # noqa: E731
    t = np.array([0.0, 0.3, 1.0])
    sol = solve_allen_cahn(64, t, eps=eps, reaction=0.0, dt=0.25, initial=init)
    x = sol.x[None, :]
    tt = t[:, None]
    exact = (
        np.cos(3 * np.pi * x) * np.exp(-eps * (3 * np.pi) ** 2 * tt)
        + 0.5 * np.sin(np.pi * x) * np.exp(-eps * np.pi**2 * tt)
        + 0.2
    )
    np.testing.assert_allclose(sol.u, exact, atol=1e-13)


def _reaction_exact(u0, rho, t):
    # u' = ρ(u − u³): w = u² solves the logistic equation w' = 2ρ w (1 − w)
    return u0 * np.exp(rho * t) / np.sqrt(1 - u0**2 + u0**2 * np.exp(2 * rho * t))


def test_spatially_constant_state_follows_the_logistic_closed_form_at_fourth_order():
    t = np.array([0.0, 1.0])
    exact = _reaction_exact(0.3, 5.0, 1.0)
    errors = []
    for dt in (0.025, 0.0125, 0.00625):
        sol = solve_allen_cahn(16, t, dt=dt, initial=lambda x: np.full_like(x, 0.3))
        assert np.ptp(sol.u[-1]) < 1e-14  # stays spatially constant
        errors.append(abs(sol.u[-1, 0] - exact))
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert errors[-1] < 1e-9
    np.testing.assert_allclose(orders, 4.0, atol=0.2)


def test_paper_problem_converges_at_fourth_order_in_time():
    t = np.array([0.0, 0.5, 1.0])
    fine = solve_allen_cahn(256, t, dt=1e-3).u
    errors = [np.abs(solve_allen_cahn(256, t, dt=dt).u - fine).max() for dt in (0.02, 0.01, 0.005)]
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    np.testing.assert_allclose(orders, 4.0, atol=0.5)


def test_paper_problem_converges_spectrally_in_space():
    t = np.array([0.0, 1.0])
    fine = solve_allen_cahn(1024, t, dt=2e-3).u[-1]
    errors = {n: np.abs(solve_allen_cahn(n, t, dt=2e-3).u[-1] - fine[:: 1024 // n]).max() for n in (256, 512)}
    # the interface width √(2ε/5) ≈ 0.006 is resolved at n = 512 (h ≈ 0.004): error ≪ any PINN error
    assert errors[512] < 1e-5
    assert errors[512] < errors[256] / 100  # faster than any algebraic order


@pytest.mark.parametrize("hl", [-1e-9, -1e-3, -0.5, -40.0])
def test_contour_coefficients_match_the_closed_forms(hl):
    # Cox–Matthews closed forms, accurate here in extended precision away from cancellation
    c = etdrk4_coefficients(np.array([hl]), 1.0)
    z = np.longdouble(hl)
    if abs(hl) < 1e-6:  # Taylor limits at z → 0
        q, f1, f2, f3 = 0.5, 1 / 6, 1 / 6, 1 / 6
    else:
        q = (np.exp(z / 2) - 1) / z
        f1 = (-4 - z + np.exp(z) * (4 - 3 * z + z**2)) / z**3
        f2 = (2 + z + np.exp(z) * (-2 + z)) / z**3
        f3 = (-4 - 3 * z - z**2 + np.exp(z) * (4 - z)) / z**3
    np.testing.assert_allclose([c.q[0], c.f1[0], c.f2[0], c.f3[0]], np.array([q, f1, f2, f3], dtype=float), rtol=1e-8)
