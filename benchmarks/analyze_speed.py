"""How long ``pinnlog analyze`` takes on the shipped sample stores (target: < 20 s each on a 2-core CPU).

For each store (default: every ``sample_logs/*.zarr``; or the paths given) it prints, all measured in
this run:

1. the wall time of ``pinnlog analyze STORE -o TMP -q`` in a fresh process (imports included: what a
   user waits for), its ratio to the 20 s target, and the process's CPU time (user + system: what the
   work costs whatever else the machine runs; the load average is printed too);
2. an in-process breakdown of one ``analyze_run``: opening and building the lazy metrics, the one dask
   compute pass, phases and thresholds, drawing + saving the figures, writing the page; each as a share
   of the in-process total;
3. the time of ``python -c "import pinnlog.analyzer.report.build"`` (the fixed cost of a fresh process).

With ``--compare`` it also times ``pinnlog compare`` over all the stores. Run from the repository root::

    python benchmarks/analyze_speed.py
    python benchmarks/analyze_speed.py runs/a.zarr runs/b.zarr --compare
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 20.0
ROOT = Path(__file__).resolve().parents[1]


def pinnlog_command() -> list[str]:
    script = Path(sys.executable).parent / "pinnlog"
    return [str(script)] if script.exists() else [sys.executable, "-c", "from pinnlog.analyzer.cli import main; main()"]


def timed_process(args: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def breakdown(store: Path, out: Path) -> dict[str, float]:
    """Seconds per stage of one in-process ``analyze_run``, from its progress callbacks."""
    from pinnlog.analyzer.report import analyze_run

    marks: list[tuple[str, float]] = []

    def progress(description: str, done: int, total: int) -> None:
        stage = {
            "opening": "open + lazy metrics",
            "computing metrics": "dask compute",
            "drawing figures": "figures (draw + PNG + SVG)",
            "writing report": "summary + html",
        }.get(description)
        if description.startswith("phases"):
            stage = "phases + thresholds"
        if stage and (not marks or marks[-1][0] != stage):
            marks.append((stage, time.perf_counter()))

    start = time.perf_counter()
    analyze_run(store, out, progress=progress)
    end = time.perf_counter()
    stages = {}
    for (stage, t0), (_, t1) in zip(marks, marks[1:] + [("end", end)]):
        stages[stage] = stages.get(stage, 0.0) + (t1 - t0)
    stages["total"] = end - start
    return stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stores", nargs="*", type=Path, help="run stores (default: sample_logs/*.zarr)")
    parser.add_argument("--compare", action="store_true", help="also time `pinnlog compare` over all stores")
    args = parser.parse_args()
    stores = args.stores or sorted((ROOT / "sample_logs").glob("*.zarr"))
    if not stores:
        sys.exit("no stores: pass some, or put *.zarr stores in sample_logs/")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (other jobs slow the wall times)")
    import_s, import_cpu = timed_process([sys.executable, "-c", "import pinnlog.analyzer.report.build"])
    print(f"fresh-process import of the report code: {import_s:.2f} s wall, {import_cpu:.2f} s CPU")
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for i, store in enumerate(stores):
            wall, cpu = timed_process(pinnlog_command() + ["analyze", str(store), "-o", f"{tmp}/cli{i}", "-q"])
            worst = max(worst, wall)
            print(
                f"\n{store}: pinnlog analyze {wall:.2f} s wall = {wall / TARGET_S:.2f} x the {TARGET_S:.0f} s target"
                f" ({cpu:.2f} s CPU)"
            )
            stages = breakdown(store, Path(tmp) / f"lib{i}")
            for stage, seconds in stages.items():
                if stage != "total":
                    print(f"  {stage:<28} {seconds:6.2f} s  {seconds / stages['total']:5.1%}")
            print(f"  {'in-process total':<28} {stages['total']:6.2f} s")
        if args.compare and len(stores) > 1:
            wall, cpu = timed_process(pinnlog_command() + ["compare", *map(str, stores), "-o", f"{tmp}/cmp", "-q"])
            print(f"\npinnlog compare of {len(stores)} stores: {wall:.2f} s wall ({cpu:.2f} s CPU)")
    print(
        f"\nslowest analyze: {worst:.2f} s ({'within' if worst < TARGET_S else 'OVER'} the {TARGET_S:.0f} s target); "
        f"load average now {os.getloadavg()[0]:.1f}"
    )
    if worst >= TARGET_S:
        sys.exit(1)


if __name__ == "__main__":
    main()
