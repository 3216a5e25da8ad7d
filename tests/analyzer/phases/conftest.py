"""Curves with known change points for the phase-detection tests.

``piecewise_snr(n_segments, noise, seed) -> (DataArray, boundaries)`` is
:func:`pinnlog.analyzer.datasets.piecewise_snr` (piecewise linear in log10 value vs log10 step, the
paper's non-uniform sampling: every 2 steps up to 300, then every 100 up to 300,000);
``decades_off(found, truth)`` measures how far detected boundaries are from the true ones.
"""

from __future__ import annotations

import numpy as np
import pytest

from pinnlog.analyzer.datasets import piecewise_snr as _piecewise_snr


@pytest.fixture(scope="session")
def piecewise_snr():
    return _piecewise_snr


def _decades_off(found, truth) -> float:
    """Largest distance in decades between matched boundaries (inf when the counts differ)."""
    if len(found) != len(truth):
        return float("inf")
    return max((abs(np.log10(f / t)) for f, t in zip(found, truth)), default=0.0)


@pytest.fixture(scope="session")
def decades_off():
    """``decades_off(found, truth) -> float``: largest distance in decades between matched boundaries."""
    return _decades_off
