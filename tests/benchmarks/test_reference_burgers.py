"""The Cole–Hopf / Gauss–Hermite Burgers solution against closed forms and a published value."""

import numpy as np
import pytest
from scipy.special import ive

from benchmarks.pinns.reference.burgers import PAPER_NU, cole_hopf, heat_limit

X = np.linspace(-1, 1, 101)


def test_initial_condition_is_reproduced_exactly():
    np.testing.assert_allclose(cole_hopf(X, 0.0), -np.sin(np.pi * X), atol=1e-14)


def test_boundary_values_vanish():
    t = np.linspace(0, 1, 11)
    np.testing.assert_allclose(cole_hopf(-1.0, t), 0.0, atol=1e-12)
    np.testing.assert_allclose(cole_hopf(1.0, t), 0.0, atol=1e-12)


def test_large_viscosity_approaches_the_heat_equation_at_rate_one_over_nu():
    errors = []
    for nu in (5.0, 10.0, 20.0):
        tt = 0.5 / (nu * np.pi**2)  # the same decay e^{−νπ²t} = e^{−0.5} for every ν
        err = np.abs(cole_hopf(X, tt, nu=nu) - heat_limit(X, tt, nu)).max()
        errors.append(err)
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    assert errors[-1] < 5e-3
    np.testing.assert_allclose(ratios, 2.0, rtol=0.1)  # error ∝ 1/ν


def _bessel_series(x, t, nu, n_terms=80):
    # θ_t = ν θ_xx with θ(x, 0) = exp(−a cos πx), a = 1/(2πν), has the cosine series
    # θ = I0(a) + 2 Σ (−1)^n I_n(a) e^{−νn²π²t} cos(nπx) (generating function of I_n); u = −2ν θ_x / θ
    a = 1 / (2 * np.pi * nu)
    n = np.arange(1, n_terms + 1)[:, None]
    coef = 2 * (-1.0) ** n * ive(n, a) * np.exp(-nu * (n * np.pi) ** 2 * t)
    theta = ive(0, a) + np.sum(coef * np.cos(n * np.pi * x), axis=0)
    theta_x = -np.sum(coef * n * np.pi * np.sin(n * np.pi * x), axis=0)
    return -2 * nu * theta_x / theta


@pytest.mark.parametrize("nu", [0.05, 0.1])
@pytest.mark.parametrize("t", [0.05, 0.3, 1.0])
def test_matches_the_independent_fourier_bessel_series(nu, t):
    np.testing.assert_allclose(cole_hopf(X, t, nu=nu), _bessel_series(X, t, nu), atol=1e-11)


def test_quadrature_has_converged_at_the_paper_viscosity():
    x = np.linspace(-1, 1, 256)[:, None]
    t = np.linspace(0, 1, 26)[None, :]
    np.testing.assert_allclose(cole_hopf(x, t, n_nodes=200), cole_hopf(x, t, n_nodes=800), atol=1e-12)


def test_steepest_gradient_matches_basdevant_et_al():
    # Basdevant et al. (1986): max |∂u/∂x| = 152.00516, reached at x = 0, t = 1.6037/π
    t = np.linspace(1.6017, 1.6057, 21) / np.pi
    d = 1e-6
    slope = np.abs(cole_hopf(d, t) - cole_hopf(-d, t)) / (2 * d)
    assert slope.max() == pytest.approx(152.00516, abs=2e-4)
    assert t[slope.argmax()] * np.pi == pytest.approx(1.6037, abs=2e-4)
    assert pytest.approx(0.01 / np.pi) == PAPER_NU
