"""The paper's figure types, drawn from metric outputs: a figure never computes a quantity.

Each ``plot_*`` function takes what a function of :mod:`pinnlog.analyzer.metrics` returned, either for one
run (a DataArray over ``step``, or ``(step, layer)``) or for several runs as a mapping ``{label: DataArray}``,
which it overlays in one colour per run. It draws on ``ax`` (a new ``Figure`` with one Axes when ``ax`` is
None, never pyplot's global state) and returns the Axes. Phases (a ``PhaseTable`` from
:func:`pinnlog.analyzer.phases.detect_phases`, or ``{label: PhaseTable}`` when overlaying) are shaded and
labelled for one run, and marked by dashed lines in each run's colour when overlaying.

Steps axes are logarithmic as in the paper (Fig 6-12, A13-A14); when a curve has a row at step 0 (the
weights before training), the axis is symmetric-log instead: linear from 0 to the first captured step,
logarithmic above, so step 0 is drawn rather than dropped. The residual figures are in ``figures_residuals.py``, the
comparison-only ones in ``figures_compare.py``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import seaborn as sns
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator
from matplotlib.transforms import blended_transform_factory

__all__ = [
    "figure_style",
    "mark_saturation",
    "new_figure",
    "plot_binarization",
    "plot_gradient_norms",
    "plot_loss",
    "plot_mutual_information",
    "plot_per_layer",
    "plot_snr",
    "plot_snr_per_layer",
    "plot_srr",
    "plot_test_error",
    "plot_weight_norms",
    "run_colors",
    "shade_phases",
]

#: Shading of the paper's three phases (anything else the detector returns gets a grey).
PHASE_COLORS = {"fitting": "#4C72B0", "diffusion": "#DD8452", "total diffusion": "#55A868"}

Series = xr.DataArray | Mapping[str, xr.DataArray]
Datasets = xr.Dataset | Mapping[str, xr.Dataset]
#: a figure's ``colors``: ``{run label: colour}`` (default: :func:`run_colors` of the labels drawn)
Colors = Mapping[str, Any] | None

#: Steps written as people count them: 200, 5,000.
STEP_FORMATTER = FuncFormatter(lambda step, _: f"{step:,.0f}" if step >= 1 else f"{step:g}")


#: Shares as percentages with the decimals each tick needs: 7.5%, 17.5%, 25% (never "8%" for 7.5 %).
PERCENT_FORMATTER = FuncFormatter(lambda share, _: f"{100 * share:.10g}%")


@contextlib.contextmanager
def figure_style() -> Iterator[None]:
    """The seaborn theme of every report figure, without touching matplotlib's global settings."""
    import matplotlib as mpl

    with mpl.rc_context(), sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.85):
        mpl.rcParams["svg.fonttype"] = "none"  # SVG keeps text as text: smaller, searchable
        yield


def new_figure(ncols: int = 1, nrows: int = 1, *, width: float = 6.4, height: float = 4.0) -> tuple[Figure, Any]:
    """A ``Figure`` (Agg, no pyplot) with a grid of Axes, ``width``×``height`` inches per panel."""
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _ax(ax: Axes | None) -> Axes:
    return ax if ax is not None else new_figure()[1][0, 0]


def plain(text: Any) -> str:
    """A string matplotlib draws literally: no mathtext, and shown in legends even when it starts with '_'."""
    text = str(text).replace("$", r"\$")
    return " " + text if text.startswith("_") else text


def run_colors(labels: Sequence[str]) -> dict[str, Any]:
    """One colour per run label (seaborn's colour-blind palette), stable for the order given."""
    palette = sns.color_palette("colorblind", max(len(labels), 1))
    return {label: palette[i % len(palette)] for i, label in enumerate(labels)}


