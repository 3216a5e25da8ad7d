"""Fuzz campaign: >= 1,000 hypothesis examples per metric function and for the phase detector.

Random shapes and values (NaN, +-inf, 0, negative, subnormal, huge), dask-backed or not, random keyword
arguments; the only exceptions allowed are pinnlog's documented ones (``PinnlogError`` subclasses).
Prints, per function: examples run, how many ended in a documented error, and the first undocumented
exception (target: none).

Run from the repository root::

    python -m benchmarks.reliability.fuzz --examples 1000
"""

from __future__ import annotations

import argparse
import sys
import time

from benchmarks.reliability.fuzz_targets import TARGETS, fuzz


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("targets", nargs="*", default=sorted(TARGETS), help="functions to fuzz (default: all)")
    args = parser.parse_args(argv)
    print(f"{'function':34s} {'examples':>8s} {'documented':>10s} {'seconds':>8s}  undocumented exception")
    failures = 0
    start = time.perf_counter()
    for name in args.targets:
        t0 = time.perf_counter()
        result = fuzz(name, args.examples, seed=args.seed)
        failures += result.failure is not None
        print(
            f"{name:34s} {result.examples:8d} {result.documented_errors:10d} {time.perf_counter() - t0:8.1f}  "
            f"{result.failure or 'none'}",
            flush=True,
        )
    print(f"\n{len(args.targets)} functions, {failures} with an undocumented exception, {time.perf_counter() - start:.0f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
