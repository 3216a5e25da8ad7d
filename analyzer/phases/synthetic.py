"""Synthetic training runs with known phases: an SNR curve and its test error, shaped as the paper describes.

``training_curves(kind, seed) -> (snr, test_error, truth)``, in the manner of ``ruptures.pw_constant``.
The shapes follow the paper's Sec. 2-3 (Figs. 2, 6-9), in log10 value against log10 step:

- fitting: a high plateau (SNR 10^0.5-10^5), then a steep descent (-1.5 to -4 decades per decade) that
  ends at the diffusion floor; the test error stagnates. The boundary is where the descent enters the
  stochastic regime (SNR 1), or reaches the floor when the floor is above SNR 1.
- diffusion: the floor (SNR 10^-1.3-10^0.3, the stochastic regime; a slow drift); the test error
  falls slowly.
- total diffusion: an abrupt rise of the SNR (0.5-2 decades within 0.05 decade) to a stable level,
  then the final decline (the signal tends to zero); the test error falls steepest.

Noise: AR(1) in log10 (slow oscillations, as real SNR curves wander) plus downward dips of 1-3
decades on a share of the samples (the mean gradient nearly cancels), denser after total diffusion
as in the authors' logs.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from pinnlog.analyzer.datasets import paper_steps

__all__ = ["KINDS", "training_curves"]

#: Kinds of run: three phases; fitting then diffusion (stopped early); diffusion then total diffusion
#: (a run that starts stochastic, Helmholtz vanilla, Fig. 7); diffusion only (no boundary); three
#: phases with total diffusion below SNR 1 (Burgers, Fig. 8).
KINDS = ("three", "no_total", "no_fitting", "diffusion_only", "burgers")


def _ar1(rng: np.random.Generator, n: int, sigma: float, rho: float) -> np.ndarray:
    """Stationary AR(1) noise of standard deviation ``sigma`` and lag-1 correlation ``rho``."""
    e = rng.normal(0.0, sigma * np.sqrt(1 - rho**2), n)
    out = np.empty(n)
    out[0] = rng.normal(0.0, sigma)
    for i in range(1, n):
        out[i] = rho * out[i - 1] + e[i]
    return out


def training_curves(
    kind: str = "three", seed: int | None = None, *, noise: float | None = None, last_step: int | None = None
) -> tuple[xr.DataArray, xr.DataArray, dict[str, int]]:
    """One synthetic run: SNR over the paper's capture steps, test error every 100 steps, true boundaries.

    Parameters
    ----------
    kind : str
        One of :data:`KINDS`.
    seed : int, optional
        Seed of every random choice (levels, boundaries, noise).
    noise : float, optional
        Standard deviation (decades) of the AR(1) noise on log10 SNR; default drawn from [0.05, 0.3].
    last_step : int, optional
        Length of the run; default 300,000 (30,000 for ``no_total``, which stops before a rise).

    Returns
    -------
    snr : xarray.DataArray
        Over ``step`` (every 2 steps to 300, then every 100), named ``snr``.
    test_error : xarray.DataArray
        Relative L2 test error (Eq. 7) over ``step`` (every 100 steps), named ``test_error``.
    truth : dict
        ``{"diffusion": step, "total diffusion": step}``: the first step of each phase after the first
        that the run has.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
    rng = np.random.default_rng(seed)
    last = last_step or (30_000 if kind == "no_total" else 300_000)
    steps = paper_steps(last)
    x = np.log10(steps)
    sigma = float(rng.uniform(0.05, 0.3) if noise is None else noise)

    has_fitting = kind not in ("no_fitting", "diffusion_only")
    has_total = kind not in ("no_total", "diffusion_only")
    if kind == "burgers":
        floor = rng.uniform(-2.0, -1.2)
    elif has_fitting:
        floor = rng.uniform(-1.3, 0.3)  # cavity's floor is near SNR 1 (Fig. 9)
    else:
        floor = rng.uniform(-1.3, -0.3)  # starts in the stochastic regime (Helmholtz vanilla, Fig. 7)
    drift = rng.uniform(-0.3, 0.1)
    x1 = rng.uniform(np.log10(80), np.log10(2_000)) if has_fitting else x[0]
    x2 = rng.uniform(max(x1, 3.0) + 0.6, x[-1] - 0.8) if has_total else np.inf
    if kind == "burgers":
        rise = rng.uniform(0.6, 1.0)  # stays below SNR 1 (Fig. 8)
    else:
        rise = rng.uniform(0.7, 2.0)
    y = floor + drift * (x - x1)
    if has_fitting:
        descent = rng.uniform(1.5, 4.0)
        top = max(floor + descent * rng.uniform(0.4, 1.2), floor + 1.0, 0.5)  # SNR >> 1 (Fig. 2)
        x0 = x1 - (top - floor) / descent  # the descent starts here; a plateau before it
        y = np.where(x < x1, floor + descent * (x1 - np.maximum(x, x0)), y)
    if has_total:
        y_at = floor + drift * (x2 - x1) + rise
        ramp = np.clip((x - x2) / 0.05, 0.0, 1.0)
        decline = rng.uniform(-0.6, -0.1)
        x3 = min(x2 + rng.uniform(0.4, 0.8), x[-1])
        total = y_at + decline * np.maximum(x - x3, 0.0)
        y = np.where(x >= x2, (1 - ramp) * (floor + drift * (x - x1)) + ramp * total, y)
    y = y + _ar1(rng, x.size, sigma, rho=0.8)
    dip_share = np.where(x >= x2, 0.15, 0.03)
    dips = rng.random(x.size) < dip_share
    y = np.where(dips, y - rng.uniform(1.0, 3.0, x.size), y)

    truth: dict[str, int] = {}
    if has_fitting:
        # diffusion begins where the descent enters the stochastic regime (SNR < 1, Fig. 2), or reaches
        # the floor if that lies above SNR 1 (cavity): as the authors mark Allen-Cahn (Fig. 6)
        x_enter = x1 - max(0.0 - floor, 0.0) / descent
        truth["diffusion"] = int(steps[np.searchsorted(x, x_enter)])
    if has_total:
        truth["total diffusion"] = int(steps[np.searchsorted(x, x2)])

    # test error: stagnant while fitting, slow in diffusion, steepest in total diffusion, then a floor
    t_steps = np.arange(100, last + 1, 100)
    tx = np.log10(t_steps)
    te = np.where(tx < x1, 0.0, -rng.uniform(0.02, 0.15) * (tx - x1))
    if has_total:
        steep = rng.uniform(1.0, 2.5)
        te = te - steep * np.clip(tx - x2, 0.0, 0.6)
    te = np.log10(rng.uniform(0.5, 1.0)) + te + rng.normal(0.0, 0.02, tx.size)
    snr = xr.DataArray(10.0**y, dims="step", coords={"step": steps}, name="snr")
    test_error = xr.DataArray(10.0**te, dims="step", coords={"step": t_steps}, name="test_error")
    return snr, test_error, truth
