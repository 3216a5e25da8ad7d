"""``PhaseDetector``: change points of a positive curve in log10 value vs log10 step, with ruptures.

The samples are block-averaged onto a uniform log10-step grid (captures are denser late in
training), each cell weighted by the inverse of its estimated noise variance; ruptures segments the
grid (``Pelt`` with a BIC penalty, or ``Dynp`` for a forced count); each boundary is then refined on
the raw samples.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import ruptures as rpt
import xarray as xr

from pinnlog.analyzer.errors import PhaseDetectionError, PhaseDetectionWarning
from pinnlog.analyzer.phases.despike import hampel
from pinnlog.analyzer.phases.table import Phase

__all__ = ["PhaseDetectionError", "PhaseDetector"]

#: Costs built in: squared error of a constant ("l2") or of a line in log10 step ("linear") per segment.
DEGREES = {"l2": 1, "linear": 2}
MAD_TO_SIGMA = 1.4826  # MAD of a normal sample times this estimates its standard deviation
MEDIAN_EFFICIENCY = 1.2533  # std of a sample median = this x sigma / sqrt(n), for a normal sample
MIN_RESIDUALS = 100  # raw residuals pooled to estimate a cell's local noise
SMALL_CELL = 6  # below this many samples a cell's own spread is its standard deviation, not its MAD
MAX_PASSES = 3  # searches with cells re-cut at the boundaries found (see PhaseDetector.predict)
CHI2_1_95 = 3.841  # 95% quantile of chi-square with 1 degree of freedom: the profile-likelihood interval


def _signal_arrays(signal, steps=None) -> tuple[np.ndarray, np.ndarray, str]:
    """Steps and values of a 1-D curve over ``step``, as float arrays, plus its name."""
    if isinstance(signal, xr.DataArray):
        if signal.ndim != 1 or "step" not in signal.dims:
            raise PhaseDetectionError(
                f"expected a curve over 'step', got dims {tuple(signal.dims)}; "
                "select one curve (.sel(layer=0)) or pass dim= to get one table per curve"
            )
        values = np.asarray(signal.values, dtype=np.float64)
        steps = np.asarray(signal["step"].values if "step" in signal.coords else np.arange(values.size), dtype=np.float64)
        return steps, values, str(signal.name) if signal.name is not None else "signal"
    values = np.asarray(signal, dtype=np.float64)
    if values.ndim != 1 or steps is None or np.shape(steps) != values.shape:
        raise PhaseDetectionError("expected a DataArray over 'step', or a 1-D array with steps= of the same length")
    return np.asarray(steps, dtype=np.float64), values, "signal"


class _Grid(NamedTuple):
    """The curve block-averaged on a uniform log10-step grid."""

    starts: np.ndarray  # first raw sample of each cell
    x: np.ndarray  # median log10 step per cell
    y: np.ndarray  # median log10 value per cell
    weight: np.ndarray  # 1 / noise variance of y per cell
    raw_weight: np.ndarray  # 1 / noise variance of each raw sample


def _chord_residuals(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """|residual| of each raw sample from the chord of its two neighbours, scaled to the noise's std.

    Lines (the segment model) leave no residual, so these measure the noise alone, away from changes.
    """
    if x.size < 3:
        return np.full(x.size, max(float(np.std(y)), 1e-12))
    gap = np.diff(x)
    a = gap[1:] / np.maximum(gap[1:] + gap[:-1], 1e-300)
    # white noise of std s gives the residual a variance of (1 + a^2 + (1-a)^2) s^2
    resid = (y[1:-1] - a * y[:-2] - (1 - a) * y[2:]) / np.sqrt(1 + a**2 + (1 - a) ** 2)
    return np.abs(np.concatenate([resid[:1], resid, resid[-1:]]))


def _noise_scale(grid: _Grid, degree: int) -> float:
    """Robust std of the gridded curve's difference residuals in units of their expected std.

    1 when the per-cell noise model holds; larger when the curve wanders between cells more than
    its samples scatter within them (slow oscillations), which then raises the penalty.
    """
    gx, gy, var = grid.x, grid.y, 1.0 / grid.weight
    if gy.size < 3:
        return 1.0
    if degree == 1:
        z = np.diff(gy) / np.sqrt(var[1:] + var[:-1])
    else:
        gap = np.diff(gx)
        a = gap[1:] / (gap[1:] + gap[:-1])
        z = (gy[1:-1] - a * gy[:-2] - (1 - a) * gy[2:]) / np.sqrt(var[1:-1] + a**2 * var[:-2] + (1 - a) ** 2 * var[2:])
    return float(max(MAD_TO_SIGMA * np.median(np.abs(z - np.median(z))), 1e-12))


def _line_sse(sw, swx, swy, swxx, swxy, swyy, *, degree):
    """Weighted residual sum of squares of a constant (degree 1) or line (degree 2) fit, from sums."""
    with np.errstate(divide="ignore", invalid="ignore"):
        const = swyy - swy**2 / sw
        if degree == 1:
            return np.where(sw > 0, const, 0.0)
        sxx = swxx - swx**2 / sw
        sxy = swxy - swx * swy / sw
        line = const - np.where(sxx > 1e-300, sxy**2 / sxx, 0.0)
    return np.where(sw > 0, np.maximum(line, 0.0), 0.0)


class PhaseDetector:
    """Change points of a positive curve in log10 value vs log10 step (estimator in the manner of ruptures).

    Parameters
    ----------
    cost : {"linear", "l2"} or str or ruptures.base.BaseCost
        Segment model. ``"linear"`` (default): a line in log-log per segment (a power law, the
        paper's phases); ``"l2"``: a constant level per segment. Any other ruptures model name or
        a ``BaseCost`` instance is applied to the gridded log10 values; it needs ``penalty=`` or
        ``n_phases`` and is not refined on the raw points.
    min_size : int
        Fewest grid cells in a segment (``min_size / bins_per_decade`` decades).
    bins_per_decade : int
        Resolution of the uniform log10-step grid the curve is block-averaged onto.
    penalty : float, optional
        Penalty per change point for ruptures' Pelt; default: the Schwarz (BIC) penalty
        ``(degree + 1) * max(noise_, 1)**2 * ln(n_cells)``, ``degree`` parameters per segment.
    refine : bool
        Move each boundary to the best raw sample within the two grid cells around it.
    despike : int
        Half-width (samples) of the Hampel filter run on log10 values before gridding
        (:func:`~pinnlog.analyzer.phases.despike.hampel`); 0 turns it off.

    Attributes
    ----------
    steps_, log_values_ : ndarray
        The raw samples used (positive steps, positive finite values), log10 of the values.
    grid_x_, grid_y_, grid_weight_ : ndarray
        Per grid cell (before any re-cut pass): median log10 step, median log10 value, inverse noise variance.
    noise_ : float
        Robust noise scale of the gridded curve in units of its expected noise (1 for white noise).
    penalty_ : float
        The penalty ``predict`` uses when ``n_phases`` is not given.
    outliers_ : ndarray of bool
        Samples the despiking replaced.
    """

    def __init__(
        self,
        cost="linear",
        *,
        min_size: int = 4,
        bins_per_decade: int = 20,
        penalty: float | None = None,
        refine: bool = True,
        despike: int = 3,
    ):
        if isinstance(cost, str) and cost not in DEGREES:
            try:
                rpt.costs.cost_factory(cost)
            except ValueError:
                raise PhaseDetectionError(
                    f"unknown cost {cost!r}; use 'linear', 'l2', a ruptures model name or a BaseCost"
                ) from None
        elif not isinstance(cost, (str, rpt.base.BaseCost)):
            raise PhaseDetectionError(f"cost must be a name or a ruptures BaseCost instance, got {type(cost).__name__}")
        if int(min_size) < 2 or int(bins_per_decade) < 2:
            raise PhaseDetectionError("min_size and bins_per_decade must be at least 2")
        self.cost, self.min_size, self.bins_per_decade = cost, int(min_size), int(bins_per_decade)
        if int(despike) < 0:
            raise PhaseDetectionError(f"despike must be a half-width >= 0, got {despike!r}")
        self.penalty, self.refine, self.despike = penalty, refine, int(despike)

    # -- fit -----------------------------------------------------------------------------------
    def fit(self, signal, steps=None) -> PhaseDetector:
        """Grid the curve, estimate its noise and the penalty (the costly part; ``predict`` is cheap).

        Samples with a step <= 0 (log10 undefined: step 0 of a test-error log) are skipped; so are
        non-positive or non-finite values, with a warning.
        """
        step, value, self.name_ = _signal_arrays(signal, steps)
        order = np.argsort(step, kind="stable")
        step, value = step[order], value[order]
        keep = step > 0
        bad = keep & ~(np.isfinite(value) & (value > 0))
        if bad.any():
            message = f"{self.name_}: {int(bad.sum())} non-positive or non-finite values skipped"
            warnings.warn(message, PhaseDetectionWarning, stacklevel=2)
        keep &= ~bad
        self.steps_, x, y = step[keep], np.log10(step[keep]), np.log10(value[keep])
        if x.size < 2 * self.min_size:
            raise PhaseDetectionError(
                f"{self.name_}: only {x.size} usable samples; phase detection needs at least {2 * self.min_size}"
            )
        # despiked before the noise estimate too: the dips are not the noise the cells' medians carry
        y, self.outliers_ = hampel(y, self.despike)
        self._abs_resid = _chord_residuals(x, y)
        if self.outliers_.any() and not self.outliers_.all():
            # a replaced sample sits exactly on its neighbours' median: its near-zero residual would
            # understate the noise, so it counts as a typical one
            self._abs_resid[self.outliers_] = np.median(self._abs_resid[~self.outliers_])
        self.log_steps_, self.log_values_ = x, y
        self._cell_of = np.floor((x - x[0]) * self.bins_per_decade).astype(np.int64)
        grid = self._grid(())
        self.grid_x_, self.grid_y_, self.grid_weight_ = grid.x, grid.y, grid.weight
        if self.degree_ is not None:
            self.noise_ = _noise_scale(grid, self.degree_)
            # the cell variances are upper bounds (see _grid), so the scale only ever raises them
            bic = (self.degree_ + 1) * max(self.noise_, 1.0) ** 2 * np.log(grid.x.size)
            self.penalty_: float | None = float(self.penalty if self.penalty is not None else bic)
        else:
            self.noise_, self.penalty_ = float("nan"), self.penalty
        return self

    @property
    def degree_(self) -> int | None:
        """Parameters per segment of a built-in cost (1: constant, 2: line), None for other costs."""
        return DEGREES.get(self.cost) if isinstance(self.cost, str) else None

    def _grid(self, cuts: Sequence[int]) -> _Grid:
        """Cells of 1/bins_per_decade decade, also cut at the raw indices ``cuts``, and their statistics."""
        x, y = self.log_steps_, self.log_values_
        segment = np.zeros(x.size, dtype=np.int64)
        if len(cuts):
            segment[np.asarray(cuts)] = 1
            segment = np.cumsum(segment)
        new_cell = (self._cell_of[1:] != self._cell_of[:-1]) | (segment[1:] != segment[:-1])
        starts = np.flatnonzero(np.r_[True, new_cell])
        ends = np.r_[starts[1:], x.size]
        counts = ends - starts
        gy = np.array([np.median(y[a:b]) for a, b in zip(starts, ends)])
        gx = np.array([np.median(x[a:b]) for a, b in zip(starts, ends)])
        scale = np.empty(starts.size)
        for i, (a, b) in enumerate(zip(starts, ends)):
            lo, hi = int(a), int(b)
            while hi - lo < MIN_RESIDUALS and (lo > 0 or hi < x.size):  # pool neighbours of sparse cells
                lo, hi = max(lo - 1, 0), min(hi + 1, x.size)
            pooled = self._abs_resid[lo:hi]
            scale[i] = MAD_TO_SIGMA * np.median(pooled)
            if b - a <= 2:
                # a median of one or two samples is as heavy-tailed as the samples: the squared-error
                # cost needs their variance (tails included), not the spread of the bulk
                scale[i] = max(scale[i], float(np.sqrt(np.mean(pooled**2))))
            # a cell that straddles a jump, or whose median is a dip, holds two populations: its own
            # spread says so (the standard deviation where the MAD of a handful would miss them)
            if 2 <= b - a < SMALL_CELL:
                scale[i] = max(scale[i], float(np.std(y[a:b], ddof=1)))
            elif b - a >= SMALL_CELL:
                scale[i] = max(scale[i], MAD_TO_SIGMA * np.median(np.abs(y[a:b] - gy[i])))
        scale = np.maximum(scale, max(np.median(scale) * 1e-3, 1e-12))  # a noiseless stretch must not get infinite weight
        sigma = scale * np.where(counts >= 3, MEDIAN_EFFICIENCY, 1.0) / np.sqrt(counts)
        return _Grid(starts, gx, gy, 1.0 / sigma**2, np.repeat(1.0 / scale**2, counts))

    def _cost_for(self, grid: _Grid):
        """The ruptures cost and the array it is fitted on, for one grid."""
        if self.degree_ is None:
            cost = rpt.costs.cost_factory(self.cost) if isinstance(self.cost, str) else self.cost
            signal = grid.y.reshape(-1, 1)
        else:
            root_w = np.sqrt(grid.weight)
            design = [root_w] if self.degree_ == 1 else [root_w, root_w * grid.x]
            # weighted least squares = ordinary least squares on rows scaled by sqrt(weight)
            signal = np.column_stack([root_w * grid.y] + design)
            cost = rpt.costs.CostLinear()
        cost.fit(signal)
        return cost, signal

    # -- predict ---------------------------------------------------------------------------------
    def predict(self, n_phases: int | None = None) -> list[int]:
        """Boundaries: the first step of every segment after the first.

        Parameters
        ----------
        n_phases : int, optional
            Number of segments to fit (exact search, ruptures ``Dynp``); default: as many as the
            penalty allows (ruptures ``Pelt``).

        Notes
        -----
        A grid cell that straddles a change mixes two levels and can look like a short segment of
        its own; so, with a built-in cost, the cells are cut again at the refined boundaries and
        the search is repeated until the boundaries stop moving (at most ``MAX_PASSES`` times).
        """
        if not hasattr(self, "steps_"):
            raise PhaseDetectionError("call fit(signal) before predict()")
        if n_phases is None and self.penalty_ is None:
            raise PhaseDetectionError(f"cost {self.cost!r} has no built-in penalty; pass penalty= or n_phases")
        cuts: list[int] = []
        for _ in range(MAX_PASSES):
            grid = self._grid(cuts)
            bkps = [int(grid.starts[c]) for c in self._search(grid, n_phases)[:-1]]
            if self.refine and self.degree_ is not None:
                bkps = self._refine(bkps, grid)
            if self.degree_ is None or bkps == cuts:
                break
            cuts = bkps
        self.bkps_ = bkps + [self.steps_.size]
        return [int(self.steps_[b]) for b in bkps]

    def _search(self, grid: _Grid, n_phases: int | None) -> list[int]:
        """ruptures on the grid: cell indices ending each segment (the last is the number of cells)."""
        cost, signal = self._cost_for(grid)
        n = grid.x.size
        min_size = max(self.min_size, cost.min_size)
        if n_phases is None:
            if n < 2 * min_size:
                return [n]
            return rpt.Pelt(custom_cost=cost, min_size=min_size, jump=1).fit(signal).predict(pen=self.penalty_)
        n_phases = int(n_phases)
        if n_phases < 1 or n_phases * min_size > n:
            raise PhaseDetectionError(
                f"{self.name_}: cannot fit {n_phases} phases of at least {min_size} grid cells in {n} cells; "
                "ask for fewer phases or lower min_size"
            )
        if n_phases == 1:
            return [n]
        return rpt.Dynp(custom_cost=cost, min_size=min_size, jump=1).fit(signal).predict(n_bkps=n_phases - 1)

    def _refine(self, bkps: list[int], grid: _Grid) -> list[int]:
        """Move each boundary to the raw sample, within the cells on either side, that minimises the
        weighted squared error of its two segments (closed form from cumulative sums)."""
        x, y, w = self.log_steps_, self.log_values_, grid.raw_weight
        x, y = x - x.mean(), y - y.mean()  # centred: the squared sums below then lose fewer digits
        sums = [np.r_[0.0, np.cumsum(v)] for v in (w, w * x, w * y, w * x * x, w * x * y, w * y * y)]
        starts = grid.starts
        refined = list(bkps)
        for i, b in enumerate(bkps):
            left_edge = refined[i - 1] if i else 0
            right_edge = bkps[i + 1] if i + 1 < len(bkps) else x.size
            cell = int(np.searchsorted(starts, b))
            lo = int(starts[max(cell - 1, 0)])
            hi = int(starts[cell + 1]) if cell + 1 < starts.size else x.size
            lo, hi = max(lo, left_edge + 1), min(hi, right_edge - 1)
            if hi <= lo:
                continue
            cand = np.arange(lo, hi + 1)
            left = _line_sse(*(s[cand] - s[left_edge] for s in sums), degree=self.degree_)
            right = _line_sse(*(s[right_edge] - s[cand] for s in sums), degree=self.degree_)
            refined[i] = int(cand[np.argmin(left + right)])
        return refined

    def intervals(self, bkps: list[int] | None = None, level: float = CHI2_1_95) -> list[tuple[int, int]]:
        """A confidence interval ``(low step, high step)`` for each boundary: how flat the cost is around it.

        Each boundary is moved over the grid cells between its neighbours (held fixed); the cells where
        the weighted squared error of its two segments exceeds its minimum by at most ``level`` x
        the larger of ``noise_**2`` and the two segments' reduced chi-square (the profile likelihood of
        the change point; 3.84: 95 % for one parameter) bound the interval. The reduced chi-square
        measures how much the curve wanders between cells beyond their noise, so slow oscillations
        widen the interval rather than hide in it.

        Parameters
        ----------
        bkps : list of int, optional
            Sample indices ending each segment (default: the last ``predict``'s).
        level : float
            Cost increase that still counts as as good (in noise variances).

        Returns
        -------
        list of (int, int)
            Per boundary, the first step of the first and of the last cell in the interval; the boundary
            itself always lies within.
        """
        if bkps is None:
            if not hasattr(self, "bkps_"):
                raise PhaseDetectionError("call predict() before intervals()")
            bkps = self.bkps_
        inner = [int(b) for b in bkps[:-1]]
        if not inner:
            return []
        grid = self._grid(inner)
        degree = self.degree_ or 1
        x, y, w = grid.x - grid.x.mean(), grid.y - grid.y.mean(), grid.weight
        sums = [np.r_[0.0, np.cumsum(v)] for v in (w, w * x, w * y, w * x * x, w * x * y, w * y * y)]
        cell_of_bkp = [int(np.searchsorted(grid.starts, b)) for b in inner]
        edges = [0, *cell_of_bkp, grid.starts.size]
        scale = max(self.noise_, 1.0) ** 2 if np.isfinite(self.noise_) else 1.0
        out = []
        for i, cell in enumerate(cell_of_bkp):
            left, right = edges[i], edges[i + 2]
            cand = np.arange(left + degree, right - degree + 1)
            if cand.size == 0:
                step = int(self.steps_[inner[i]])
                out.append((step, step))
                continue
            sse = _line_sse(*(s[cand] - s[left] for s in sums), degree=degree) + _line_sse(
                *(s[right] - s[cand] for s in sums), degree=degree
            )
            # the local fit's own reduced chi-square: a curve that wanders more than its cells' noise says
            # (correlated noise does not average out within a cell) gets a proportionally flatter cost
            dof = max(right - left - 2 * degree - 1, 1)
            local = max(scale, float(sse.min()) / dof)
            good = cand[sse - sse.min() <= level * local]
            lo, hi = min(int(good.min()), cell), max(int(good.max()), cell)
            out.append((int(self.steps_[grid.starts[lo]]), int(self.steps_[grid.starts[hi]])))
        return out

    def segments(self, labels: list[str] | None = None, bkps: list[int] | None = None) -> list[Phase]:
        """Segments of the last ``predict`` (or of ``bkps``: sample indices ending each segment), with
        statistics on the raw samples, each grid cell weighing as much as any other."""
        if bkps is None:
            if not hasattr(self, "bkps_"):
                raise PhaseDetectionError("call predict() before segments()")
            bkps = self.bkps_
        labels = labels or [""] * len(bkps)
        _, cell_index, cell_counts = np.unique(self._cell_of, return_inverse=True, return_counts=True)
        weight = 1.0 / cell_counts[cell_index]
        out, start = [], 0
        for label, end in zip(labels, bkps):
            part = slice(start, end)
            out.append(Phase.from_samples(label, self.steps_[part], self.log_steps_[part], self.log_values_[part], weight[part]))
            start = end
        return out