def _runs(values: Any, default: str) -> tuple[dict[str, Any], bool]:
    """``({label: value}, single)``: one run's object under its own name, or the mapping as given."""
    if isinstance(values, (xr.DataArray, xr.Dataset)):
        name = values.name if isinstance(values, xr.DataArray) and values.name is not None else default
        return {str(name): values}, True
    return {str(k): v for k, v in values.items() if v is not None}, False


def _drawable_steps(da: xr.DataArray) -> xr.DataArray:
    return da.isel(step=np.flatnonzero(np.asarray(da["step"].values) >= 0))


def _line(ax: Axes, da: xr.DataArray, **kwargs) -> None:
    # Unmeasured rows (NaN, e.g. a test error logged every 100 steps) would break the line into dots.
    da = _drawable_steps(da).dropna("step")
    ax.plot(np.asarray(da["step"].values), np.asarray(da.values, dtype=float), **kwargs)


def _log_points(ax: Axes, *, positive_y: bool) -> tuple[np.ndarray, np.ndarray]:
    """Steps and values of the points of ``ax``'s data lines (not reference lines) log axes can show."""
    xs, ys = [np.zeros(0)], [np.zeros(0)]
    for line in ax.get_lines():
        if line.get_transform() is not ax.transData:  # axhline/axvline live partly in axes coordinates
            continue
        x = np.asarray(line.get_xdata(), dtype=float)
        y = np.asarray(line.get_ydata(), dtype=float)
        ok = np.isfinite(x) & np.isfinite(y) & (x >= 0)
        if positive_y:
            ok &= y > 0
        xs.append(x[ok])
        ys.append(y[ok])
    return np.concatenate(xs), np.concatenate(ys)


def _has_points(ax: Axes, *, positive_y: bool) -> bool:
    return _log_points(ax, positive_y=positive_y)[0].size > 0


def _sparse_minor_ticks(axis, values: np.ndarray) -> None:
    # Over two decades a log axis never labels its minor ticks, and laying them out is most of a
    # figure's drawing time: leave them out.
    if values.size and values.max() >= 100 * values.min():
        axis.set_minor_locator(NullLocator())


def _log_axes(ax: Axes, *, logy: bool = True) -> None:
    """Log steps (symmetric-log when step 0 is drawn) and log values where they are all positive."""
    ax.set_xlabel("step")
    steps, _ = _log_points(ax, positive_y=False)
    if steps.size == 0:
        ax.text(0.5, 0.5, "no value at a step >= 0 to draw", transform=ax.transAxes, ha="center", va="center", color="0.4")
        return
    positive = steps[steps > 0]
    if positive.size < steps.size:  # step 0 is drawn: linear up to the first positive step, logarithmic above
        ax.set_xscale("symlog", linthresh=float(positive.min()) if positive.size else 1.0, linscale=0.4)
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(STEP_FORMATTER)
        ax.set_xlim(left=0.0)  # the autoscale margin would reach into negative steps
    else:
        ax.set_xscale("log")
        if steps.max() >= 100 * steps.min():
            _sparse_minor_ticks(ax.xaxis, steps)
        else:  # under two decades of steps: label 2 and 5 times the powers of ten, as plain numbers
            ax.xaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
            ax.xaxis.set_minor_formatter(STEP_FORMATTER)
            ax.xaxis.set_major_formatter(STEP_FORMATTER)
    _, values = _log_points(ax, positive_y=True)
    if logy and values.size:
        ax.set_yscale("log")
        _sparse_minor_ticks(ax.yaxis, values)


def _legend(ax: Axes, **kwargs) -> None:
    handles, _labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(fontsize="small", **kwargs)


# -- phases ---------------------------------------------------------------------------------------


def _phase_list(table: Any) -> list:
    return list(getattr(table, "phases", table) or [])


