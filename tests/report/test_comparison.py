"""What `pinnlog compare` concludes, checked against independent numpy computations.

The curves are small synthetic test-error curves (and stores whose test error is overwritten with them);
every expected step, ratio and error below is computed here with numpy, not by the comparison code.
"""

from __future__ import annotations

import io
import json

import jsonschema
import numpy as np
import pytest
import xarray as xr
import zarr
from matplotlib.patches import Rectangle

from pinnlog.analyzer import metrics as M
from pinnlog.analyzer.io import open_run
from pinnlog.analyzer.report.comparison import (
    FIRST_ERROR_FRACTIONS,
    NO_TOTAL_DIFFUSION,
    adaptive_thresholds,
    comparison,
    errors_side_by_side,
    phase_onsets,
)
from pinnlog.analyzer.report.figures_compare import plot_dynamics, plot_steps_to_error

STEPS = np.arange(0, 1_000, 10)


def curve(values, steps=STEPS) -> xr.DataArray:
    return xr.DataArray(np.asarray(values, dtype=float), dims="step", coords={"step": np.asarray(steps)}, name="test_error")


def first_at_or_below(steps, values, level):
    """Independent: the first step whose (finite) value is <= level, by a plain loop."""
    for step, value in zip(steps, values, strict=True):
        if np.isfinite(value) and value <= level:
            return int(step)
    return None


def doc(label, phases=(), last=None):
    rows = [{"label": n, "first_step": a, "last_step": b, "median_snr": 1.0, "slope": 0.0} for n, a, b in phases]
    return {"label": label, "steps_to_error": [], "phases": rows, "steps": {"first": 0, "last": last}}


# vanilla stalls above 20 %; RBA reaches 10 % at step 400 and 5 % at 700
VANILLA = 1.0 - 0.78 * (1 - np.exp(-STEPS / 300.0))
RBA = np.exp(-STEPS / 170.0)


def test_a_threshold_only_one_run_reaches_falls_back_to_the_lowest_error_both_reach():
    curves = {"vanilla": curve(VANILLA), "RBA": curve(RBA)}
    result = comparison([doc("vanilla", last=990), doc("RBA", last=990)], [0.1, 0.05], curves)
    both = max(VANILLA.min(), RBA.min())  # the lowest level both reach: vanilla's best
    a, b = first_at_or_below(STEPS, RBA, both), first_at_or_below(STEPS, VANILLA, both)
    assert result["headline_threshold"]["threshold"] == pytest.approx(both)
    assert result["headline_threshold"]["basis"] == "best reached"
    ten = first_at_or_below(STEPS, RBA, 0.1)
    assert result["headline"] == (
        f"RBA generalises sooner: it reaches {both * 100:.3g}% test error (vanilla's best) {b / a:.1f}× sooner than "
        f"vanilla ({a:,} vs {b:,} steps); at 10% test error only RBA at step {ten:,} gets there, vanilla never does in 990 steps"
    )
    # no "neither ..." line: every speed-up names a level at least one run reaches
    assert all(not s["text"].startswith("neither") for s in result["speedups"])
    ten_row = next(s for s in result["speedups"] if s["threshold"] == 0.1)
    assert ten_row["text"] == f"RBA reaches 10% test error at step {ten:,}; vanilla never does in 990 steps"


def test_adaptive_levels_are_fractions_of_the_first_error_someone_reaches_and_the_worst_best():
    curves = {"vanilla": curve(VANILLA), "RBA": curve(RBA)}
    levels = adaptive_thresholds(curves, "vanilla")
    e0 = VANILLA[0]
    best = min(VANILLA.min(), RBA.min())
    expected = {max(VANILLA.min(), RBA.min())} | {f * e0 for f in FIRST_ERROR_FRACTIONS if f * e0 > best}
    assert sorted(t["threshold"] for t in levels) == pytest.approx(sorted(expected))
    assert [t["threshold"] for t in levels] == sorted((t["threshold"] for t in levels), reverse=True)
    result = comparison([doc("vanilla"), doc("RBA")], [0.01], curves)
    for row in result["steps_to_error"]:
        for label, values in (("vanilla", VANILLA), ("RBA", RBA)):
            assert row["steps"][label] == first_at_or_below(STEPS, values, row["threshold"])


