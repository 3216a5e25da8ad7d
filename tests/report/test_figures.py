"""Figure functions draw exactly the metric outputs they are given: data, scales, phases, colours."""

from __future__ import annotations

import io

import numpy as np
import pytest
import xarray as xr
from matplotlib.colors import to_rgba
from matplotlib.patches import Rectangle

from pinnlog.analyzer.phases import Phase, PhaseTable
from pinnlog.analyzer.report import figures as F
from pinnlog.analyzer.report.figures_compare import plot_layers_overlay, plot_steps_to_error
from pinnlog.analyzer.report.figures_residuals import plot_residual_distribution


def curve(values, steps=None, name="snr") -> xr.DataArray:
    values = np.asarray(values, dtype=float)
    steps = np.arange(1, values.size + 1) * 10 if steps is None else np.asarray(steps)
    return xr.DataArray(values, dims="step", coords={"step": steps}, name=name)


def per_layer(values, names=None) -> xr.DataArray:
    values = np.asarray(values, dtype=float)
    n_steps, n_layers = values.shape
    names = names or [f"layer_{i}" for i in range(n_layers)]
    return xr.DataArray(
        values,
        dims=("step", "layer"),
        coords={"step": np.arange(1, n_steps + 1) * 3, "layer": np.arange(n_layers), "layer_name": ("layer", names)},
    )


def table(*spans) -> PhaseTable:
    return PhaseTable("snr", [Phase(label, first, last, 1.0, 0.0, 2) for label, first, last in spans])


def lines_with_label(ax, label):
    return [line for line in ax.get_lines() if line.get_label() == label]


def test_snr_line_is_the_input_without_nan_and_keeps_step_zero():
    snr = curve([5.0, 3.0, np.nan, 0.5, 0.7], steps=[0, 2, 4, 8, 16])
    ax = F.plot_snr(snr)
    (line,) = lines_with_label(ax, "SNR")
    keep = np.isfinite(snr.values)
    np.testing.assert_array_equal(line.get_xdata(), snr["step"].values[keep])
    np.testing.assert_array_equal(line.get_ydata(), snr.values[keep])
    # step 0 is drawn: linear from 0 to the first captured step, logarithmic above it
    assert ax.get_xscale() == "symlog" and ax.get_yscale() == "log"
    assert ax.xaxis.get_transform().linthresh == 2.0 and ax.get_xlim()[0] == 0.0  # no negative steps
    # the regime boundary SNR = 1 (paper Fig 2)
    assert any(np.all(np.asarray(l.get_ydata()) == 1.0) for l in ax.get_lines())
    # without a row at step 0 the axis is the paper's plain log axis
    assert F.plot_snr(curve([5.0, 3.0], steps=[1, 10])).get_xscale() == "log"


def test_snr_draws_raw_faintly_behind_the_smoothed_curve():
    raw = curve([4.0, 1.0, 3.0, 0.5])
    smooth = curve([3.0, 2.0, 1.5, 0.5])
    ax = F.plot_snr(smooth, raw=raw)
    lines = ax.get_lines()
    order = {tuple(l.get_ydata()): i for i, l in enumerate(lines)}
    faint, solid = lines[order[tuple(raw.values)]], lines[order[tuple(smooth.values)]]
    assert faint.get_alpha() <= 0.5 and solid.get_alpha() in (None, 1.0)
    assert order[tuple(raw.values)] < order[tuple(smooth.values)]  # behind: drawn first


def test_one_run_phases_are_shaded_from_one_onset_to_the_next_and_labelled():
    phases = table(("fitting", 2, 140), ("diffusion", 150, 11_000), ("total diffusion", 11_100, 300_000))
    ax = F.plot_snr(curve(np.geomspace(10, 0.1, 50), steps=np.geomspace(2, 300_000, 50).astype(int)), phases=phases)
    spans = sorted((r.get_x(), r.get_x() + r.get_width()) for r in ax.patches if isinstance(r, Rectangle))
    assert spans == [(2.0, 150.0), (150.0, 11_100.0), (11_100.0, 300_000.0)]
    assert [t.get_text() for t in ax.texts] == ["fitting", "diffusion", "total diffusion"]
    # a dashed line at every onset after the first
    dashed = sorted(l.get_xdata()[0] for l in ax.get_lines() if l.get_linestyle() == "--")
    assert dashed == [150, 11_100]


