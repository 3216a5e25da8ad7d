"""Residual figures: per-sample distributions (|residual|, RBA weights) and their dispersion over time.

Like :mod:`pinnlog.analyzer.report.figures`, these take metric outputs (or recorded per-sample arrays)
for one run or ``{label: ...}`` for several, and never compute a metric.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import seaborn as sns
from matplotlib.axes import Axes

from pinnlog.analyzer.report.figures import (
    Colors,
    Datasets,
    Series,
    _ax,
    _plot_solid_and_dashed,
    _runs,
    plain,
    run_colors,
)

__all__ = ["plot_distribution", "plot_homogeneity", "plot_rba_weight_distribution", "plot_residual_distribution"]


def plot_homogeneity(homogeneity: Datasets, *, phases: Any = None, ax: Axes | None = None, colors: Colors = None) -> Axes:
    """Dispersion of the per-sample residuals over time: coefficient of variation (solid), max/mean (dashed)."""
    return _plot_solid_and_dashed(
        homogeneity,
        ("cv", "std/mean |r|"),
        ("max_over_mean", "max/mean |r|"),
        ylabel="residual dispersion (1 = homogeneous)",
        default="residuals",
        single_colors=("C4", "C4"),
        widths=(1.3, 1.1),
        phases=phases,
        ax=ax,
        colors=colors,
    )


def plot_distribution(
    values: Series, *, xlabel: str, log_scale: bool = True, ax: Axes | None = None, colors: Mapping[str, Any] | None = None
) -> Axes:
    """Histograms of per-sample values: one run's ``(step, sample)`` array, one curve per step; or
    ``{label: (sample,) array}`` one curve per run. Zeros cannot be shown on a log axis and are left out."""
    import pandas as pd

    ax = _ax(ax)
    runs, single = _runs(values, "values")
    frames = []
    if single:
        (da,) = runs.values()
        for step in np.asarray(da["step"].values):
            v = np.abs(np.asarray(da.sel(step=step).values, dtype=float).ravel())
            frames.append(pd.DataFrame({"value": v, "curve": f"step {int(step):,}"}))
        palette = dict(zip([f["curve"].iat[0] for f in frames], sns.color_palette("flare", len(frames)), strict=True))
    else:
        colors = colors or run_colors(list(runs))
        for label, da in runs.items():
            v = np.abs(np.asarray(da.values, dtype=float).ravel())
            frames.append(pd.DataFrame({"value": v, "curve": plain(label)}))
        palette = {plain(k): colors[k] for k in runs}
    data = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"value": [], "curve": []})
    data = data[np.isfinite(data["value"]) & ((data["value"] > 0) if log_scale else True)]
    if data.empty:  # every value NaN, inf (or 0 on a log axis): seaborn cannot draw an empty hue
        ax.text(0.5, 0.5, "no finite values to show", transform=ax.transAxes, ha="center", va="center")
        ax.set_xlabel(xlabel)
        return ax
    sns.histplot(
        data=data,
        x="value",
        hue="curve",
        palette=palette,
        element="step",
        fill=False,
        stat="density",
        common_norm=False,
        log_scale=log_scale,
        bins=60,
        ax=ax,
    )
    _keep_spikes_off_scale(ax, data, log_scale)
    legend = ax.get_legend()
    if legend is not None:
        legend.set_title("")  # no title (set_text("") and hidden, as for None)
    ax.set_xlabel(xlabel)
    return ax


#: A curve whose peak density is this many times the highest peak of the others is drawn off scale.
SPIKE_RATIO = 3.0


def _keep_spikes_off_scale(ax: Axes, data, log_scale: bool) -> None:
    """Scale the density axis to the spread-out curves; a spike (the RBA weights at step 0, all near
    λ₀ = 0, Eq 28) runs off the top and its legend entry gives its peak instead of flattening the rest."""
    values = np.log10(data["value"].to_numpy()) if log_scale else data["value"].to_numpy()
    edges = np.histogram_bin_edges(values, bins=60)
    peaks = {}
    for curve, rows in data.groupby("curve", sort=False):
        v = np.log10(rows["value"].to_numpy()) if log_scale else rows["value"].to_numpy()
        density, _ = np.histogram(v, bins=edges, density=True)
        peaks[curve] = float(density.max()) if density.size else 0.0
    if len(peaks) < 2:
        return
    spikes = {c for c, p in peaks.items() if p > SPIKE_RATIO * max(q for d, q in peaks.items() if d != c)}
    rest = [p for c, p in peaks.items() if c not in spikes]
    if not spikes or not rest:
        return
    # seaborn's density is per unit of the drawn axis; rescale our per-bin estimate to its axis top
    top_drawn = ax.get_ylim()[1]
    scale = top_drawn / max(peaks.values())
    ax.set_ylim(0.0, 1.15 * max(rest) * scale)
    legend = ax.get_legend()
    for text in legend.get_texts() if legend is not None else ():
        if text.get_text() in spikes:
            text.set_text(f"{text.get_text()} (peak {peaks[text.get_text()] * scale:.3g}, off scale)")


def plot_residual_distribution(residual: Series, *, ax: Axes | None = None, colors: Mapping[str, Any] | None = None) -> Axes:
    """Distribution of |residual| over the collocation samples at a few steps (or one step per run)."""
    return plot_distribution(residual, xlabel="|residual|", ax=ax, colors=colors)


def plot_rba_weight_distribution(rba_weight: Series, *, ax: Axes | None = None, colors: Mapping[str, Any] | None = None) -> Axes:
    """Distribution of the RBA weights λ (Eq 28) over the collocation samples."""
    return plot_distribution(rba_weight, xlabel="RBA weight λ", log_scale=False, ax=ax, colors=colors)
