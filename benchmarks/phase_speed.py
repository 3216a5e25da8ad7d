"""How long phase detection takes on a long curve (target: < 1 s for 10⁵ points), against ruptures' Pelt.

The input is a synthetic SNR curve (``piecewise_snr``: 4 log-linear segments, noise 0.3 decades) sampled
at every step 1..N. The script prints, all measured in this run:

1. ``detect_phases`` (grid, noise estimate, Pelt on the grid, refinement on the raw points, re-cut
   passes, labels, table): best of ``--repeat`` runs, and its ratio to the 1 s target;
2. ruptures' Pelt on the same N raw log10 values, the l2 cost and a BIC penalty from the true noise:
   ``KernelCPD(kernel="linear")`` (Pelt in C) and ``Pelt(model="l2")`` (Pelt in Python, stopped after
   ``--pelt-timeout`` seconds: then the ratio is a lower bound); each with its ratio to ours;
3. the boundaries each found, and the true ones.

Run from the repository root::

    python benchmarks/phase_speed.py                 # N = 100,000
    python benchmarks/phase_speed.py --points 20000 --pelt-timeout 30
    python benchmarks/phase_speed.py --ours-only --repeat 10    # detect_phases alone
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time

import numpy as np
import ruptures as rpt

from pinnlog.analyzer.datasets import piecewise_snr
from pinnlog.analyzer.phases import detect_phases

TARGET_S = 1.0
NOISE = 0.3


def _python_pelt(log_values: np.ndarray, penalty: float, queue) -> None:
    start = time.perf_counter()
    bkps = rpt.Pelt(model="l2").fit(log_values.reshape(-1, 1)).predict(pen=penalty)
    queue.put((time.perf_counter() - start, bkps))


def build_parser() -> argparse.ArgumentParser:
    """The command line this script accepts (tests/test_docs.py parses the documented commands with it)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pelt-timeout", type=float, default=120.0)
    parser.add_argument("--ours-only", action="store_true", help="skip the ruptures baselines (minutes on 10^5 points)")
    return parser


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)

    signal, truth = piecewise_snr(4, NOISE, 0, steps=np.arange(1, args.points + 1))
    steps, log_values = signal["step"].values, np.log10(signal.values)
    print(
        f"input: {args.points:,} samples, 4 segments, noise {NOISE} decades; true boundaries {truth}; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )

    detect_phases(signal)  # warm-up: imports, first allocation
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        table = detect_phases(signal)
        times.append(time.perf_counter() - start)
    ours = min(times)
    print(
        f"detect_phases: best {ours:.3f} s of {args.repeat} (median {np.median(times):.3f} s); "
        f"{ours / TARGET_S:.2f} x the {TARGET_S:.0f} s target; boundaries {[s.first_step for s in table.segments[1:]]}"
    )

    if args.ours_only:
        return
    penalty = 2 * NOISE**2 * np.log(args.points)  # BIC for a change in mean with known noise
    start = time.perf_counter()
    bkps = rpt.KernelCPD(kernel="linear", min_size=2).fit(log_values.reshape(-1, 1)).predict(pen=penalty)
    kernel = time.perf_counter() - start
    print(
        f"ruptures KernelCPD(kernel='linear') (Pelt in C, l2 cost) on the raw samples: {kernel:.2f} s, "
        f"{kernel / ours:.0f} x ours; {len(bkps) - 1} boundaries {[int(steps[b]) for b in bkps[:-1]][:12]}"
    )

    queue = mp.get_context("fork").Queue()
    worker = mp.get_context("fork").Process(target=_python_pelt, args=(log_values, penalty, queue))
    start = time.perf_counter()
    worker.start()
    worker.join(args.pelt_timeout)
    if worker.is_alive():
        worker.terminate()
        worker.join()
        waited = time.perf_counter() - start
        print(
            f"ruptures Pelt(model='l2') (Python) on the raw samples: not done after {waited:.0f} s, > {waited / ours:.0f} x ours"
        )
    else:
        python_pelt, bkps = queue.get()
        print(
            f"ruptures Pelt(model='l2') (Python) on the raw samples: {python_pelt:.2f} s, {python_pelt / ours:.0f} x ours; "
            f"{len(bkps) - 1} boundaries"
        )


if __name__ == "__main__":
    main()
