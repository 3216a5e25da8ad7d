"""The finite-difference cavity solver against Ghia, Ghia & Shin (1982) and its convergence order."""

import numpy as np
import pytest

from benchmarks.pinns.reference.cavity import smoothed_lid, solve_cavity
from benchmarks.pinns.reference.ghia import GHIA_U, GHIA_Y


@pytest.fixture(scope="module")
def re100():
    return {n: solve_cavity(n, 100.0) for n in (16, 32, 64, 128)}


def test_centreline_u_matches_ghia_at_re100(re100):
    # Ghia's tabulated values carry their own discretisation error of a few 1e-3 (second order on 129²)
    u = re100[128].centreline_u(GHIA_Y)
    np.testing.assert_allclose(u, GHIA_U[100], atol=5e-3)
    assert np.abs(u - GHIA_U[100]).mean() < 2e-3


def test_primary_vortex_matches_ghia_at_re100(re100):
    # Ghia et al. Table III, Re = 100: ψ_min = −0.103423 at (0.6172, 0.7344)
    s = re100[128]
    i, j = np.unravel_index(np.argmin(s.psi), s.psi.shape)
    assert s.psi.min() == pytest.approx(-0.103423, rel=2e-3)
    assert (s.x[i], s.y[j]) == pytest.approx((0.6172, 0.7344), abs=1.5 / 128)


def test_second_order_convergence(re100):
    # differences between successive grids at the common nodes y = k/16 shrink 4× per halving of h
    line = {n: s.u[n // 2, :: n // 16] for n, s in re100.items()}
    diffs = [np.abs(line[n] - line[2 * n]).max() for n in (16, 32, 64)]
    orders = np.log2(np.array(diffs[:-1]) / np.array(diffs[1:]))
    np.testing.assert_allclose(orders, 2.0, atol=0.35)


def test_discrete_equations_hold(re100):
    # independent check of the solver's output: continuity of the recovered velocities and the
    # stream-function Poisson equation, both in central differences at interior nodes
    s = re100[64]
    h = 1 / 64
    div = (s.u[2:, 1:-1] - s.u[:-2, 1:-1] + s.v[1:-1, 2:] - s.v[1:-1, :-2]) / (2 * h)
    assert np.abs(div).max() < 1e-8
    lap = (s.psi[2:, 1:-1] + s.psi[:-2, 1:-1] + s.psi[1:-1, 2:] + s.psi[1:-1, :-2] - 4 * s.psi[1:-1, 1:-1]) / h**2
    np.testing.assert_allclose(-lap, s.omega[1:-1, 1:-1], atol=1e-8)


def test_smoothed_lid_vanishes_at_the_corners_and_is_one_in_the_middle():
    x = np.array([0.0, 0.1, 0.5, 0.9, 1.0])
    lid = smoothed_lid(x)
    np.testing.assert_allclose(lid[[0, -1]], 0.0, atol=1e-15)
    assert lid[2] == pytest.approx(1.0 - 1 / np.cosh(25.0))
    assert np.all(lid[[1, 3]] > 0.99)


def test_pinn_reference_is_cached_on_disk_and_equals_a_fresh_solve(tmp_path, monkeypatch):
    from benchmarks.pinns.cavity import reference_solution

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = reference_solution(150.0, 32)
    assert (tmp_path / "pinnlog-benchmarks" / "cavity_re150_n32_smoothed.npz").is_file()
    again = reference_solution(150.0, 32)
    fresh = solve_cavity(32, 150.0, lid=smoothed_lid)
    for key in ("x", "y", "u", "v"):
        np.testing.assert_array_equal(again[key], first[key])
        np.testing.assert_array_equal(first[key], getattr(fresh, key))
