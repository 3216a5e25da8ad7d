"""summary.json: valid against its schema, and every number equal to the metric functions' own."""

from __future__ import annotations

import copy
import json
import math

import jsonschema
import numpy as np
import pytest

from pinnlog.analyzer import metrics as M
from pinnlog.analyzer import open_run
from pinnlog.analyzer.phases import detect_phases
from pinnlog.analyzer.report.comparison import comparison
from pinnlog.analyzer.report.summary import load_schema


def _strict_load(path):
    def no_constants(name):
        raise AssertionError(f"summary.json holds {name}, which is not JSON")

    return json.loads(path.read_text(), parse_constant=no_constants)


def _last_finite(da):
    da = da.compute()
    values = np.asarray(da.values, dtype=float)
    i = np.flatnonzero(np.isfinite(values))[-1]
    return int(da["step"].values[i]), float(values[i])


def test_the_shipped_schema_is_the_one_the_package_loads(schema):
    assert load_schema() == schema
    jsonschema.Draft202012Validator.check_schema(schema)


def test_analyze_and_compare_summaries_validate(full_report, compare_report, schema):
    for report in (full_report, compare_report):
        document = _strict_load(report.summary_json)
        jsonschema.validate(document, schema, format_checker=jsonschema.FormatChecker())
        assert document == json.loads(json.dumps(report.summary))


def test_schema_rejects_documents_that_break_the_contract(full_report, compare_report, schema):
    validator = jsonschema.Draft202012Validator(schema)
    broken = copy.deepcopy(compare_report.summary)
    broken["comparison"] = None  # a comparison without its ratios
    assert not validator.is_valid(broken)
    broken = copy.deepcopy(full_report.summary)
    broken["runs"] = broken["runs"] * 2  # analyze has one run
    assert not validator.is_valid(broken)
    broken = copy.deepcopy(full_report.summary)
    broken["runs"][0]["final"]["snr"] = {"step": 3, "value": "high"}
    assert not validator.is_valid(broken)


def test_final_values_equal_the_metric_functions(full_store, full_report):
    run = open_run(full_store)
    final = full_report.summary["runs"][0]["final"]
    for key, metric in (
        ("snr", M.snr(run)),
        ("srr_b", M.srr_b(run)),
        ("srr_c", M.srr_c(run)),
        ("test_error", M.relative_l2(run)),
        ("loss", run["scalars"]["loss"]),
    ):
        step, value = _last_finite(metric)
        assert final[key] == {"step": step, "value": pytest.approx(value, rel=1e-12)}, key
    error = M.relative_l2(run).compute()
    i = int(np.nanargmin(error.values))
    assert final["min_test_error"] == {"step": int(error["step"][i]), "value": pytest.approx(float(error[i]))}


def test_final_snr_equals_a_numpy_computation_on_the_batch_gradients(full_report, full_truth):
    truth = full_truth
    weights = np.concatenate([np.full(t["numel"], not t["is_bias"]) for t in truth.layout])
    g = truth.gradients[-1][:, weights].astype(np.float64)  # (K, P) at the last capture
    expected = np.linalg.norm(g.mean(axis=0)) / np.linalg.norm(g.std(axis=0))  # Eq 8, ddof=0
    final = full_report.summary["runs"][0]["final"]["snr"]
    assert final["step"] == truth.steps[-1]
    assert final["value"] == pytest.approx(expected, rel=1e-9)


def test_steps_to_error_equal_a_loop_over_the_recorded_error(full_report, full_store, full_truth):
    truth = full_truth
    rows = full_report.summary["runs"][0]["steps_to_error"]
    assert [r["threshold"] for r in rows] == [0.1, 0.05, 0.01]
    run = open_run(full_store)
    for row in rows:
        first = None
        for step, error in zip(truth.scalar_steps, truth.test_error):
            if not math.isnan(error) and error <= row["threshold"]:
                first = int(step)
                break
        assert row["step"] == first == M.steps_to_error(M.relative_l2(run), row["threshold"])


def test_phases_are_those_detected_on_the_raw_snr(full_store, full_report):
    table = detect_phases(M.snr(open_run(full_store)).compute())
    rows = full_report.summary["runs"][0]["phases"]
    assert [(r["label"], r["first_step"], r["last_step"]) for r in rows] == [
        (p.label, p.first_step, p.last_step) for p in table.phases
    ]
    assert [r["median_snr"] for r in rows] == pytest.approx([p.median for p in table.phases], rel=1e-12)


def test_smoothing_changes_the_drawing_only(full_report, compare_report):
    # the same store reported with two windows: every number of summary.json is the same
    assert full_report.summary["options"]["smooth"] == 5 and compare_report.summary["options"]["smooth"] == 3
    smoothed_5 = full_report.summary["runs"][0]
    smoothed_3 = next(r for r in compare_report.summary["runs"] if r["label"] == "full")
    for key in ("final", "phases", "steps_to_error", "recorded", "steps"):
        assert smoothed_5[key] == smoothed_3[key]


def test_metadata_and_recorded_rows_come_from_the_store(full_report, full_truth):
    truth = full_truth
    run = full_report.summary["runs"][0]
    assert run["metadata"]["config"] == {"synthetic": True}
    assert run["metadata"]["layers"] == [layer["name"] for layer in truth.layers]
    assert run["metadata"]["n_parameters"] == sum(t["numel"] for t in truth.layout)
    assert run["recorded"]["gradient_stats"] == truth.steps.size
    assert run["recorded"]["scalars"] == truth.scalar_steps.size
    assert run["recorded"]["residuals"] == truth.probe_rows.size
    assert run["steps"] == {"first": 0, "last": int(truth.steps[-1])}


def _run_doc(label, steps, phases):
    return {
        "label": label,
        "steps_to_error": [{"threshold": t, "step": s} for t, s in steps.items()],
        "phases": [{"label": name, "first_step": a, "last_step": b, "median_snr": m, "slope": 0.0} for name, a, b, m in phases],
    }


def test_comparison_ratios_follow_their_definitions():
    vanilla = _run_doc(
        "vanilla",
        {0.1: 110_800, 0.05: 160_000, 0.01: None},
        [("fitting", 2, 140, 30.0), ("diffusion", 150, 91_600, 0.1), ("total diffusion", 91_700, 300_000, 2.0)],
    )
    rba = _run_doc(
        "RBA",
        {0.1: 14_600, 0.05: 20_000, 0.01: 100_000},
        [("fitting", 2, 140, 30.0), ("diffusion", 150, 11_000, 0.1), ("total diffusion", 11_100, 300_000, 3.0)],
    )
    result = comparison([vanilla, rba], [0.1, 0.05, 0.01])
    assert result["reference"] == "vanilla"
    first = result["speedups"][0]
    assert first["speedup"] == pytest.approx(110_800 / 14_600)
    assert first["text"] == "RBA reaches 10% test error 7.6× sooner than vanilla (14,600 vs 110,800 steps)"
    assert result["speedups"][2]["speedup"] is None
    assert result["speedups"][2]["text"] == "RBA reaches 1% test error at step 100,000; vanilla never does"
    assert [e["fastest"] for e in result["steps_to_error"]] == ["RBA", "RBA", "RBA"]
    total = next(d for d in result["phase_differences"] if d["phase"] == "total diffusion")
    assert total["onset_ratio"] == pytest.approx(91_700 / 11_100)
    assert total["run_duration"] == 300_000 - 11_100 and total["reference_duration"] == 300_000 - 91_700
    assert total["median_snr_ratio"] == pytest.approx(3.0 / 2.0)
