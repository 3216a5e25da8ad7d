"""Precision and recall of the phase detector against boundaries known before it ran (docs/phases.md).

Three sources, each boundary tagged with the phase it starts (``diffusion``, ``total diffusion``):

- ``allen_cahn``: the authors' Allen–Cahn curves (``tests/data/phases/allen_cahn_{v,r}.npz``) and the
  boundaries they marked by hand (vanilla 150 and 91,700; RBA 150 and 11,100);
- ``pinnlog``: pinnlog's own recorded runs of the benchmark PDEs (``tests/data/phases/pinnlog_*.npz``)
  with the boundaries marked by hand in ``tests/data/phases/marks.json`` before the detector ran;
- ``synthetic``: :func:`pinnlog.analyzer.phases.synthetic.training_curves`, five kinds of run (three
  phases, no total diffusion, no fitting, diffusion only, Burgers-like), truth by construction. Seeds
  0-19 of each kind were used to tune (``--split tune``), seeds 1000-1019 are held out.

A detected boundary is a hit when a true boundary starting the same phase lies within ``--tolerance``
decades. Precision = hits / detected, recall = hits / true. It also counts labels that contradict the
definitions (:func:`~pinnlog.analyzer.phases.labels.definition_violations`) and verdicts other than ok.
``--sensitivity`` repeats the held-out count with one setting changed at a time. Run from the
repository root::

    python -W ignore benchmarks/phase_accuracy.py
    python -W ignore benchmarks/phase_accuracy.py --split tune
    python -W ignore benchmarks/phase_accuracy.py --sensitivity
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from pinnlog.analyzer.phases import detect_phases
from pinnlog.analyzer.phases.labels import definition_violations
from pinnlog.analyzer.phases.synthetic import KINDS, training_curves

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "phases"
AUTHORS_MARKS = {"v": {"diffusion": 150, "total diffusion": 91_700}, "r": {"diffusion": 150, "total diffusion": 11_100}}
SEEDS = {"tune": range(0, 20), "held-out": range(1000, 1020)}
PHASES = ("diffusion", "total diffusion")


@dataclass
class Case:
    """One curve with its known boundaries ``{phase it starts: step}``."""

    source: str
    name: str
    snr: xr.DataArray
    truth: dict[str, int]
    test_error: xr.DataArray | None = None


def _curve(steps, values, name: str) -> xr.DataArray:
    return xr.DataArray(np.asarray(values, dtype=np.float64), dims="step", coords={"step": np.asarray(steps)}, name=name)


def load_npz(path: Path) -> tuple[xr.DataArray, xr.DataArray | None]:
    """SNR and test error of one excerpt (``step``, ``snr``, ``test_step``, ``test_error``)."""
    with np.load(path) as data:
        snr = _curve(data["step"], data["snr"], "snr")
        te = _curve(data["test_step"], data["test_error"], "test_error") if "test_error" in data else None
    return snr, te


def cases(split: str) -> Iterator[Case]:
    """The curves of one split: ``tune`` (synthetic seeds 0-19) or ``held-out`` (everything else)."""
    if split == "held-out":
        for name, marks in AUTHORS_MARKS.items():
            snr, te = load_npz(DATA / f"allen_cahn_{name}.npz")
            yield Case("allen_cahn", name, snr, marks, te)
        marks_file = DATA / "marks.json"
        if marks_file.is_file():
            for name, entry in json.loads(marks_file.read_text()).items():
                snr, te = load_npz(DATA / entry["file"])
                yield Case("pinnlog", name, snr, {k: int(v) for k, v in entry["boundaries"].items()}, te)
    for kind in KINDS:
        for seed in SEEDS[split]:
            snr, te, truth = training_curves(kind, seed)
            yield Case("synthetic", f"{kind}/{seed}", snr, truth, te)


def detected_boundaries(table) -> dict[str, int]:
    """``{phase: first step}`` for every phase after the first."""
    return {p.label: p.first_step for p in table.phases[1:]}


def score(found: dict[str, int], truth: dict[str, int], tolerance: float) -> tuple[int, int, int]:
    """(hits, detected, true) for one curve."""
    hits = sum(1 for k, step in found.items() if k in truth and abs(math.log10(step / truth[k])) <= tolerance)
    return hits, len(found), len(truth)


def evaluate(split: str, tolerance: float, settings: dict, verbose: bool) -> dict[str, dict[str, int]]:
    totals: dict[str, dict[str, int]] = {}
    for case in cases(split):
        table = detect_phases(case.snr, test_error=case.test_error, **settings)
        found = detected_boundaries(table)
        hits, n_found, n_true = score(found, case.truth, tolerance)
        t = totals.setdefault(case.source, dict(hits=0, detected=0, true=0, contradictions=0, not_ok=0, curves=0))
        t["hits"] += hits
        t["detected"] += n_found
        t["true"] += n_true
        t["contradictions"] += bool(definition_violations(table.phases))
        t["not_ok"] += table.verdict != "ok"
        t["curves"] += 1
        if verbose and (hits < max(n_found, n_true) or case.source != "synthetic"):
            print(f"  {case.source} {case.name}: truth {case.truth} found {found} verdict {table.verdict}")
    return totals


def _ratio(a: int, b: int) -> str:
    return f"{a}/{b} = {a / b:.2f}" if b else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", choices=sorted(SEEDS), default="held-out")
    parser.add_argument("--tolerance", type=float, default=0.3)
    parser.add_argument("--sensitivity", action="store_true", help="held-out recall with one setting changed at a time")
    parser.add_argument("--verbose", action="store_true", help="print every curve with a miss")
    args = parser.parse_args()

    if args.sensitivity:
        variants = [
            {},
            {"bins_per_decade": 10},
            {"bins_per_decade": 40},
            {"min_size": 3},
            {"min_size": 6},
            {"despike": 0},
            {"despike": 6},
            {"cost": "l2"},
            {"refine": False},
        ]
        print(f"split {args.split}, tolerance {args.tolerance} decades: recall (hits/true) and precision per source")
        print("| settings | allen_cahn | pinnlog | synthetic | contradictions |")
        print("|---|---|---|---|---|")
        for variant in variants:
            totals = evaluate(args.split, args.tolerance, variant, verbose=False)
            cells = []
            for source in ("allen_cahn", "pinnlog", "synthetic"):
                t = totals.get(source)
                cells.append(f"{t['hits']}/{t['true']} ({t['hits']}/{t['detected']})" if t else "-")
            contradictions = sum(t["contradictions"] for t in totals.values())
            name = ", ".join(f"{k}={v!r}" for k, v in variant.items()) or "defaults"
            print(f"| {name} | " + " | ".join(cells) + f" | {contradictions} |")
        return

    totals = evaluate(args.split, args.tolerance, {}, verbose=args.verbose)
    print(f"split {args.split}, tolerance {args.tolerance} decades")
    print("| source | curves | recall (hits/true) | precision (hits/detected) | contradicting labels | verdict not ok |")
    print("|---|---|---|---|---|---|")
    for source, t in totals.items():
        print(
            f"| {source} | {t['curves']} | {_ratio(t['hits'], t['true'])} | {_ratio(t['hits'], t['detected'])} "
            f"| {t['contradictions']} | {t['not_ok']} |"
        )


if __name__ == "__main__":
    main()
