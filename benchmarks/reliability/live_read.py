"""Live-read campaign: ``open_run`` + metric reads of a store while a recording subprocess writes it.

A child forked from ``kill_child.py`` records a long run; once its first gradient statistics are
committed, this process opens the store again and again and reads whole-net SNR, SRR_B and the loss
curve. Counted as failures: any exception, a read that sees fewer committed rows than the read before,
and a row whose value changed between reads (committed rows must never change: each read is a prefix
of the next). Target: 0 failures.

Run from the repository root::

    python -m benchmarks.reliability.live_read --reads 1000
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np

from benchmarks.reliability.kill import ForkServer
from pinnlog.analyzer import open_run
from pinnlog.analyzer.metrics import snr, srr_b


def read_once(path: Path) -> dict[str, np.ndarray]:
    """One live read: open the run and compute what a user would look at."""
    run = open_run(path)
    return {
        "snr_step": run["gradient_stats"]["step"].values,
        "snr": snr(run).values,
        "srr_b": srr_b(run).values,
        "loss": run["scalars"]["loss"].values,
    }


def _is_prefix(old: np.ndarray, new: np.ndarray) -> bool:
    return new.size >= old.size and np.array_equal(new[: old.size], old, equal_nan=True)


def run_campaign(n_reads: int, workdir: Path, log=print) -> dict:
    """``n_reads`` live reads of one store being written; returns the counts the campaign prints."""
    path = Path(workdir) / "live.zarr"
    server = ForkServer()
    server.proc.stdin.write(f"{path} 0 100000000\n")
    server.proc.stdin.flush()
    pid = int(server.readline().split()[1])
    first_commit = threading.Event()

    def drain():  # the child prints a line per step and per commit: keep its pipe flowing
        for line in server.proc.stdout:
            if line.startswith("C gradient_stats"):
                first_commit.set()

    threading.Thread(target=drain, daemon=True).start()
    if not first_commit.wait(120):
        raise RuntimeError("the recording did not commit gradient statistics within 120 s")
    failures: list[str] = []
    previous: dict[str, np.ndarray] | None = None
    rows = []
    start = time.perf_counter()
    try:
        for i in range(n_reads):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    current = read_once(path)
            except Exception as exc:
                failures.append(f"read {i}: {type(exc).__name__}: {exc}")
                continue
            if previous is not None:
                for key, values in current.items():
                    if not _is_prefix(previous[key], values):
                        failures.append(f"read {i}: {key} is not an extension of the previous read")
            previous = current
            rows.append(current["loss"].size)
            if log and i % 100 == 0:
                log(f"read {i:4d}: {current['snr'].size} captures, {current['loss'].size} steps committed")
    finally:
        elapsed = time.perf_counter() - start
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        server.close()
    return {
        "reads": n_reads,
        "failures": len(failures),
        "first_failures": failures[:5],
        "steps_committed_first_read": rows[0] if rows else 0,
        "steps_committed_last_read": rows[-1] if rows else 0,
        "reads_per_second": n_reads / elapsed,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=1000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pinnlog-live-") as workdir:
        counts = run_campaign(args.reads, Path(workdir))
    print()
    for key, value in counts.items():
        print(f"  {key:28s} {value:.1f}" if isinstance(value, float) else f"  {key:28s} {value}")
    return 1 if counts["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
