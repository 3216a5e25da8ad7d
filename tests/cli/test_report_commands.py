"""``pinnlog analyze`` and ``pinnlog compare`` through the real entry point: outputs, options, exit codes."""

from __future__ import annotations

import io
import json
import shutil
import time

import jsonschema
import numpy as np
import pytest
import zarr
from rich.console import Console

from pinnlog.analyzer import metrics as M
from pinnlog.analyzer import open_run
from pinnlog.analyzer.report import build
from pinnlog.analyzer.report.progress import DelayedProgress
from pinnlog.analyzer.report.summary import load_schema
from pinnlog.analyzer.store.write import RunWriter


@pytest.fixture(scope="module")
def stores(tmp_path_factory, make_store):
    tmp = tmp_path_factory.mktemp("cli_stores")
    small = make_store(tmp, n_steps=14, layers=(2, 4, 1), seed=7, name="small.zarr")
    other = make_store(tmp, n_steps=14, layers=(2, 4, 1), seed=8, adam=False, name="other.zarr")
    return small, other


def one_line_error(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr and result.stdout == ""
    return lines[0]


def test_analyze_writes_the_report_beside_the_run_and_quiet_prints_nothing(cli, stores, tmp_path):
    run = shutil.copytree(stores[0], tmp_path / "ac.zarr")
    result = cli("analyze", run, "--quiet")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""
    out = tmp_path / "ac_report"
    summary = json.loads((out / "summary.json").read_text())
    jsonschema.validate(summary, load_schema())
    assert summary["kind"] == "analyze" and summary["runs"][0]["label"] == "ac"
    assert (out / "report.html").is_file()
    for figure in summary["figures"]:
        assert (out / figure["png"]).stat().st_size > 0 and (out / figure["svg"]).stat().st_size > 0
    step, value = int(M.snr(open_run(run))["step"][-1]), float(M.snr(open_run(run)).compute()[-1])
    assert summary["runs"][0]["final"]["snr"] == {"step": step, "value": pytest.approx(value, rel=1e-12)}
    assert summary["options"]["smooth"] == 1  # auto: 14 captures are too few to smooth


def test_compare_uses_the_labels_and_prints_the_ratios(cli, stores, tmp_path):
    result = cli(
        "compare",
        *stores,
        "--label",
        "adam",
        "-l",
        "sgd",
        "-o",
        tmp_path / "cmp",
        "--smooth",
        "2",
        "-t",
        "0.5",
        "--threshold",
        "0.2",
    )
    assert result.exit_code == 0, result.stderr
    summary = json.loads((tmp_path / "cmp" / "summary.json").read_text())
    jsonschema.validate(summary, load_schema())
    assert [r["label"] for r in summary["runs"]] == ["adam", "sgd"]
    assert summary["options"]["thresholds"] == [0.5, 0.2]
    for run, store in zip(summary["runs"], stores, strict=True):
        error = M.relative_l2(open_run(store))
        assert run["steps_to_error"] == [{"threshold": t, "step": M.steps_to_error(error, t)} for t in (0.5, 0.2)]
    assert summary["comparison"]["reference"] == "adam" and summary["options"]["smooth"] == 2
    for speedup in summary["comparison"]["speedups"]:
        assert speedup["text"] in result.stdout
    for run in summary["runs"]:
        assert f"phases of {run['label']}" in result.stdout
    assert (tmp_path / "cmp" / "steps_to_error.png").is_file()
    assert "wrote " in result.stdout


def test_help_reads_like_a_manual_page(cli):
    for command in ("analyze", "compare"):
        result = cli(command, "--help")
        assert result.exit_code == 0
        for word in ("Exit status", "--out", "--smooth", "--threshold", "--scheduler", "--quiet", "summary.json"):
            assert word in result.stdout, (command, word)
    assert "--label" in cli("compare", "--help").stdout


def _not_a_store(tmp_path):
    (tmp_path / "plain").mkdir()
    return ["analyze", tmp_path / "plain"]


def _no_format(tmp_path):
    zarr.open_group(tmp_path / "foreign.zarr", mode="w", zarr_format=3).attrs["something"] = 1
    return ["analyze", tmp_path / "foreign.zarr"]


def _future_format(tmp_path):
    zarr.open_group(tmp_path / "future.zarr", mode="w", zarr_format=3).attrs["pinnlog_format"] = 99
    return ["analyze", tmp_path / "future.zarr"]


def _empty(tmp_path):
    RunWriter(tmp_path / "empty.zarr", {}).close()
    return ["analyze", tmp_path / "empty.zarr"]


def _wall_time_only(tmp_path):
    store = RunWriter(tmp_path / "clock.zarr", {})
    store.append("scalars", {"step": np.arange(3), "wall_time": np.arange(3.0)})
    store.close()
    return ["analyze", tmp_path / "clock.zarr"]


def _a_file(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    return ["analyze", tmp_path / "notes.txt"]


def _output_is_a_file(tmp_path, stores):
    (tmp_path / "taken").write_text("")
    return ["analyze", stores[0], "-o", tmp_path / "taken"]


BAD_INPUTS = {
    "missing path": (lambda tmp, stores: ["analyze", tmp / "nope.zarr"], "no such run store; check the path"),
    "a file": (lambda tmp, stores: _a_file(tmp), "is a file, not a run store"),
    "plain directory": (lambda tmp, stores: _not_a_store(tmp), "is not a Zarr v3 store"),
    "zarr but not pinnlog": (lambda tmp, stores: _no_format(tmp), "not a pinnlog run"),
    "unknown format": (lambda tmp, stores: _future_format(tmp), "pinnlog_format=99"),
    "nothing committed": (lambda tmp, stores: _empty(tmp), "holds no committed step"),
    "nothing drawable": (lambda tmp, stores: _wall_time_only(tmp), "holds none of the data a report draws"),
    "unknown option": (lambda tmp, stores: ["analyze", stores[0], "--bogus"], "No such option: --bogus"),
    "smooth below one": (lambda tmp, stores: ["analyze", stores[0], "--smooth", "0"], "'--smooth'"),
    "threshold not positive": (
        lambda tmp, stores: ["analyze", stores[0], "-t", "0"],
        "a fraction in (0, 1) such as 0.05, or a percentage such as 5%",
    ),
    "threshold not a number": (
        lambda tmp, stores: ["compare", *stores, "-t", "ten"],
        "-t/--threshold 'ten': give a fraction in (0, 1)",
    ),
    "output is a file": (_output_is_a_file, "is a file"),
    "missing run": (lambda tmp, stores: ["analyze"], "Missing argument 'run'; see 'pinnlog analyze --help'"),
    "compare one run": (lambda tmp, stores: ["compare", stores[0]], "at least two runs"),
    "labels do not match": (lambda tmp, stores: ["compare", *stores, "--label", "a"], "got 1 --label for 2 runs"),
    "duplicate labels": (lambda tmp, stores: ["compare", *stores, "-l", "a", "-l", "a"], "must be distinct"),
    "compare bad path": (lambda tmp, stores: ["compare", stores[0], tmp / "gone.zarr"], "gone.zarr: no such run"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_each_user_mistake_exits_2_with_one_line(cli, stores, tmp_path, case):
    make_args, fragment = BAD_INPUTS[case]
    result = cli(*make_args(tmp_path, stores))
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert fragment in one_line_error(result)


def test_an_unreachable_scheduler_is_a_user_mistake_named_by_address(cli, stores, tmp_path, monkeypatch):
    monkeypatch.setattr(build, "SCHEDULER_CONNECT_TIMEOUT", "0.5s")
    result = cli("analyze", stores[0], "-o", tmp_path, "--scheduler", "tcp://127.0.0.1:9")
    assert result.exit_code == 2
    assert "cannot reach the dask scheduler at tcp://127.0.0.1:9" in one_line_error(result)
    # the environment variable is the option's default
    result = cli("analyze", stores[0], "-o", tmp_path, env={"DASK_SCHEDULER_ADDRESS": "tcp://127.0.0.1:7"})
    assert result.exit_code == 2
    assert "tcp://127.0.0.1:7" in one_line_error(result)


def test_a_distributed_scheduler_gives_the_same_numbers(cli, stores, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0") as cluster:
        result = cli("analyze", stores[0], "-o", tmp_path / "dist", "-q", "--scheduler", cluster.scheduler_address)
    assert result.exit_code == 0, result.stderr
    local = build.analyze_run(stores[0], tmp_path / "local")
    remote = json.loads((tmp_path / "dist" / "summary.json").read_text())
    assert remote["options"]["scheduler"] == cluster.scheduler_address
    for key in ("final", "phases", "steps_to_error", "recorded"):
        assert remote["runs"][0][key] == local.summary["runs"][0][key]


def test_an_internal_error_exits_3(cli, stores, tmp_path, monkeypatch):
    import pinnlog.analyzer.report as report

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(report, "analyze_run", broken)
    result = cli("analyze", stores[0], "-o", tmp_path)
    assert result.exit_code == 3
    assert "RuntimeError: a bug" in result.stderr and "internal error: this is a bug" in result.stderr


def test_progress_appears_only_for_work_longer_than_the_delay():
    def run(delay, seconds):
        sink = io.StringIO()
        console = Console(file=sink, force_terminal=True, width=100)
        with DelayedProgress(console, delay=delay) as progress:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                progress("computing metrics", 1, 2)
                time.sleep(0.02)
        return sink.getvalue()

    assert run(delay=5.0, seconds=0.2) == ""
    assert "computing metrics" in run(delay=0.05, seconds=0.5)
    sink = io.StringIO()
    with DelayedProgress(Console(file=sink, force_terminal=True), delay=0.0, enabled=False) as progress:
        progress("computing metrics", 1, 2)
        time.sleep(0.1)
    assert sink.getvalue() == ""
