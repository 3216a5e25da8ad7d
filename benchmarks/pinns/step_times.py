"""Training-step and capture times of recorded runs, from the stores' own ``wall_time`` scalars.

    python -m benchmarks.pinns.step_times sample_logs/ac_vanilla.zarr sample_logs/ac_rba.zarr

For each run: the median time of a step on which nothing was captured and no test error computed, the
median time of a step with a gradient capture (K batch gradients), their ratio, and the whole run's
wall time. Both medians come from the same run, so the ratio holds on a busy machine too.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np

from pinnlog.analyzer import open_run


def step_times(path: str) -> dict[str, float]:
    """``{"plain_ms", "capture_ms", "test_ms", "ratio", "wall_s", "captures"}`` of one run, from steps ≥ 300.

    ``capture_ms``: a training step plus a gradient capture; ``test_ms``: the extra time of a step that
    computes the test error (NaN if every tested step is also captured, as with the paper's cadences).
    """
    run = open_run(path)
    scalars = run["scalars"].to_dataset()
    steps = scalars["step"].values
    dt = np.diff(scalars["wall_time"].values)  # dt[i]: from the end of step i to the end of step i+1
    captured = set(run["gradient_stats"].to_dataset()["step"].values.tolist())
    other = set()
    for group in ("residuals", "activations", "batch_gradients"):
        if group in run.children:
            other |= set(run[group].to_dataset()["step"].values.tolist())
    tested = ~np.isnan(scalars["test_error"].values) if "test_error" in scalars else np.zeros(steps.size, bool)
    # wall_time is stamped when rec.step(s) starts: dt[i] holds the capture of steps[i] (if any), then the
    # training step and the test error (if any) of steps[i + 1]
    prev, _nxt = steps[:-1], steps[1:]
    late = prev >= 300
    captures_here = np.array([s in captured for s in prev])
    others_here = np.array([s in other for s in prev])
    tested_next = tested[1:]
    plain = np.median(dt[late & ~captures_here & ~others_here & ~tested_next])
    capture = np.median(dt[late & captures_here & ~others_here & ~tested_next])
    test_only = dt[late & ~captures_here & ~others_here & tested_next]
    test_ms = 1e3 * (np.median(test_only) - plain) if test_only.size else float("nan")
    return {
        "plain_ms": 1e3 * plain,
        "capture_ms": 1e3 * capture,
        "test_ms": test_ms,
        "ratio": capture / plain,
        "wall_s": float(scalars["wall_time"].values[-1]),
        "captures": len(captured),
    }


def build_parser() -> argparse.ArgumentParser:
    """The command line this script accepts (tests/test_docs.py parses the documented commands with it)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("stores", nargs="+", help="run stores written by benchmarks.pinns.run")
    return parser


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    warnings.simplefilter("ignore")
    for path in args.stores:
        t = step_times(path)
        print(
            f"{path}: step {t['plain_ms']:.1f} ms, step with capture {t['capture_ms']:.1f} ms "
            f"(×{t['ratio']:.1f}), test error +{t['test_ms']:.1f} ms, "
            f"{t['captures']} captures, run {t['wall_s']:.0f} s"
        )


if __name__ == "__main__":
    main()
