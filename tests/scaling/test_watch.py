"""``pinnlog watch`` follows a run that another process is recording, and stops when it is complete.

The recording subprocess (``live_writer.py``) commits half of its steps and waits; the watcher must
write a report of exactly that prefix, then, once the writer finishes, a last report equal to what
``analyze`` writes for the complete run, and return by itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from pinnlog.analyzer import metrics as M
from pinnlog.analyzer import open_run
from pinnlog.analyzer.watch import watch_run

HERE = Path(__file__).parent


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_watch_reports_the_committed_prefix_then_the_whole_run_and_stops(tmp_path):
    pytest.importorskip("torch")
    run, out = tmp_path / "live.zarr", tmp_path / "live_report"
    writer = subprocess.Popen(
        [sys.executable, str(HERE / "live_writer.py"), str(run), str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: (tmp_path / "half").exists() or writer.poll() is not None, 120, "the writer's first half")
        assert writer.poll() is None, writer.stdout.read()
        refreshes, result = [], {}

        def seen(refresh):
            summary = json.loads((out / "summary.json").read_text()) if refresh.report is not None else None
            refreshes.append((refresh.status, refresh.committed.get("gradient_stats", 0), summary))
            if len(refreshes) == 1:  # let the writer finish its second half before the next look
                (tmp_path / "go").touch()
                writer.wait(timeout=120)

        watcher = threading.Thread(target=lambda: result.update(report=watch_run(run, out, every=0.2, on_refresh=seen)))
        watcher.start()
        watcher.join(timeout=240)
        assert not watcher.is_alive(), "watch did not stop when the run was complete"
        assert writer.wait(timeout=60) == 0, writer.stdout.read()
    finally:
        if writer.poll() is None:
            writer.kill()
    first_status, first_captures, first = refreshes[0]
    assert (first_status, first_captures) == ("recording", 10)  # steps 0, 2, ..., 18 were committed
    complete = open_run(run)
    snr = M.snr(complete).compute()
    final = first["runs"][0]["final"]["snr"]
    assert final["step"] == 18 and final["value"] == pytest.approx(float(snr.sel(step=18)), rel=1e-12)
    last_status, last_captures, last = refreshes[-1]
    assert (last_status, last_captures) == ("complete", 20)
    assert len(refreshes) == 2  # nothing changed between the first look and the writer's end but the end
    # the last report is the complete run's: every committed row, the last SNR, the complete status
    assert last["runs"][0]["recorded"] == {name: complete[name].sizes["step"] for name in complete.children}
    assert last["runs"][0]["final"]["snr"] == {"step": 38, "value": pytest.approx(float(snr[-1]), rel=1e-12)}
    assert result["report"].summary == last
    np.testing.assert_array_equal(complete["scalars"]["step"].values, np.arange(40))


def test_watch_of_a_finished_run_writes_its_report_once_and_exits_0(cli, make_store, tmp_path):
    path = make_store(tmp_path, n_steps=8, layers=(2, 4, 1), seed=2)
    result = cli("watch", path, "-o", tmp_path / "w", "--every", "0.1")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count("complete: ") == 1
    summary = json.loads((tmp_path / "w" / "summary.json").read_text())
    assert summary["runs"][0]["final"]["snr"]["value"] == pytest.approx(float(M.snr(open_run(path)).compute()[-1]), rel=1e-12)


def test_watch_of_a_missing_run_is_a_one_line_error(cli, tmp_path):
    result = cli("watch", tmp_path / "nope.zarr", "--every", "0.1")
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("error: ") and "nope.zarr: no such run store" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