def test_overlaid_runs_get_their_own_colour_and_their_own_phase_lines():
    a, b = curve([3.0, 2.0, 1.0]), curve([4.0, 0.5, 0.2])
    colors = F.run_colors(["vanilla", "RBA"])
    phases = {
        "vanilla": table(("fitting", 10, 10), ("diffusion", 20, 30)),
        "RBA": table(("fitting", 10, 10), ("total diffusion", 30, 30)),
    }
    ax = F.plot_snr({"vanilla": a, "RBA": b}, phases=phases)
    for label, values in (("vanilla", a), ("RBA", b)):
        (line,) = lines_with_label(ax, label)
        np.testing.assert_array_equal(line.get_ydata(), values.values)
        assert to_rgba(line.get_color()) == to_rgba(colors[label])
    vlines = {(l.get_xdata()[0], to_rgba(l.get_color())) for l in ax.get_lines() if l.get_linestyle() == "--"}
    assert vlines == {(20, to_rgba(colors["vanilla"])), (30, to_rgba(colors["RBA"]))}
    assert colors["vanilla"] != colors["RBA"]
    assert not [r for r in ax.patches if isinstance(r, Rectangle)]  # no shading when overlaying


def test_gradient_norms_draw_mean_solid_and_std_dashed():
    norms = xr.Dataset({"mean_norm": curve([3.0, 2.0, 1.0]), "std_norm": curve([0.1, 0.5, 2.0])})
    ax = F.plot_gradient_norms(norms)
    (mean,) = lines_with_label(ax, "‖mean‖")
    (std,) = lines_with_label(ax, "‖std‖")
    np.testing.assert_array_equal(mean.get_ydata(), [3.0, 2.0, 1.0])
    np.testing.assert_array_equal(std.get_ydata(), [0.1, 0.5, 2.0])
    assert mean.get_linestyle() == "-" and std.get_linestyle() == "--"


def test_srr_puts_the_measured_test_error_on_a_right_axis():
    error = curve([0.9, np.nan, 0.2, np.nan, 0.05], name="relative_l2")
    ax = F.plot_srr(curve([0.99, 0.9, 0.5, 0.4, 0.6]), curve([0.1, 0.3, 2.0, 1.5, 1.2]), test_error=error)
    right = [other for other in ax.figure.axes if other is not ax]
    assert len(right) == 1 and right[0].get_yscale() == "log"
    (line,) = lines_with_label(right[0], "test error")
    np.testing.assert_array_equal(line.get_ydata(), [0.9, 0.2, 0.05])
    np.testing.assert_array_equal(line.get_xdata(), [10, 30, 50])
    assert [l.get_linestyle() for l in ax.get_lines()[:2]] == ["-", "--"]  # SRR_B solid, SRR_C dashed


def test_test_error_marks_each_threshold():
    ax = F.plot_test_error(curve([1.0, 0.2, 0.01]), thresholds=(0.1, 0.05, 0.01))
    levels = sorted(l.get_ydata()[0] for l in ax.get_lines() if l.get_linestyle() == ":")
    assert levels == [0.01, 0.05, 0.1]
    assert {t.get_text().strip() for t in ax.texts} == {"10%", "5%", "1%"}


def test_per_layer_draws_one_line_per_layer_named_by_layer_name():
    values = np.arange(12, dtype=float).reshape(4, 3) + 1
    ax = F.plot_snr_per_layer(per_layer(values, ["in", "hidden", "out"]))
    for i, name in enumerate(["in", "hidden", "out"]):
        (line,) = lines_with_label(ax, name)
        np.testing.assert_array_equal(line.get_ydata(), values[:, i])


def test_binarization_axis_reads_as_percent():
    ax = F.plot_binarization(per_layer(np.full((3, 2), 0.25)))
    assert ax.yaxis.get_major_formatter()(0.25, 0) == "25%"
    assert ax.get_yscale() == "linear"


def test_layer_overlay_has_one_panel_per_layer_and_one_line_per_run_in_each():
    a = per_layer(np.ones((3, 3)))
    b = per_layer(np.full((3, 2), 2.0))  # fewer layers: panel 2 shows run a only
    colors = F.run_colors(["a", "b"])
    fig = plot_layers_overlay({"a": a, "b": b}, ylabel="SNR", colors=colors)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["layer_0", "layer_1", "layer_2"]
    for i, ax in enumerate(visible):
        runs = {l.get_label(): l for l in ax.get_lines()}
        assert set(runs) == ({"a", "b"} if i < 2 else {"a"})
        assert to_rgba(runs["a"].get_color()) == to_rgba(colors["a"])
        np.testing.assert_array_equal(runs["a"].get_ydata(), a.isel(layer=i).values)


