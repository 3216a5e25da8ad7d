"""How often the phase detector recovers known change points (the synthetic validation of docs/phases.md).

For each noise level (std of log10 value, decades) and number of segments (1-4), it draws ``--seeds``
curves with ``piecewise_snr`` (paper sampling: every 2 steps to 300, then every 100 to 300,000; jumps
of 1-2 decades, slopes up to ±0.5) and counts: boundaries all within ``--tolerance`` decades (ok),
more boundaries than the truth (extra), fewer (missed), the right count but one too far (off).
``--kinks`` makes the changes continuous (slope changes of 1-2 decades per decade). Run from the
repository root::

    python -W ignore benchmarks/phase_accuracy.py
    python -W ignore benchmarks/phase_accuracy.py --kinks --tolerance 0.3
"""

from __future__ import annotations

import argparse

import numpy as np

from pinnlog.analyzer.datasets import piecewise_snr
from pinnlog.analyzer.phases import PhaseDetector


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--tolerance", type=float, default=0.1)
    parser.add_argument("--kinks", action="store_true")
    args = parser.parse_args()
    kind = "kinks" if args.kinks else "jumps"
    print(f"{kind}, {args.seeds} curves per cell, tolerance {args.tolerance} decades: ok / extra / missed / off")
    print("| noise (decades) | 1 segment | 2 segments | 3 segments | 4 segments |")
    print("|---|---|---|---|---|")
    for noise in (0.05, 0.1, 0.2, 0.3, 0.5):
        cells = []
        for n_segments in (1, 2, 3, 4):
            counts = dict(ok=0, extra=0, missed=0, off=0)
            for seed in range(args.seeds):
                signal, truth = piecewise_snr(n_segments, noise, seed, kinks=args.kinks)
                found = PhaseDetector().fit(signal).predict()
                if len(found) > len(truth):
                    counts["extra"] += 1
                elif len(found) < len(truth):
                    counts["missed"] += 1
                elif max((abs(np.log10(f / t)) for f, t in zip(found, truth)), default=0.0) <= args.tolerance:
                    counts["ok"] += 1
                else:
                    counts["off"] += 1
            cells.append(" / ".join(str(counts[k]) for k in ("ok", "extra", "missed", "off")))
        print(f"| {noise} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
