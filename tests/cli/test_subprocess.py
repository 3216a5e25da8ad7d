"""The installed ``pinnlog`` console script in a real process: outputs, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from pinnlog.analyzer import metrics as M
from pinnlog.analyzer import open_run
from pinnlog.analyzer.report.summary import load_schema

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_STORES = sorted((ROOT / "sample_logs").glob("*.zarr"))
PINNLOG = Path(sys.executable).parent / "pinnlog"


def pinnlog(*args, timeout=300, **kwargs) -> subprocess.CompletedProcess:
    command = [str(PINNLOG)] if PINNLOG.exists() else [sys.executable, "-c", "from pinnlog.analyzer.cli import main; main()"]
    env = {**os.environ, "COLUMNS": "120"}
    return subprocess.run(command + [str(a) for a in args], capture_output=True, text=True, timeout=timeout, env=env, **kwargs)


def test_analyze_in_a_subprocess(make_store, tmp_path):
    store = make_store(tmp_path, n_steps=12, layers=(2, 4, 1), seed=11, name="proc.zarr")
    done = pinnlog("analyze", store, "-o", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    jsonschema.validate(summary, load_schema())
    assert f"wrote {tmp_path / 'out' / 'report.html'}" in " ".join(done.stdout.split())
    value = float(M.snr(open_run(store)).compute()[-1])
    assert summary["runs"][0]["final"]["snr"]["value"] == pytest.approx(value, rel=1e-12)


@pytest.mark.skipif(len(SAMPLE_STORES) < 2, reason="sample_logs/ holds fewer than two *.zarr stores")
def test_the_sample_stores_compare_in_a_subprocess(tmp_path):
    # one process analyses every sample store (compare computes each run's metrics and phases)
    done = pinnlog("compare", *SAMPLE_STORES, "-o", tmp_path / "compare", "-q")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    summary = json.loads((tmp_path / "compare" / "summary.json").read_text())
    jsonschema.validate(summary, load_schema())
    assert [run["path"] for run in summary["runs"]] == [str(store) for store in SAMPLE_STORES]
    for run, store in zip(summary["runs"], SAMPLE_STORES, strict=True):
        snr = M.snr(open_run(store)).compute().dropna("step")
        assert run["final"]["snr"] == {"step": int(snr["step"][-1]), "value": pytest.approx(float(snr[-1]), rel=1e-12)}
        error = M.relative_l2(open_run(store)).compute()
        assert [e["step"] for e in run["steps_to_error"]] == [M.steps_to_error(error, t) for t in (0.1, 0.05, 0.01)]
    assert {f["name"] for f in summary["figures"]} >= {
        "snr",
        "snr_per_layer",
        "srr",
        "mutual_information",
        "binarization",
        "weight_norms",
        "loss",
        "residuals",
    }
    assert summary["skipped"] == []  # the sample stores record everything a report draws


def test_a_user_mistake_is_one_line_on_stderr_and_exit_2(tmp_path):
    done = pinnlog("analyze", tmp_path / "missing.zarr")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'missing.zarr'}: no such run store; check the path (a run is a directory like run.zarr)"
    ]
    done = pinnlog("compare", tmp_path / "a.zarr", "--frobnicate")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "No such option: --frobnicate" in done.stderr


def test_an_internal_error_exits_3_in_a_real_process(make_store, tmp_path):
    store = make_store(tmp_path, n_steps=6, layers=(2, 3, 1), seed=1, name="bug.zarr")
    script = (
        "import sys, pinnlog.analyzer.report as r\n"
        "def broken(*a, **k): raise RuntimeError('a bug')\n"
        "r.analyze_run = broken\n"
        "from pinnlog.analyzer.cli import main\n"
        f"main(['analyze', {str(store)!r}])\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 3
    assert "RuntimeError: a bug" in done.stderr