def test_when_both_reach_requested_thresholds_the_headline_uses_the_lowest_of_them():
    slow = np.exp(-STEPS / 300.0)
    curves = {"vanilla": curve(slow), "RBA": curve(RBA)}
    result = comparison([doc("vanilla"), doc("RBA")], [0.1, 0.05, 0.001], curves)
    a, b = first_at_or_below(STEPS, RBA, 0.05), first_at_or_below(STEPS, slow, 0.05)
    assert (
        result["headline"]
        == f"RBA generalises sooner: it reaches 5% test error {b / a:.1f}× sooner than vanilla ({a:,} vs {b:,} steps)"
    )
    assert all(t["basis"] == "requested" for t in result["steps_to_error"])  # nothing adaptive needed
    assert 0.001 not in [s["threshold"] for s in result["speedups"]]  # reached by neither: no line


def test_the_reference_can_be_the_sooner_run():
    result = comparison([doc("RBA"), doc("vanilla")], [0.5], {"RBA": curve(RBA), "vanilla": curve(VANILLA)})
    a, b = first_at_or_below(STEPS, RBA, 0.5), first_at_or_below(STEPS, VANILLA, 0.5)
    assert result["headline"].startswith(f"RBA generalises sooner: it reaches 50% test error {b / a:.1f}× sooner than vanilla")


def test_errors_side_by_side_are_the_curves_values():
    rng = np.random.default_rng(1)
    a = rng.uniform(0.1, 1.0, STEPS.size)
    b_steps = np.arange(0, 800, 20)  # shorter and sparser: the matched steps are common ones
    b = rng.uniform(0.1, 1.0, b_steps.size)
    b[3] = np.nan
    result = errors_side_by_side({"a": curve(a), "b": curve(b, b_steps)})
    assert result["lowest"]["a"] == {"step": int(STEPS[np.argmin(a)]), "value": float(a.min())}
    assert result["lowest"]["b"]["value"] == float(np.nanmin(b))
    assert result["final"]["b"] == {"step": 780, "value": float(b[-1])}
    common = np.intersect1d(STEPS, b_steps[np.isfinite(b)])
    assert result["at_steps"][-1]["step"] == int(common[-1])
    for row in result["at_steps"]:
        assert row["step"] in common
        assert row["errors"]["a"] == float(a[row["step"] == STEPS][0])
        assert row["errors"]["b"] == float(b[b_steps == row["step"]][0])


def test_phase_onsets_with_ratios_and_a_note_where_total_diffusion_is_missing():
    vanilla = doc("vanilla", [("fitting", 2, 140), ("diffusion", 150, 9_999)], last=9_999)
    rba = doc("RBA", [("fitting", 2, 60), ("diffusion", 62, 1_190), ("total diffusion", 1_200, 9_999)], last=9_999)
    rows, notes = phase_onsets([vanilla, rba])
    by_phase = {r["phase"]: r for r in rows}
    assert list(by_phase) == ["fitting", "diffusion", "total diffusion"]
    assert by_phase["diffusion"]["onsets"] == {"vanilla": 150, "RBA": 62}
    assert by_phase["diffusion"]["ratios"]["RBA"] == pytest.approx(150 / 62)
    assert by_phase["total diffusion"]["onsets"] == {"vanilla": None, "RBA": 1_200}
    assert by_phase["total diffusion"]["ratios"]["RBA"] is None
    assert notes == [f"vanilla: {NO_TOTAL_DIFFUSION} (9,999 steps)"]
    assert NO_TOTAL_DIFFUSION == "no total diffusion detected — the run may be too short"


def test_steps_to_error_chart_takes_named_levels_and_is_never_empty():
    steps = {"vanilla": {"19.8% (vanilla's best)": 5_600, "10%": None}, "RBA": {"19.8% (vanilla's best)": 50, "10%": 400}}
    ax = plot_steps_to_error(steps)
    tops = sorted(round(r.get_y() + r.get_height()) for r in ax.patches if isinstance(r, Rectangle) and r.get_height() > 0)
    assert tops == [50, 400, 5_600]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["≤ 19.8% (vanilla's best)", "≤ 10%"]
    nobody = plot_steps_to_error({"a": {0.1: None}, "b": {0.1: None}})
    assert not any(isinstance(r, Rectangle) and r.get_height() > 0 for r in nobody.patches)
    assert [t.get_text() for t in nobody.texts] == ["no run reached any of these test errors"]


