"""Disk-full campaign: record onto a filesystem that fills up mid-run.

Two ways to fill the disk:

- ``tmpfs``: a size-limited tmpfs mounted by this script (needs root; skipped, and said so, otherwise);
- ``patched``: zarr's local-store write function raises ``ENOSPC`` once a byte budget is spent (runs anywhere).

In each, two recordings of the same seeded training run: ``on_error="raise"`` (the user catches the
error and trains on) and ``on_error="warn"``. Checked and printed: the recorder raises exactly one
``WriterError`` (or one warning), training runs to its last step with weights bitwise equal to an
unrecorded run, and the store opens with every row that was committed before the fault (a side
channel records each commit as it happens) and nothing torn; after the disk has room again (the store
is copied off the full filesystem), ``repair_run`` closes it without losing a row.

Run from the repository root (as root for the tmpfs part)::

    python -m benchmarks.reliability.disk_full
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
import zarr.storage._local as zarr_local

from benchmarks.reliability.campaign_run import toy_run, watching_commits
from pinnlog.analyzer import open_run
from pinnlog.analyzer.errors import WriterError
from pinnlog.analyzer.store import repair_run, verify_run
from pinnlog.recorder import every

N_STEPS, N_BATCHES, BATCH = 120, 8, 16


@contextlib.contextmanager
def commit_log():
    """Record ``{group: n_committed}`` after every successful commit of any RunWriter (the side channel)."""
    log: dict[str, int] = {}
    with watching_commits(committed=log.__setitem__):
        yield log


@contextlib.contextmanager
def byte_budget(budget: int):
    """Make every local-store write fail with ENOSPC once ``budget`` bytes were written."""
    put = zarr_local._put
    spent = [0]

    def limited_put(path, value, exclusive=False):
        size = len(value.as_buffer_like())
        if spent[0] + size > budget:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        spent[0] += size
        return put(path, value, exclusive)

    zarr_local._put = limited_put
    try:
        yield
    finally:
        zarr_local._put = put


@contextlib.contextmanager
def small_tmpfs(size: str):
    """A tmpfs of ``size`` mounted on a fresh directory (root only), unmounted afterwards."""
    mount_point = Path(tempfile.mkdtemp(prefix="pinnlog-tmpfs-"))
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if result.returncode != 0:
        mount_point.rmdir()
        raise PermissionError(result.stderr.strip() or "mount failed")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)
        mount_point.rmdir()


def train(path: Path | None, on_error: str = "raise", seed: int = 0) -> dict:
    """The seeded training run, recorded at ``path`` (or not at all); what happened to the recorder."""
    run = toy_run(N_BATCHES, BATCH, width=64, seed=seed)
    errors: list[str] = []
    steps_done = 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rec = None
        if path is not None:
            rec = run.recorder(path, schedule=every(2), raw_schedule=every(4), on_error=on_error, overwrite=True)
        for step in range(N_STEPS):
            loss = run.train_step()
            if rec is not None:
                try:
                    rec.step(step, loss=loss.item())
                except WriterError as exc:  # the user's choice: note it and train on, unrecorded
                    errors.append(str(exc))
            steps_done += 1
        if rec is not None:
            try:
                rec.close()
            except WriterError as exc:
                errors.append(str(exc))
    pinnlog_warnings = [str(w.message) for w in caught if "pinnlog" in str(w.message) and "fail" in str(w.message)]
    weights = torch.cat([p.detach().flatten() for p in run.model.parameters()]).numpy().copy()
    return {"errors": errors, "warnings": pinnlog_warnings, "steps_done": steps_done, "weights": weights}


def check_store(path: Path, committed: dict[str, int], scratch: Path) -> dict:
    """Open the store left by the fault; compare with the commits logged before it; repair a copy."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = open_run(path)
        found = {name: run[name].sizes.get("step", 0) for name in run.children}
        steps_ok = np.array_equal(run["scalars"]["step"].values, np.arange(found["scalars"]))
    lost = sum(max(0, n - found.get(g, 0)) for g, n in committed.items())
    report = verify_run(path)
    torn = [f"{f.where}: {f.detail}" for f in report.findings if f.level == "damaged" and f.check != "status"]
    copy = scratch / "copy.zarr"  # the full filesystem has no room for the repair: move the store off it
    shutil.copytree(path, copy)
    repaired = repair_run(copy)
    return {
        "rows_committed_before_fault": sum(committed.values()),
        "rows_lost": lost,
        "steps_in_order": steps_ok,
        "damaged": torn,
        "status": report.status,
        "healthy_after_repair": repaired.after.healthy,
    }


def scenario(store_dir: Path, scratch: Path, on_error: str, reference: np.ndarray, budget: int | None) -> dict:
    path = store_dir / f"{on_error}.zarr"
    with commit_log() as committed, byte_budget(budget) if budget else contextlib.nullcontext():
        outcome = train(path, on_error)
    result = check_store(path, dict(committed), scratch)
    result.update(
        writer_errors_raised=len(outcome["errors"]),
        failure_warnings=len(outcome["warnings"]),
        message=(outcome["errors"] or outcome["warnings"] or [""])[0][:160],
        steps_trained=outcome["steps_done"],
        weights_equal_unrecorded=bool(np.array_equal(outcome["weights"], reference)),
    )
    return result


def run_campaign(modes=("tmpfs", "patched"), tmpfs_size: str = "1m", budget: int = 600_000, log=print) -> dict:
    """Every mode x on_error; returns ``{(mode, on_error): result}`` (a skipped mode maps to its reason)."""
    reference = train(None)["weights"]
    results = {}
    for mode in modes:
        for on_error in ("raise", "warn"):
            with tempfile.TemporaryDirectory(prefix="pinnlog-full-") as scratch:
                try:
                    if mode == "tmpfs":
                        with small_tmpfs(tmpfs_size) as mount:
                            result = scenario(mount, Path(scratch), on_error, reference, None)
                    else:
                        result = scenario(Path(scratch), Path(scratch), on_error, reference, budget)
                except PermissionError as exc:
                    result = f"skipped: cannot mount a tmpfs ({exc}); run as root"
            results[(mode, on_error)] = result
            log(f"{mode:8s} on_error={on_error:5s} {result}")
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tmpfs-size", default="1m")
    parser.add_argument("--budget", type=int, default=600_000, help="bytes the patched store writes before ENOSPC")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message="Consolidated metadata")  # zarr's note on close(), not a finding
    results = run_campaign(tmpfs_size=args.tmpfs_size, budget=args.budget, log=lambda line: None)
    bad = 0
    for (mode, on_error), result in results.items():
        print(f"\n{mode} (on_error={on_error!r}):")
        if isinstance(result, str):
            print(f"  {result}")
            continue
        for key, value in result.items():
            print(f"  {key:28s} {value}")
        expected_signals = (1, 0) if on_error == "raise" else (0, 1)
        bad += (
            result["rows_lost"] > 0
            or bool(result["damaged"])
            or not result["steps_in_order"]
            or (result["writer_errors_raised"], result["failure_warnings"]) != expected_signals
            or result["steps_trained"] != N_STEPS
            or not result["weights_equal_unrecorded"]
            or not result["healthy_after_repair"]
            or result["rows_committed_before_fault"] == 0
        )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