def test_steps_to_error_bars_end_at_the_steps_and_mark_what_was_not_reached():
    steps = {"vanilla": {0.1: 110_800, 0.05: 150_000, 0.01: None}, "RBA": {0.1: 14_600, 0.05: 20_000, 0.01: 90_000}}
    ax = plot_steps_to_error(steps)
    tops = sorted(round(r.get_y() + r.get_height()) for r in ax.patches if isinstance(r, Rectangle) and r.get_height() > 0)
    assert tops == sorted([110_800, 150_000, 14_600, 20_000, 90_000])
    texts = [t.get_text() for t in ax.texts]
    assert texts.count("not reached") == 1
    assert "110,800" in texts and "14,600" in texts
    assert [t.get_text() for t in ax.get_xticklabels()] == ["≤ 10%", "≤ 5%", "≤ 1%"]


@pytest.mark.parametrize("label", ["$\\frac{$", "_hidden", "a$b"])
def test_store_strings_are_drawn_literally(label):
    # A name from the store must neither be parsed as mathtext (a stray '$' raises at draw time)
    # nor vanish from the legend (matplotlib hides labels that start with '_').
    ax = F.plot_snr({label: curve([2.0, 1.0])})
    ax.figure.savefig(io.BytesIO(), format="png")
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(legend) == 1 and legend[0].strip().replace("\\$", "$") == label


def test_residual_distribution_has_one_curve_per_step():
    rng = np.random.default_rng(0)
    residual = xr.DataArray(rng.normal(size=(3, 200)), dims=("step", "sample"), coords={"step": [10, 100, 1000]})
    ax = plot_residual_distribution(residual)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["step 10", "step 100", "step 1,000"]
    assert ax.get_xscale() == "log"


def test_a_value_at_step_zero_alone_is_drawn_not_dropped():
    # a run of one capture: its only test error is at step 0
    ax = F.plot_test_error(curve([0.5], steps=[0]))
    ax.figure.savefig(io.BytesIO(), format="png")
    (line,) = lines_with_label(ax, "snr")
    assert line.get_xdata().tolist() == [0] and line.get_ydata().tolist() == [0.5]
    assert ax.get_xscale() == "symlog"
    # values that are all zero keep the step axis logarithmic but the value axis linear
    ax = F.plot_snr(curve([0.0, 0.0]))
    ax.figure.savefig(io.BytesIO(), format="png")
    assert (ax.get_xscale(), ax.get_yscale()) == ("log", "linear")


def test_loss_terms_are_drawn_dashed_beside_the_loss():
    terms = xr.Dataset({"loss_pde": curve([0.5, 0.2, 0.1]), "loss_bc": curve([0.3, np.nan, 0.01])})
    ax = F.plot_loss(curve([0.8, 0.3, 0.11], name="loss"), terms=terms)
    (pde,) = lines_with_label(ax, "loss_pde")
    (bc,) = lines_with_label(ax, "loss_bc")
    np.testing.assert_array_equal(pde.get_ydata(), [0.5, 0.2, 0.1])
    np.testing.assert_array_equal(bc.get_ydata(), [0.3, 0.01])  # the unrecorded step is left out
    assert pde.get_linestyle() == bc.get_linestyle() == "--"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["loss", "loss_pde", "loss_bc"]


def test_phases_never_widen_the_step_range_of_the_data():
    late = curve([2.0, 1.5, 1.2, 1.1], steps=[200, 1_000, 4_000, 7_800])
    bare = F.plot_snr(late)
    marked = F.plot_snr(late, phases=table(("fitting", 2, 134), ("diffusion", 136, 7_999)))
    assert marked.get_xlim() == bare.get_xlim()
    spans = [(r.get_x(), r.get_x() + r.get_width()) for r in marked.patches if isinstance(r, Rectangle)]
    low, _ = bare.get_xlim()
    assert spans == [(low, 7_999.0)]  # only diffusion is in range: from the axis' left end to its last step
    assert [t.get_text() for t in marked.texts] == ["diffusion"]