def test_dynamics_figure_draws_each_runs_curves():
    snr = {"a": curve(np.geomspace(100, 0.1, STEPS.size)), "b": curve(np.geomspace(10, 1, STEPS.size))}
    errors = {"a": curve(VANILLA), "b": curve(RBA)}
    cv = xr.Dataset({"cv": curve(np.linspace(3, 1, STEPS.size)), "max_over_mean": curve(np.linspace(9, 2, STEPS.size))})
    weights = xr.Dataset({k: curve(np.linspace(0, v, STEPS.size)) for k, v in (("mean", 0.5), ("min", 0.1), ("max", 1.0))})
    fig = plot_dynamics(snr, errors, homogeneity={"a": cv}, rba_weight={"b": weights}, level=(0.2, "20%"))
    a, b, c, d = fig.axes
    shown = slice(None)  # the step axis starts at 0 (issue 18): every capture is drawn, step 0 too
    np.testing.assert_array_equal(next(l for l in a.get_lines() if l.get_label() == "a").get_ydata(), snr["a"].values[shown])
    line = {l.get_label(): l for l in b.get_lines() if l.get_label() in ("a", "b")}
    np.testing.assert_array_equal(line["b"].get_ydata(), RBA[shown])
    np.testing.assert_array_equal(c.get_lines()[0].get_ydata(), cv["cv"].values[shown])
    np.testing.assert_array_equal(d.get_lines()[0].get_ydata(), weights["mean"].values[shown])
    assert any(np.allclose(l.get_ydata(), 0.2) for l in b.get_lines())  # the headline's level
    fig.savefig(io.BytesIO(), format="png")


def test_rba_weight_spread_equals_numpy(make_store, tmp_path):
    path = make_store(tmp_path, n_steps=12, residuals=64, seed=2)
    run = open_run(path)
    spread = M.rba_weight_spread(run).compute()
    weights = zarr.open_group(str(path), mode="r")["residuals"]["rba_weight"][:].astype(np.float64)
    weights = weights[: spread.sizes["step"]]
    np.testing.assert_allclose(spread["mean"].values, weights.mean(axis=1))
    np.testing.assert_allclose(spread["max"].values, weights.max(axis=1))
    np.testing.assert_allclose(spread["mean_over_max"].values, weights.mean(axis=1) / weights.max(axis=1))


def _set_test_error(path, values_at):
    """Overwrite a store's test error with ``values_at(step)`` where it was measured."""
    scalars = zarr.open_group(str(path), mode="r+")["scalars"]
    steps = scalars["step"][:]
    error = scalars["test_error"][:]
    measured = np.isfinite(error)
    error[measured] = values_at(steps[measured])
    scalars["test_error"][:] = error
    return steps[measured], error[measured]


def test_compare_report_headline_and_chart_match_the_stores(make_store, drop_manifest, tmp_path, schema):
    from pinnlog.analyzer.report import compare_runs

    # their test errors are rewritten through plain zarr below
    slow = drop_manifest(make_store(tmp_path / "s", n_steps=60, seed=5, residuals=True, name="slow.zarr"))
    fast = drop_manifest(make_store(tmp_path / "f", n_steps=60, seed=6, residuals=True, name="fast.zarr"))
    s_steps, s_err = _set_test_error(slow, lambda s: 1.0 - 0.5 * (1 - np.exp(-s / 20.0)))
    f_steps, f_err = _set_test_error(fast, lambda s: np.exp(-s / 15.0))
    report = compare_runs([slow, fast], ["slow", "fast"], tmp_path / "cmp", smooth=1)
    document = json.loads(report.summary_json.read_text())
    jsonschema.validate(document, schema)
    comparison_ = document["comparison"]
    both = max(s_err.min(), f_err.min())
    a, b = first_at_or_below(f_steps, f_err, both), first_at_or_below(s_steps, s_err, both)
    assert comparison_["headline"].startswith(
        f"fast generalises sooner: it reaches {both * 100:.3g}% test error (slow's best) {b / a:.1f}× sooner than slow"
    )
    html = report.html.read_text()
    assert "generalises sooner" in html and "Test error side by side" in html and "Phase onsets" in html
    names = [f["name"] for f in document["figures"]]
    assert "dynamics" in names and "steps_to_error" in names
    row = next(r for r in comparison_["steps_to_error"] if r["basis"] == "best reached")
    assert row["steps"] == {"slow": b, "fast": a}