def shade_phases(ax: Axes, phases: Any, *, colors: Mapping[str, Any] | None = None) -> None:
    """Mark phases on ``ax``: one run's table is shaded and labelled; ``{label: table}`` draws dashed lines.

    A phase spans from its ``first_step`` to the next phase's ``first_step`` (the last one to its
    ``last_step``), so the shading has no gaps between captured steps. Call it after drawing the data:
    the marks never widen the step range the data set (a figure of late residuals is not stretched
    back to the fitting phase).
    """
    if phases is None:
        return
    xlim = ax.get_xlim() if _has_points(ax, positive_y=False) else None
    low, high = (min(xlim), max(xlim)) if xlim else (-np.inf, np.inf)
    to_axes = blended_transform_factory(ax.transData, ax.transAxes)
    if isinstance(phases, Mapping):
        colors = colors or run_colors(list(phases))
        for run, table in phases.items():
            for phase in _phase_list(table)[1:]:
                if not low <= phase.first_step <= high:
                    continue
                ax.axvline(phase.first_step, color=colors.get(run, "0.3"), ls="--", lw=1.0, alpha=0.9)
                ax.text(
                    phase.first_step,
                    0.02,
                    plain(phase.label),
                    transform=to_axes,
                    rotation=90,
                    ha="right",
                    va="bottom",
                    fontsize="x-small",
                    color=colors.get(run, "0.3"),
                )
    else:
        table = _phase_list(phases)
        floor = 0.0 if ax.get_xscale() == "symlog" else 1.0  # a log axis starts above 0
        to_display = ax.transData.transform
        to_fraction = ax.transAxes.inverted().transform
        for i, phase in enumerate(table):
            start = max(float(phase.first_step), floor, low)
            end = float(table[i + 1].first_step) if i + 1 < len(table) else float(phase.last_step)
            end = min(end, high)
            if end <= start:
                continue
            color = PHASE_COLORS.get(phase.label, "0.6")
            ax.axvspan(start, end, color=color, alpha=0.13, lw=0, zorder=0)
            low_step, high_step = getattr(phase, "first_step_low", None), getattr(phase, "first_step_high", None)
            if i > 0 and low_step is not None and high_step is not None and high_step > low_step:
                # the boundary's 95 % interval (docs/phases.md): a darker band, so an uncertain boundary looks it
                ax.axvspan(max(float(low_step), low), min(float(high_step), high), color=color, alpha=0.25, lw=0, zorder=0)
            if i > 0 and start == float(phase.first_step):
                ax.axvline(start, color=color, ls="--", lw=1.0, zorder=1)
            # the label sits in the middle of the span as drawn, kept inside the axes near its edges
            left, right = (to_fraction(to_display((x, 0.0)))[0] for x in (start, end))
            middle = (left + right) / 2
            ha = "left" if middle < 0.12 else "right" if middle > 0.88 else "center"
            x = max(left, 0.01) if ha == "left" else min(right, 0.99) if ha == "right" else middle
            ax.text(
                x,
                0.98,
                plain(phase.label),
                transform=ax.transAxes,
                ha=ha,
                va="top",
                fontsize="small",
                color=color,
                fontweight="bold",
                clip_on=False,
            )
    if xlim is not None:
        ax.set_xlim(xlim)


# -- whole-net gradient statistics (Fig 6-8, 10, A14) ---------------------------------------------------


def plot_snr(
    snr: Series,
    *,
    raw: Series | None = None,
    window: int | None = None,
    phases: Any = None,
    ax: Axes | None = None,
    colors: Mapping[str, Any] | None = None,
) -> Axes:
    """Whole-net SNR (Eq 8) against step, log-log, with the SNR = 1 regime boundary.

    ``snr`` is drawn solid (pass the smoothed curve, and its moving-average ``window`` in captures);
    ``raw``, when given, is drawn faintly behind it, and a legend tells the two apart.
    """
    ax = _ax(ax)
    runs, single = _runs(snr, "SNR")
    raws, _ = _runs(raw, "raw") if raw is not None else ({}, single)
    colors = colors or run_colors(list(runs))
    for label, da in runs.items():
        color = "C0" if single else colors[label]
        raw_da = next(iter(raws.values())) if single and raws else raws.get(label)
        if raw_da is not None:
            _line(ax, raw_da, color=color, alpha=0.25, lw=0.6, label="raw" if single else "_raw")
        smoothed = f"moving average of {window} captures" if window and window > 1 else "smoothed"
        name = ("SNR" if raw_da is None else f"SNR, {smoothed}") if single else label
        _line(ax, da, color=color, lw=1.4, label=plain(name))
    ax.axhline(1.0, color="0.4", ls=":", lw=1.0)
    _log_axes(ax)
    ax.set_ylabel("SNR  ‖μ‖ / ‖σ‖")
    shade_phases(ax, phases, colors=colors)
    if not single:
        _legend(ax, title="faint: raw" if raws else None)
    elif raws:
        _legend(ax, loc="lower left")
    return ax


