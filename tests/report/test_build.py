"""Orchestration: names and places, one compute pass, what is drawn, and refusals."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from pinnlog.analyzer import metrics as M
from pinnlog.analyzer import open_run
from pinnlog.analyzer.report import build
from pinnlog.analyzer.report.build import (
    NothingToReportError,
    ReportArgumentError,
    ReportOutputError,
    analyze_run,
    auto_smooth,
    compare_runs,
    default_out_dir,
    run_label,
)
from pinnlog.analyzer.report.compose import RunResult, compose_figures


def test_run_names_and_default_output_places(tmp_path, monkeypatch):
    assert run_label("runs/ac_rba.zarr") == "ac_rba"
    assert run_label("runs/ac_rba.zarr/") == "ac_rba"
    assert run_label("s3://bucket/exp/run7.zarr") == "run7"
    assert run_label("runs/plain") == "plain"
    assert default_out_dir(tmp_path / "runs" / "ac.zarr") == tmp_path / "runs" / "ac_report"
    monkeypatch.chdir(tmp_path)
    assert default_out_dir("memory://somewhere/x.zarr") == tmp_path / "x_report"


def _tree(n_captures: int) -> xr.DataTree:
    stats = xr.Dataset(coords={"step": np.arange(n_captures)})
    return xr.DataTree(children={"gradient_stats": xr.DataTree(stats)})


@pytest.mark.parametrize(("captures", "window"), [(14, 1), (99, 1), (100, 2), (1_000, 20), (3_150, 60), (10**5, 60)])
def test_auto_smoothing_is_one_window_per_50_captures_up_to_the_authors_60(captures, window):
    assert auto_smooth([_tree(captures)]) == window


def test_compared_runs_share_the_smallest_window():
    assert auto_smooth([_tree(3_150), _tree(500)]) == 10


def test_metrics_are_computed_in_one_pass(full_store, tmp_path, count_computes):
    with count_computes() as counter:
        analyze_run(full_store, tmp_path, smooth=3)
    assert counter.calls == 1


def test_the_drawn_snr_is_the_ratio_of_the_smoothed_norms(full_store):
    run = open_run(full_store)
    lazy, missing = build.lazy_metrics(run, 4)
    values, _ = build.compute_all(lazy, None, lambda *args: None, "computing")
    result = RunResult("run", str(full_store), {}, {}, values, missing, None, None, {0.1: None}, smooth=4)
    drawn = next(item for item in compose_figures([result]) if item.name == "snr")
    solid = next(line for line in drawn.figure.axes[0].get_lines() if line.get_label() == "SNR, moving average of 4 captures")
    expected = M.smoothed_snr(run, 4).compute()  # sma(‖μ‖) / sma(‖σ‖), as the authors draw it
    keep = np.isfinite(expected.values)  # step 0 is drawn too (symlog step axis)
    np.testing.assert_allclose(solid.get_ydata(), expected.values[keep], rtol=1e-12)
    raw = next(line for line in drawn.figure.axes[0].get_lines() if line.get_label() == "raw")
    raw_snr = M.snr(run).compute()
    np.testing.assert_allclose(raw.get_ydata(), raw_snr.values[np.isfinite(raw_snr.values)], rtol=1e-12)


def test_a_store_with_nothing_drawable_is_refused(tmp_path):
    from pinnlog.analyzer.store.write import RunWriter

    store = RunWriter(tmp_path / "clock.zarr", {})
    store.append("scalars", {"step": np.arange(3), "wall_time": np.arange(3.0)})
    store.close()
    with pytest.raises(NothingToReportError, match="holds none of the data a report draws"):
        analyze_run(tmp_path / "clock.zarr", tmp_path / "out")
    assert not (tmp_path / "out").exists()  # refused before writing anything


def test_bad_options_and_outputs_are_refused_before_any_work(full_store, tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ReportOutputError, match="is a file"):
        analyze_run(full_store, tmp_path / "file")
    with pytest.raises(ReportArgumentError, match="--smooth"):
        analyze_run(full_store, tmp_path, smooth=0)
    with pytest.raises(ReportArgumentError, match="--threshold must be a positive test error"):
        analyze_run(full_store, tmp_path, thresholds=(0.1, -1.0))
    with pytest.raises(ReportArgumentError, match="at least two runs"):
        compare_runs([full_store], out_dir=tmp_path)
    with pytest.raises(ReportArgumentError, match="one --label per run"):
        compare_runs([full_store, full_store], ["a"], tmp_path)


def test_comparing_a_run_with_itself_gets_distinct_default_labels(sparse_store, tmp_path):
    report = compare_runs([sparse_store, sparse_store], out_dir=tmp_path, smooth=1)
    assert [r["label"] for r in report.summary["runs"]] == ["sparse (1)", "sparse (2)"]
    assert {s["speedup"] for s in report.summary["comparison"]["speedups"]} == {1.0}


def test_a_store_behind_a_url_is_analyzed_and_reported_in_the_current_directory(write_run, synthetic_run, tmp_path, monkeypatch):
    truth = synthetic_run(n_steps=8, layers=(2, 4, 1), seed=9)
    url = write_run("memory://report-test/url_run.zarr", truth)
    monkeypatch.chdir(tmp_path)
    report = analyze_run(url, smooth=1)
    assert report.out_dir == tmp_path / "url_run_report"
    run = report.summary["runs"][0]
    assert run["path"] == "memory://report-test/url_run.zarr" and run["label"] == "url_run"
    g = truth.gradients[-1].astype(np.float64)[:, np.concatenate([np.full(t["numel"], not t["is_bias"]) for t in truth.layout])]
    assert run["final"]["snr"]["value"] == pytest.approx(np.linalg.norm(g.mean(axis=0)) / np.linalg.norm(g.std(axis=0)), rel=1e-9)


def test_loss_terms_are_the_loss_prefixed_scalars(tmp_path):
    from pinnlog.analyzer.store.write import RunWriter

    store = RunWriter(tmp_path / "terms.zarr", {})
    store.append(
        "scalars",
        {
            "step": np.arange(4),
            "loss": np.ones(4),
            "loss_pde": np.ones(4),
            "loss_bc": np.ones(4),
            "lr": np.ones(4),
            "wall_time": np.arange(4.0),
        },
    )
    store.close()
    lazy, missing = build.lazy_metrics(open_run(tmp_path / "terms.zarr"), 1)
    assert sorted(lazy["loss_terms"].data_vars) == ["loss_bc", "loss_pde"]
    assert "gradient_stats" in missing["snr"]


def test_figures_drawn_on_two_processes_are_those_drawn_in_one(full_store, tmp_path):
    from pinnlog.analyzer.phases import detect_phases
    from pinnlog.analyzer.report.drawing import draw_figures

    run = open_run(full_store)
    lazy, missing = build.lazy_metrics(run, 3)
    values, _ = build.compute_all(lazy, None, lambda *args: None, "computing")
    result = RunResult("run", str(full_store), {}, {}, values, missing, detect_phases(values["snr"]), None, {0.1: None}, smooth=3)
    calls = []
    drawn = {}
    for processes in (1, 2):
        (tmp_path / str(processes)).mkdir()
        drawn[processes] = draw_figures([result], tmp_path / str(processes), lambda *a: calls.append(a), processes=processes)
    (figures_1, pngs_1, skipped_1), (figures_2, pngs_2, skipped_2) = drawn[1], drawn[2]
    assert figures_1 == figures_2 and skipped_1 == skipped_2 and pngs_1.keys() == pngs_2.keys()
    for name, png in pngs_1.items():
        assert png == pngs_2[name] == (tmp_path / "2" / f"{name}.png").read_bytes(), name
    from pinnlog.analyzer.report.compose import FIGURES

    assert calls[-1] == ("drawing figures", len(FIGURES), len(FIGURES))  # one step per figure kind
