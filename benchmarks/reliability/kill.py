"""Kill campaign: SIGKILL recording subprocesses at random moments and count what was lost.

Each run records a small MLP regression (K = 4 batches, gradient statistics every 2 steps, raw snapshots,
residuals and activations every 5) in a child forked from ``kill_child.py``, which reports on stdout every
commit of the store (``C GROUP N``: the side channel). The campaign kills the child at a random moment
of one of three kinds, in turn: inside a capture, while the writer thread writes chunks, or during
``rec.close()`` (trim + consolidate). Then it checks the store:

- unopenable: ``open_run`` fails (target 0; a store killed before its first commit raises
  ``EmptyRunError`` and is counted apart);
- committed rows lost: rows the child reported committed that the store does not hold (target 0);
- damaged: ``verify_run`` finds anything but the open status (a torn chunk, a step column out of order);
- repair: ``repair_run`` must keep every committed row and leave a healthy, closed store;
- lost in the buffer: steps given to ``rec.step`` (and captures taken) that were not committed yet
  (rows the recorder or the writer's queue still held): the bound is reported.

Run from the repository root::

    python -m benchmarks.reliability.kill --kills 100
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zarr

from pinnlog.analyzer import open_run
from pinnlog.analyzer.errors import EmptyRunError
from pinnlog.analyzer.store import repair_run, verify_run
from pinnlog.analyzer.store.format import GROUPS

CHILD = Path(__file__).with_name("kill_child.py")
PHASES = ("capture", "write", "close")
MARKER = {"capture": "P", "write": "W", "close": "X"}
MAX_DELAY = {"capture": 0.02, "write": 0.004, "close": 0.15}  # seconds after the marker: inside the phase


@dataclass
class KillOutcome:
    """What one killed run left behind."""

    target: str
    hit: set[str] = field(default_factory=set)  # what was in flight when the child died
    finished: bool = False  # the child was done before the kill landed
    empty: bool = False
    unopenable: str = ""
    lost_committed: int = 0
    damaged: list[str] = field(default_factory=list)
    repair_lost: int = 0
    repair_unhealthy: str = ""
    buffered_steps: int = 0  # steps given to rec.step but not committed
    buffered_captures: int = 0


def committed_rows(path: Path) -> dict[str, dict[str, np.ndarray]]:
    root = zarr.open_group(path, mode="r", use_consolidated=False)
    out = {}
    for name, group in root.groups():
        n = group.attrs.get("n_committed", 0)
        out[name] = {v: a[:n] if a.metadata.dimension_names[0] == GROUPS[name].axis else a[...] for v, a in group.arrays()}
    return out


def _lost_rows(before: dict, after: dict) -> int:
    lost = 0
    for group, arrays in before.items():
        for var, values in arrays.items():
            kept = after.get(group, {}).get(var)
            if kept is None or kept.shape != values.shape or not np.array_equal(kept, values, equal_nan=True):
                lost += len(values) if kept is None else abs(len(values) - len(kept)) or 1
    return lost


def check_store(path: Path, outcome: KillOutcome, reported: dict[str, int], last_step: int, captures: int) -> None:
    """Open, verify and repair a killed run's store; fill ``outcome``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            run = open_run(path)
        except EmptyRunError:
            outcome.empty = True
            found = {}
        except Exception as exc:
            outcome.unopenable = f"{type(exc).__name__}: {exc}"
            return
        else:
            found = {name: run[name].sizes.get("step", 0) for name in run.children}
            scalars = run["scalars"]["step"].values if "scalars" in run.children else np.array([])
            if not np.array_equal(scalars, np.arange(scalars.size)):
                outcome.damaged.append("scalars steps are not 0..n-1")
        outcome.lost_committed = sum(max(0, n - found.get(group, 0)) for group, n in reported.items())
        outcome.buffered_steps = max(0, last_step + 1 - found.get("scalars", 0))
        outcome.buffered_captures = max(0, captures - found.get("gradient_stats", 0))
        report = verify_run(path)
        outcome.damaged += [
            f"{f.where} {f.check}: {f.detail}"
            for f in report.findings
            if f.level == "damaged" and f.check not in ("status", "committed")
        ]
        before = committed_rows(path)
        repaired = repair_run(path)
        outcome.repair_lost = _lost_rows(before, committed_rows(path))
        if not repaired.after.healthy and not outcome.empty:
            outcome.repair_unhealthy = "; ".join(f.detail for f in repaired.after.problems() if f.level == "damaged")


