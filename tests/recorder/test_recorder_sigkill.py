"""SIGKILL a recording at 20 random moments: every store opens and holds a consistent, untorn prefix."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

pytest.importorskip("torch")
from pinnlog.analyzer import open_run
from pinnlog.analyzer.store import repair_run
from pinnlog.analyzer.store.format import GROUPS

N_KILLS = 20


@pytest.fixture
def fork_server():
    server = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("kill_target.py"))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    assert server.stdout.readline().strip() == "SERVER READY"
    yield server
    server.stdin.close()
    server.wait(timeout=30)


def _expect(server, word: str) -> str:
    line = server.stdout.readline().split()
    assert line and line[0] == word, f"expected {word}, got {line}"
    return line[1]


def _stored_chunks(path: Path, name: str, var: str) -> list[tuple[int, ...]]:
    """Grid coordinates of the chunks on disk (``c/i/j/...``); a pre-allocated array has few of its grid.

    ``*.partial`` files are not chunks: zarr writes a chunk there and renames it, so a kill can leave one
    (zarr never reads it; ``repair_run`` deletes it).
    """
    root = path / name / var / "c"
    files = [f for f in root.rglob("*") if f.is_file() and not f.name.endswith(".partial")]
    return [tuple(int(part) for part in f.relative_to(root).parts) for f in files]


def _check_killed_store(path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no consolidated metadata yet: xarray says so, then reads the group
        for name in GROUPS:
            if (path / name).exists():
                for var, arr in zarr.open_group(path / name, mode="r").arrays():
                    for coords in _stored_chunks(path, name, var):
                        arr.get_block_selection(coords)  # every stored chunk decompresses: nothing torn
    run = open_run(path)
    assert run.attrs["status"] == "recording"

    scalars = run["scalars"].to_dataset().compute()
    steps = scalars["step"].values
    assert steps.tolist() == list(range(len(steps))) and np.isfinite(scalars["loss"].values).all()

    stats = run["gradient_stats"].to_dataset().compute()
    captured = stats["step"].values
    assert len(captured) >= 1
    on_schedule = (captured % 2 == 0) | (captured % 3 == 0)  # schedule every(2), raw_schedule every(3)
    assert np.all(np.diff(captured) > 0) and np.all(on_schedule) and set(captured) <= set(steps)
    for name in ("sum_mu2", "sum_sigma2", "sum_w2", "sum_m_hat2", "sum_adam_denom2"):
        assert np.isfinite(stats[name].values).all(), name
    np.testing.assert_allclose(stats["sum_rms2"].values, (stats["sum_mu2"] + stats["sum_sigma2"]).values, rtol=1e-12)

    if "batch_gradients" in run.children:
        raw = run["batch_gradients"].to_dataset().compute()
        assert set(raw["step"].values) <= set(captured) and np.all(raw["step"].values % 3 == 0)
        layout = run.attrs["layout"]
        for step in raw["step"].values:
            mean = raw["batch_gradients"].sel(step=step).values.astype(np.float64).mean(axis=0)
            mu2 = [np.sum(mean[t["offset"] : t["offset"] + t["numel"]] ** 2) for t in layout]
            np.testing.assert_allclose(mu2, stats["sum_mu2"].sel(step=step).values, rtol=1e-5)
    for name, axis_every in (("weights", 3), ("optimizer_state", 3), ("residuals", 3), ("activations", 4)):
        if name in run.children:
            ds = run[name].to_dataset().compute()
            assert np.all(ds["step"].values % axis_every == 0) and set(ds["step"].values) <= set(steps)
            for var in ds.data_vars:
                assert np.isfinite(ds[var].values).all(), (name, var)


def _check_plain_xarray(path: Path) -> None:
    """Plain ``xarray.open_datatree`` opens the killed store as it is (the writer never grows a group
    while recording, so every dimension has one size in its group), and its first ``n_committed`` rows
    are open_run's; after ``repair_run`` trims every array to ``n_committed``, plain xarray sees exactly those."""
    run = open_run(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no consolidated metadata yet: xarray says so, then reads each group
        tree = xr.open_datatree(path, engine="zarr")
    for name in run.children:
        axis = GROUPS[name].axis
        head = tree[name].to_dataset().isel({axis: slice(0, run[name].sizes["step"])})
        np.testing.assert_array_equal(head["step"].values, run[name]["step"].values)
        for var in run[name].data_vars:
            np.testing.assert_array_equal(head[var].values, run[name][var].values)
    repair_run(path)
    repaired = open_run(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in GROUPS:
            if (path / name).exists():
                ds = xr.open_zarr(path, group=name).load()
                assert ds.sizes[GROUPS[name].axis] == repaired[name].sizes["step"]


@pytest.mark.timeout(900)  # 20 recordings, each killed, checked, opened with plain xarray, repaired
def test_sigkill_at_random_moments_leaves_consistent_stores(tmp_path, fork_server):
    rng = random.Random(20240613)
    for i in range(N_KILLS):
        path = tmp_path / f"killed_{i}.zarr"
        fork_server.stdin.write(f"{path} {i}\n")
        pid = int(_expect(fork_server, "READY"))
        time.sleep(rng.uniform(0.0, 0.4))
        os.kill(pid, signal.SIGKILL)
        assert int(_expect(fork_server, "DONE")) == pid
        _check_killed_store(path)
        _check_plain_xarray(path)