def plot_gradient_norms(norms: Datasets, *, phases: Any = None, ax: Axes | None = None, colors: Colors = None) -> Axes:
    """Norms of the batch mean ‖μ‖ (solid) and batch std ‖σ‖ (dashed) of the gradient (Fig A14)."""
    return _plot_solid_and_dashed(
        norms,
        ("mean_norm", "‖mean‖"),
        ("std_norm", "‖std‖"),
        ylabel="gradient norm over batches",
        default="gradient",
        single_colors=("C0", "C3"),
        phases=phases,
        ax=ax,
        colors=colors,
    )


def _plot_solid_and_dashed(
    data: Datasets,
    solid: tuple[str, str],
    dashed: tuple[str, str],
    *,
    ylabel: str,
    default: str,
    single_colors: tuple[Any, Any],
    widths: tuple[float, float] = (1.3, 1.3),
    phases: Any = None,
    ax: Axes | None = None,
    colors: Colors = None,
) -> Axes:
    """Two variables of a Dataset against step, log-log: ``solid = (variable, label)`` solid, ``dashed`` dashed.

    One run (a Dataset, named ``default``) draws them in ``single_colors``; ``{label: Dataset}`` draws each run's
    pair in the run's colour, labels prefixed by the run's.
    """
    ax = _ax(ax)
    runs, single = _runs(data, default)
    colors = colors or run_colors(list(runs))
    for label, ds in runs.items():
        solid_color, dashed_color = single_colors if single else (colors[label], colors[label])
        prefix = "" if single else f"{plain(label)}: "
        _line(ax, ds[solid[0]], color=solid_color, lw=widths[0], label=f"{prefix}{solid[1]}")
        _line(ax, ds[dashed[0]], color=dashed_color, lw=widths[1], ls="--", label=f"{prefix}{dashed[1]}")
    _log_axes(ax)
    ax.set_ylabel(ylabel)
    shade_phases(ax, phases, colors=colors)
    _legend(ax)
    return ax


def plot_srr(
    srr_b: Series,
    srr_c: Series | None = None,
    *,
    test_error: Series | None = None,
    phases: Any = None,
    ax: Axes | None = None,
    colors: Mapping[str, Any] | None = None,
) -> Axes:
    """SRR_B (Eq 17, solid) and SRR_C (Eq 13, dashed) with the test error on a right-hand axis (dotted)."""
    ax = _ax(ax)
    runs_b, single = _runs(srr_b, "SRR_B")
    runs_c, _ = _runs(srr_c, "SRR_C") if srr_c is not None else ({}, single)
    errors, _ = _runs(test_error, "test error") if test_error is not None else ({}, single)
    colors = colors or run_colors(list(runs_b))
    prefix = (lambda label: "") if single else (lambda label: f"{plain(label)}: ")
    pick = (lambda d, label: next(iter(d.values()), None)) if single else (lambda d, label: d.get(label))
    for label, da in runs_b.items():
        color = "C0" if single else colors[label]
        _line(ax, da, color=color, lw=1.3, label=f"{prefix(label)}SRR_B")
        c = pick(runs_c, label)
        if c is not None:
            _line(ax, c, color="C1" if single else color, lw=1.3, ls="--", label=f"{prefix(label)}SRR_C")
    _log_axes(ax)
    ax.set_ylabel("signal-to-rms ratio")
    shade_phases(ax, phases, colors=colors)
    if errors:
        right = ax.twinx()
        for label in runs_b:
            e = pick(errors, label)
            if e is not None:
                _line(right, e, color="0.25" if single else colors[label], lw=1.1, ls=":", label=f"{prefix(label)}test error")
        _, values = _log_points(right, positive_y=True)
        if values.size:
            right.set_yscale("log")
            _sparse_minor_ticks(right.yaxis, values)
        right.set_ylabel(error_label(next(iter(errors.values()), None)))
        right.grid(False)
        lines, names = ax.get_legend_handles_labels()
        more, more_names = right.get_legend_handles_labels()
        ax.legend(lines + more, names + more_names, fontsize="small", loc="lower left")
    else:
        _legend(ax, loc="lower left")
    return ax