class ForkServer:
    """The child-forking server of ``kill_child.py`` (torch is imported once, not once per run)."""

    def __init__(self):
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1, env=env
        )
        if self.readline() != "SERVER READY":
            raise RuntimeError("kill_child.py did not start")

    def readline(self) -> str:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("kill_child.py exited")
        return line.strip()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def kill_one(server: ForkServer, path: Path, seed: int, n_steps: int, target: str, rng: random.Random) -> KillOutcome:
    """Start one recording, kill it at a random moment of phase ``target``, check what it left."""
    server.proc.stdin.write(f"{path} {seed} {n_steps}\n")
    server.proc.stdin.flush()
    words = server.readline().split()
    assert words[0] == "R", words
    pid = int(words[1])
    marker = MARKER[target]
    # Which occurrence of the marker: late enough that something was committed, early enough to happen.
    expected = {"P": n_steps // 2, "W": n_steps, "X": 1}[marker]
    occurrence = 1 if marker == "X" else rng.randint(3, max(3, expected))
    outcome = KillOutcome(target)
    reported: dict[str, int] = {}
    seen = 0
    killed = False
    open_writes: Counter = Counter()
    in_capture = closing = False
    last_step, captures = -1, 0
    while True:
        words = server.readline().split()
        kind = words[0]
        if kind == "D":
            break
        if kind == "C":
            reported[words[1]] = int(words[2])
            open_writes[words[1]] -= 1
        elif kind == "W":
            open_writes[words[1]] += 1
        elif kind == "P":
            in_capture = True
        elif kind == "S":
            last_step = int(words[1])
            captures += in_capture
            in_capture = False
        elif kind == "X":
            closing = words[1] == "close"
            outcome.finished = words[1] == "done"
        if kind == marker and not killed:
            seen += 1
            if seen == occurrence:
                time.sleep(rng.uniform(0, MAX_DELAY[target]))
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                killed = True
    # Lines the child printed before it died were all read above: they describe the moment of death.
    outcome.hit = {
        name
        for name, flag in (
            ("capture", in_capture),
            ("write", any(v > 0 for v in open_writes.values())),
            ("close", closing and not outcome.finished),
        )
        if flag
    }
    check_store(path, outcome, reported, last_step, captures)
    return outcome


def run_campaign(n_kills: int, workdir: Path, seed: int = 0, n_steps: int = 60, log=print) -> dict:
    """Kill ``n_kills`` recordings (phases in turn); return the counts the campaign prints."""
    rng = random.Random(seed)
    server = ForkServer()
    outcomes = []
    try:
        for i in range(n_kills):
            target = PHASES[i % len(PHASES)]
            path = Path(workdir) / f"kill_{i:03d}.zarr"
            outcomes.append(kill_one(server, path, seed + i, n_steps, target, rng))
            o = outcomes[-1]
            log(
                f"kill {i:3d} target={target:7s} hit={','.join(sorted(o.hit)) or '-':21s} "
                f"lost={o.lost_committed} buffered={o.buffered_steps} steps/{o.buffered_captures} captures"
                + (f" UNOPENABLE {o.unopenable}" if o.unopenable else "")
                + (" empty" if o.empty else "")
                + (f" DAMAGED {o.damaged}" if o.damaged else "")
            )
    finally:
        server.close()
    opened = [o for o in outcomes if not o.unopenable]
    return {
        "kills": n_kills,
        "targets": dict(Counter(o.target for o in outcomes)),
        "hit": {phase: sum(phase in o.hit for o in outcomes) for phase in PHASES},
        "finished_before_kill": sum(o.finished for o in outcomes),
        "unopenable": sum(bool(o.unopenable) for o in outcomes),
        "empty_before_first_commit": sum(o.empty for o in outcomes),
        "committed_rows_lost": sum(o.lost_committed for o in outcomes),
        "damaged": sum(bool(o.damaged) for o in outcomes),
        "repair_rows_lost": sum(o.repair_lost for o in outcomes),
        "unhealthy_after_repair": sum(bool(o.repair_unhealthy) for o in outcomes),
        "buffered_steps_max": max((o.buffered_steps for o in opened), default=0),
        "buffered_steps_mean": float(np.mean([o.buffered_steps for o in opened])) if opened else 0.0,
        "buffered_captures_max": max((o.buffered_captures for o in opened), default=0),
        "details": [o for o in outcomes if o.unopenable or o.damaged or o.repair_lost or o.repair_unhealthy],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=60, help="training steps per recording (if not killed)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pinnlog-kill-") as workdir:
        counts = run_campaign(args.kills, Path(workdir), args.seed, args.steps)
    details = counts.pop("details")
    print(f"\n{args.kills} recordings SIGKILLed in {time.perf_counter() - start:.0f} s")
    for key, value in counts.items():
        print(f"  {key:28s} {value}")
    for o in details:
        print("  problem:", o)
    bad = counts["unopenable"] + counts["committed_rows_lost"] + counts["damaged"] + counts["repair_rows_lost"]
    return 1 if bad or counts["unhealthy_after_repair"] else 0


if __name__ == "__main__":
    sys.exit(main())
