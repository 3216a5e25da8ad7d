"""Synthetic curves and layouts with known truth, for tests, benchmarks and trying the phase detector.

In the manner of ``ruptures.pw_constant``: a generator returns the signal and its ground truth.
"""

from __future__ import annotations

import itertools

import numpy as np
import xarray as xr

__all__ = ["mlp_layout", "paper_steps", "piecewise_snr"]


def mlp_layout(widths) -> tuple[list[dict], list[dict]]:
    """The ``layout`` and ``layers`` root attributes (docs/format.md) of an MLP ``net`` of ``nn.Linear`` with these widths."""
    layout, layers, offset = [], [], 0
    for index, (n_in, n_out) in enumerate(itertools.pairwise(widths)):
        for kind, shape in (("weight", [n_out, n_in]), ("bias", [n_out])):
            numel = int(np.prod(shape))
            layout.append(
                {
                    "name": f"net.{index}.{kind}",
                    "module": f"net.{index}",
                    "shape": shape,
                    "numel": numel,
                    "offset": offset,
                    "layer": index,
                    "is_bias": kind == "bias",
                }
            )
            offset += numel
        layers.append({"index": index, "name": f"layer_{index}", "module": f"net.{index}", "width": int(n_out)})
    return layout, layers


def paper_steps(last: int = 300_000) -> np.ndarray:
    """The paper's capture schedule: every 2 iterations up to 300, then every 100 up to ``last``."""
    return np.concatenate([np.arange(2, 301, 2), np.arange(400, last + 1, 100)]).astype(np.int64)


def piecewise_snr(
    n_segments: int = 3,
    noise: float = 0.1,
    seed: int | None = None,
    *,
    steps: np.ndarray | None = None,
    jump: tuple[float, float] = (1.0, 2.0),
    max_slope: float = 0.5,
    min_gap: float = 0.6,
    kinks: bool = False,
) -> tuple[xr.DataArray, list[int]]:
    """A positive curve that is piecewise linear in log10 value vs log10 step, with noise.

    Parameters
    ----------
    n_segments : int
        Number of segments (phases), 1 or more.
    noise : float
        Standard deviation of the Gaussian noise added to log10 of the value (decades).
    seed : int, optional
        Seed of the random generator.
    steps : array of int, optional
        Sampled steps; default :func:`paper_steps` (non-uniform, as the paper's logs).
    jump : (float, float)
        Range of the absolute jump of log10 value at each change point (decades); the sign is random.
    max_slope : float
        Slopes of the segments are drawn from ``[-max_slope, max_slope]`` (decades per decade).
    min_gap : float
        Smallest distance between change points, and from a change point to the ends (decades).
    kinks : bool
        If true, change points are continuous: the value does not jump but the slope changes by
        ``jump`` per decade (a kink in log-log), as at the end of the paper's fitting descent.

    Returns
    -------
    signal : xarray.DataArray
        Values over ``step``, named ``snr``.
    boundaries : list of int
        The first step of every segment after the first (``n_segments - 1`` steps).
    """
    if n_segments < 1:
        raise ValueError(f"n_segments must be >= 1, got {n_segments}")
    rng = np.random.default_rng(seed)
    steps = paper_steps() if steps is None else np.asarray(steps, dtype=np.int64)
    x = np.log10(steps)
    lo, hi = x[0] + max(min_gap, 1.0), x[-1] - min_gap
    n_bkps = n_segments - 1
    room = hi - lo - (n_bkps - 1) * min_gap if n_bkps else 0.0
    if room < 0:
        raise ValueError(f"{n_segments} segments at least {min_gap} decades apart do not fit in these steps")
    cuts = np.sort(rng.uniform(0.0, room, n_bkps)) + lo + np.arange(n_bkps) * min_gap
    slopes = rng.uniform(-max_slope, max_slope, n_segments)
    y = np.empty_like(x)
    start, level = x[0], rng.uniform(-1.0, 1.0)
    edges = list(cuts) + [np.inf]
    for i, edge in enumerate(edges):
        mask = (x >= start) & (x < edge)
        y[mask] = level + slopes[i] * (x[mask] - start)
        if i < n_bkps:
            end_value = level + slopes[i] * (edge - start)
            sign = rng.choice([-1.0, 1.0])
            if kinks:
                slopes[i + 1] = slopes[i] + sign * rng.uniform(*jump)
                level = end_value
            else:
                level = end_value + sign * rng.uniform(*jump)
            start = edge
    y = y + rng.normal(0.0, noise, x.size)
    boundaries = [int(steps[np.searchsorted(x, c)]) for c in cuts]
    signal = xr.DataArray(10.0**y, dims="step", coords={"step": steps}, name="snr")
    return signal, boundaries
