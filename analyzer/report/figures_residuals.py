"""Residual figures: per-sample distributions (|residual|, RBA weights) and their dispersion over time.

Like :mod:`pinnlog.analyzer.report.figures`, these take metric outputs (or recorded per-sample arrays)
for one run or ``{label: ...}`` for several, and never compute a metric.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import seaborn as sns
import xarray as xr
from matplotlib.axes import Axes

from pinnlog.analyzer.report.figures import Series, _ax, _legend, _line, _log_axes, _runs, plain, run_colors, shade_phases

__all__ = ["plot_distribution", "plot_homogeneity", "plot_rba_weight_distribution", "plot_residual_distribution"]


def plot_homogeneity(
    homogeneity: xr.Dataset | Mapping[str, xr.Dataset],
    *,
    phases: Any = None,
    ax: Axes | None = None,
    colors: Mapping[str, Any] | None = None,
) -> Axes:
    """Dispersion of the per-sample residuals over time: coefficient of variation (solid), max/mean (dashed)."""
    ax = _ax(ax)
    runs, single = _runs(homogeneity, "residuals")
    colors = colors or run_colors(list(runs))
    for label, ds in runs.items():
        color = "C4" if single else colors[label]
        prefix = "" if single else f"{plain(label)}: "
        _line(ax, ds["cv"], color=color, lw=1.3, label=f"{prefix}std/mean |r|")
        _line(ax, ds["max_over_mean"], color=color, lw=1.1, ls="--", label=f"{prefix}max/mean |r|")
    _log_axes(ax)
    ax.set_ylabel("residual dispersion (1 = homogeneous)")
    shade_phases(ax, phases, colors=colors)
    _legend(ax)
    return ax


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
    # A curve whose values are all equal (the RBA weights at step 0: every λ = 0) has no spread: its
    # density is a spike that would set the scale of the panel. It is marked by a line and named instead.
    constant = [c for c, v in data.groupby("curve", sort=False)["value"] if v.size and v.min() == v.max()]
    if len(constant) < data["curve"].nunique():
        for curve in constant:
            value = float(data.loc[data["curve"] == curve, "value"].iat[0])
            ax.axvline(value, color=palette.get(curve, "0.4"), ls=":", lw=1.2, label=f"{curve}: all = {value:g}")
        data = data[~data["curve"].isin(constant)]
        palette = {k: v for k, v in palette.items() if k not in constant}
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
    handles = [h for h in ax.get_lines() if not h.get_label().startswith("_")]
    legend = ax.get_legend()
    if legend is not None and handles:  # seaborn's legend of the histograms, plus the constant curves' lines
        patches = legend.legend_handles
        ax.legend([*patches, *handles], [t.get_text() for t in legend.get_texts()] + [h.get_label() for h in handles])
        legend = ax.get_legend()
    if legend is not None:
        legend.set_title(None)
    ax.set_xlabel(xlabel)
    return ax


def plot_residual_distribution(residual: Series, *, ax: Axes | None = None, colors: Mapping[str, Any] | None = None) -> Axes:
    """Distribution of |residual| over the collocation samples at a few steps (or one step per run)."""
    return plot_distribution(residual, xlabel="|residual|", ax=ax, colors=colors)


def plot_rba_weight_distribution(rba_weight: Series, *, ax: Axes | None = None, colors: Mapping[str, Any] | None = None) -> Axes:
    """Distribution of the RBA weights λ (Eq 28) over the collocation samples."""
    return plot_distribution(rba_weight, xlabel="RBA weight λ", log_scale=False, ax=ax, colors=colors)