# -- loss and error ---------------------------------------------------------------------------------------


def plot_loss(
    loss: Series,
    *,
    terms: xr.Dataset | None = None,
    phases: Any = None,
    ax: Axes | None = None,
    colors: Mapping[str, Any] | None = None,
) -> Axes:
    """Training loss against step, log-log; for one run, the loss terms in ``terms`` (thin, dashed)."""
    ax = _ax(ax)
    runs, single = _runs(loss, "loss")
    colors = colors or run_colors(list(runs))
    for label, da in runs.items():
        _line(ax, da, color="C0" if single else colors[label], lw=1.0, label=plain(label))
    if single and terms is not None:
        palette = sns.color_palette("muted", len(terms.data_vars) + 1)[1:]
        for color, (name, da) in zip(palette, terms.data_vars.items()):
            _line(ax, da, color=color, lw=0.8, ls="--", label=plain(name))
    _log_axes(ax)
    ax.set_ylabel("loss")
    shade_phases(ax, phases, colors=colors)
    if not single or terms is not None:
        _legend(ax)
    return ax


def plot_test_error(
    test_error: Series,
    *,
    thresholds: Sequence[float] = (0.1, 0.05, 0.01),
    phases: Any = None,
    ax: Axes | None = None,
    colors: Mapping[str, Any] | None = None,
) -> Axes:
    """Test error against step, log-log, with the error thresholds as dotted lines.

    The axis label is the curve's own ``long_name`` (and ``units``): a classifier's error says so.
    """
    ax = _ax(ax)
    runs, single = _runs(test_error, "test error")
    colors = colors or run_colors(list(runs))
    for label, da in runs.items():
        _line(ax, da, color="C2" if single else colors[label], lw=1.1, label=plain(label))
    to_axes = blended_transform_factory(ax.transAxes, ax.transData)
    for threshold in thresholds:
        ax.axhline(threshold, color="0.5", ls=":", lw=0.9)
        ax.text(1.0, threshold, f"{threshold:.0%} ", transform=to_axes, ha="right", va="bottom", fontsize="x-small", color="0.35")
    _log_axes(ax)
    ax.set_ylabel(error_label(next(iter(runs.values()), None)))
    shade_phases(ax, phases, colors=colors)
    if not single:
        _legend(ax)
    return ax


def error_label(test_error: xr.DataArray | None) -> str:
    """The test error's axis label from its own attributes: ``long_name [units]`` (default: relative L2 test error)."""
    attrs = getattr(test_error, "attrs", {}) or {}
    name = str(attrs.get("long_name") or "relative L2 test error")
    units = str(attrs.get("units") or "")
    return plain(f"{name} [{units}]" if units and units != "1" else name)


# -- per layer (Fig 11, A13) ----------------------------------------------------------------------------


def layer_labels(values: xr.DataArray) -> list[str]:
    """Names of the ``layer`` entries: the ``layer_name`` coordinate when present."""
    if "layer_name" in values.coords:
        return [str(v) for v in np.asarray(values["layer_name"].values)]
    return [f"layer {v}" for v in np.asarray(values["layer"].values)]


def layer_colors(n: int) -> list[Any]:
    """``n`` colours a reader tells apart: the colour-blind qualitative palette, evenly spaced hues beyond 10."""
    return sns.color_palette("colorblind", n) if n <= 10 else sns.color_palette("husl", n)


def plot_per_layer(
    values: xr.DataArray, *, ylabel: str, logy: bool = True, phases: Any = None, ax: Axes | None = None, percent: bool = False
) -> Axes:
    """One line per layer of a ``(step, layer)`` metric, in clearly different colours (shallow to deep)."""
    ax = _ax(ax)
    names = layer_labels(values)
    palette = layer_colors(len(names))
    for i, name in enumerate(names):
        _line(ax, values.isel(layer=i), color=palette[i], lw=1.2, label=plain(name))
    _log_axes(ax, logy=logy)
    ax.set_ylabel(ylabel)
    if percent:
        ax.yaxis.set_major_formatter(PERCENT_FORMATTER)
    shade_phases(ax, phases)
    _legend(ax, ncols=2 if len(names) > 4 else 1)
    return ax


def plot_snr_per_layer(snr: xr.DataArray, *, phases: Any = None, ax: Axes | None = None) -> Axes:
    """Per-layer SNR (Eq 8 over each weight matrix; Fig A13)."""
    ax = plot_per_layer(snr, ylabel="SNR per layer", phases=phases, ax=ax)
    ax.axhline(1.0, color="0.4", ls=":", lw=1.0)
    return ax


def plot_mutual_information(mi: xr.DataArray, *, phases: Any = None, ax: Axes | None = None) -> Axes:
    """I(X;T) per layer in bits (Eq 31; Fig 11 a-b), on 0 .. log2 N bits.

    H(T) of N probe inputs is at most log2 N bits, reached when every input has its own binned code
    (the paper's early layers sit there). The axis spans 0 to a little above log2 N, with the bound
    drawn and named, so a curve pinned at it reads as "saturated", not as noise around a zoomed axis.
    """
    ax = plot_per_layer(mi, ylabel="I(X;T) [bits]", logy=False, phases=phases, ax=ax)
    mark_saturation(ax, mi)
    return ax


def mark_saturation(ax: Axes, mi: xr.DataArray, *, label: bool = True) -> None:
    """Show ``ax`` on 0 .. log2 N bits with the bound H(T) <= log2 N drawn (and named when ``label``)."""
    n = mi.attrs.get("n_samples")
    values = np.asarray(mi.values, dtype=float)
    finite = values[np.isfinite(values)]
    top = float(np.log2(n)) if n else float(finite.max()) if finite.size else 1.0
    if n:
        ax.axhline(top, color="0.35", ls="--", lw=0.9)
        if label:
            to_axes = blended_transform_factory(ax.transAxes, ax.transData)
            ax.text(
                0.99,
                top,
                f"saturated at log₂ N = {top:.3g} bits (N = {int(n):,})",
                transform=to_axes,
                ha="right",
                va="bottom",
                fontsize="x-small",
                color="0.3",
            )
    ax.set_ylim(0.0, max(top, float(finite.max()) if finite.size else top) * 1.08)


def plot_binarization(binarization: xr.DataArray, *, phases: Any = None, ax: Axes | None = None) -> Axes:
    """Share of saturated (binary) activations per layer (Fig 11 c-d)."""
    return plot_per_layer(binarization, ylabel="binary activations", logy=False, phases=phases, ax=ax, percent=True)


def plot_weight_norms(norms: xr.DataArray, *, phases: Any = None, ax: Axes | None = None) -> Axes:
    """Norm of each layer's weights ‖θ_l‖ (Fig 11 e-f)."""
    return plot_per_layer(norms, ylabel="weight norm ‖θ_l‖", logy=False, phases=phases, ax=ax)
