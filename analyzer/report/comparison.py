"""What ``pinnlog compare`` concludes: which run generalises sooner, by how much, and where each run is.

The first run is the reference; every ratio is against it. The answer people open a comparison with is
"which run generalises sooner?": :func:`headline` answers it at the *lowest test error every run reaches*.
With the requested thresholds (10 %, 5 %, 1 % by default) when one of them is reached by every run;
otherwise with thresholds that adapt to the runs (:func:`adaptive_thresholds`): fractions of the
reference's first test error, and the best error of the run that did worst (the lowest error all reach).

Everything here is built from the test-error curves (``metrics.relative_l2``) and the ``runs[]`` entries
of ``summary.json``; nothing reads a store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from pinnlog.analyzer.report.summary import _number, threshold_name

__all__ = [
    "FIRST_ERROR_FRACTIONS",
    "PHASE_ORDER",
    "Threshold",
    "adaptive_thresholds",
    "comparison",
    "error_words",
    "errors_side_by_side",
    "first_step_at_or_below",
    "headline",
    "phase_onsets",
]

#: Adaptive thresholds relative to the reference run's first test error.
FIRST_ERROR_FRACTIONS = (0.9, 0.75, 0.5, 0.25, 0.1)
#: Fractions of the shortest run at which the errors are put side by side (the last common step is 1).
MATCHED_FRACTIONS = (0.1, 0.25, 0.5, 1.0)
PHASE_ORDER = ("fitting", "diffusion", "total diffusion")
NO_TOTAL_DIFFUSION = "no total diffusion detected — the run may be too short"


class Threshold(dict):
    """``{"threshold", "basis", "name"}``: a test-error level, why it was chosen, and how it is written."""


def _finite(curve: xr.DataArray | None) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values)`` of the finite rows of a ``(step,)`` curve (test errors are logged sparsely)."""
    if curve is None or curve.sizes.get("step", 0) == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    values = np.asarray(curve.values, dtype=np.float64)
    ok = np.isfinite(values)
    return np.asarray(curve["step"].values, dtype=np.int64)[ok], values[ok]


def first_step_at_or_below(curve: xr.DataArray | None, level: float) -> int | None:
    """The first step whose finite test error is <= ``level`` (as ``metrics.steps_to_error``), or None."""
    steps, values = _finite(curve)
    hits = np.flatnonzero(values <= level)
    return int(steps[hits[0]]) if hits.size else None


def _percent(level: float) -> str:
    return f"{level * 100:.3g}%" if level * 100 >= 0.1 else f"{level:.3g}"


def adaptive_thresholds(curves: Mapping[str, xr.DataArray | None], reference: str) -> list[Threshold]:
    """Test-error levels for runs that share none of the requested thresholds, highest first.

    ``f × e₀`` for f in :data:`FIRST_ERROR_FRACTIONS` (e₀: the reference run's first test error) that at
    least one run reaches, and the best error of the run whose best is worst, which every run reaches
    by construction. Empty when a run has no finite test error.
    """
    finite = {label: _finite(curve) for label, curve in curves.items()}
    if not finite or any(values.size == 0 for _, values in finite.values()):
        return []
    best = {label: float(values.min()) for label, (_, values) in finite.items()}
    first = float(finite[reference][1][0]) if reference in finite else float(next(iter(finite.values()))[1][0])
    lowest_all_reach = max(best.values())
    worst = max(best, key=best.__getitem__)
    levels = [Threshold(threshold=lowest_all_reach, basis="best reached", name=f"{_percent(lowest_all_reach)} ({worst}'s best)")]
    for fraction in FIRST_ERROR_FRACTIONS:
        level = fraction * first
        if level <= min(best.values()) or np.isclose(level, lowest_all_reach, rtol=1e-3):
            continue  # nobody reaches it, or it is the best-reached level again
        levels.append(
            Threshold(threshold=level, basis="first test error", name=f"{_percent(level)} ({fraction:g} × first error)")
        )
    return sorted(levels, key=lambda t: -t["threshold"])


def _fixed(thresholds: Sequence[float]) -> list[Threshold]:
    return [Threshold(threshold=float(t), basis="requested", name=threshold_name(float(t))) for t in thresholds]


def matched_thresholds(curves: Mapping[str, xr.DataArray | None], thresholds: Sequence[float], reference: str) -> list[Threshold]:
    """The requested thresholds, plus :func:`adaptive_thresholds` when no requested one is reached by every run."""
    fixed = _fixed(thresholds)
    have = {label: c for label, c in curves.items() if _finite(c)[1].size}
    all_reach = [t for t in fixed if have and all(first_step_at_or_below(c, t["threshold"]) is not None for c in have.values())]
    if all_reach or not have:
        return fixed
    return fixed + adaptive_thresholds(have, reference if reference in have else next(iter(have)))


def error_words(level: Mapping[str, Any]) -> str:
    """A level in a sentence: "10% test error", "19.8% test error (vanilla's best)"."""
    percent = _percent(level["threshold"]) if level["basis"] != "requested" else level["name"]
    why = level["name"][len(percent) :].strip() if level["name"].startswith(percent) else ""
    return f"{percent} test error" + (f" {why}" if why else "")


def _ratio_text(later: str, a: int, b: int) -> str:
    if a == 0 or b == 0 or a == b:
        return f"at step {a:,}, {later} at step {b:,}"
    return f"{b / a:.1f}× sooner than {later} ({a:,} vs {b:,} steps)"


def headline(
    steps: Mapping[str, Mapping[float, int | None]],
    levels: Sequence[Threshold],
    last_steps: Mapping[str, int | None],
) -> tuple[str, Threshold | None]:
    """The sentence that answers "which run generalises sooner, and by how much?", and the level it uses.

    ``steps`` is ``{run: {threshold: first step at or below it, or None}}`` over ``levels``. The level is
    the lowest one every run reaches; a lower requested threshold that only some runs reach is added
    ("…; at 10% test error only RBA at step 3,950 gets there, vanilla never does in 9,999 steps"): the
    requested threshold nearest the common level, else the lowest adaptive one.
    """
    runs = list(steps)
    common = [t for t in levels if all(steps[r].get(t["threshold"]) is not None for r in runs)]
    if not runs or not common:
        return "no test error to compare: record rec.step(step, test_error=...) in every run", None
    level = min(common, key=lambda t: t["threshold"])
    at = {r: step for r in runs if (step := steps[r][level["threshold"]]) is not None}  # every run: the level is common
    order = sorted(runs, key=lambda r: (at[r], runs.index(r)))
    what = error_words(level)
    first, rest = order[0], order[1:]
    if all(at[r] == at[first] for r in rest):
        sentence = f"{' and '.join(runs)} reach {what} at the same step ({at[first]:,})"
    else:
        how = " and ".join(_ratio_text(r, at[first], at[r]) for r in rest)
        sentence = f"{first} generalises {'sooner' if len(runs) == 2 else 'soonest'}: it reaches {what} {how}"
    # a requested threshold below the common level that some (not all) runs reach says more
    lower = [t for t in levels if t["threshold"] < level["threshold"] and any(steps[r].get(t["threshold"]) for r in runs)]
    requested = [t for t in lower if t["basis"] == "requested"]
    if lower:
        # the requested threshold nearest the common level (10% before 5%), else the lowest adaptive one
        t = max(requested, key=lambda t: t["threshold"]) if requested else min(lower, key=lambda t: t["threshold"])
        reached = [r for r in runs if steps[r].get(t["threshold"]) is not None]
        never = [r for r in runs if r not in reached]
        got = ", ".join(f"{r} at step {steps[r][t['threshold']]:,}" for r in reached)
        nots = ", ".join(f"{r} never does in {last_steps[r]:,} steps" if last_steps.get(r) else f"{r} never does" for r in never)
        sentence += f"; at {error_words(t)} only {got} gets there, {nots}"
    return sentence, level


def _speedup_text(run: str, reference: str, what: str, run_steps, reference_steps, reference_last, run_last) -> str:
    if run_steps is None:
        return (
            f"{run} never reaches {what}"
            + (f" in {run_last:,} steps" if run_last else "")
            + (f"; {reference} does at step {reference_steps:,}")
        )
    if reference_steps is None:
        return f"{run} reaches {what} at step {run_steps:,}; {reference} never does" + (
            f" in {reference_last:,} steps" if reference_last else ""
        )
    if run_steps == 0 or reference_steps == 0:
        return f"{run} reaches {what} at step {run_steps:,}, {reference} at step {reference_steps:,}"
    ratio = reference_steps / run_steps
    if round(ratio, 1) == 1.0:
        return f"{run} reaches {what} about as soon as {reference} ({run_steps:,} vs {reference_steps:,} steps)"
    how = f"{ratio:.1f}× sooner" if ratio >= 1 else f"{1 / ratio:.1f}× later"
    return f"{run} reaches {what} {how} than {reference} ({run_steps:,} vs {reference_steps:,} steps)"


def errors_side_by_side(curves: Mapping[str, xr.DataArray | None]) -> dict:
    """Lowest and final test error per run, and every run's error at the same steps.

    The matched steps are :data:`MATCHED_FRACTIONS` of the last step at which every run has a test
    error, each moved to the latest step ≤ it at which every run has one.
    """
    finite = {label: _finite(curve) for label, curve in curves.items()}
    lowest: dict[str, dict[str, float] | None] = {}
    final: dict[str, dict[str, float] | None] = {}
    for label, (steps, values) in finite.items():
        if values.size:
            i = int(np.argmin(values))
            lowest[label] = {"step": int(steps[i]), "value": float(values[i])}
            final[label] = {"step": int(steps[-1]), "value": float(values[-1])}
        else:
            lowest[label] = final[label] = None
    at_steps = []
    have = [s for s, v in finite.values() if v.size]
    if have and len(have) == len(finite):
        common = have[0]
        for s in have[1:]:
            common = np.intersect1d(common, s)
        if common.size:
            chosen = []
            for fraction in MATCHED_FRACTIONS:
                target = fraction * common[-1]
                step = int(common[common <= target][-1]) if (common <= target).any() else int(common[0])
                if step not in chosen:
                    chosen.append(step)
            for step in chosen:
                # by equality, not searchsorted: a damaged store's steps need not be sorted (verify says so)
                errors = {label: float(values[np.flatnonzero(steps == step)[-1]]) for label, (steps, values) in finite.items()}
                at_steps.append({"step": step, "errors": errors})
    return {"lowest": lowest, "final": final, "at_steps": at_steps}


def phase_onsets(runs: Sequence[Mapping[str, Any]]) -> tuple[list[dict], list[str]]:
    """First step of each phase per run, with ``reference onset / run onset`` per other run, and notes.

    A run whose phases were found but hold no total diffusion gets the note
    ``"<run>: no total diffusion detected — the run may be too short (N steps)"``.
    """
    labels = [r["label"] for r in runs]
    found = {r["label"]: {p["label"]: p["first_step"] for p in (r["phases"] or [])} for r in runs}
    names = [p for p in PHASE_ORDER if any(p in f for f in found.values())]
    names += sorted({p for f in found.values() for p in f} - set(names))
    reference = labels[0]
    rows = []
    for name in names:
        onsets = {label: found[label].get(name) for label in labels}
        ref = onsets[reference]
        ratios = {label: (_number(ref / step) if ref and step else None) for label, step in onsets.items() if label != reference}
        rows.append({"phase": name, "onsets": onsets, "ratios": ratios})
    notes = []
    for run in runs:
        last = (run.get("steps") or {}).get("last")
        span = f" ({last:,} steps)" if last is not None else ""
        if run["phases"] is None:
            notes.append(f"{run['label']}: no phases — {run.get('phases_note') or 'no gradient statistics'}")
        elif "total diffusion" not in found[run["label"]]:
            notes.append(f"{run['label']}: {NO_TOTAL_DIFFUSION}{span}")
    return rows, notes


def comparison(
    runs: Sequence[Mapping[str, Any]], thresholds: Sequence[float], curves: Mapping[str, xr.DataArray | None] | None = None
) -> dict:
    """The ``comparison`` section of ``summary.json``: every run against the first (the reference).

    Parameters
    ----------
    runs : sequence of mapping
        ``runs[]`` entries of ``summary.json`` (``summary.run_summary``), the reference first.
    thresholds : sequence of float
        The requested test-error thresholds.
    curves : mapping, optional
        ``{label: test-error curve over step}`` (``metrics.relative_l2``); without them only the
        requested thresholds and the runs' ``steps_to_error`` are used.

    Returns
    -------
    dict
        ``headline`` (the sentence) and ``headline_threshold``; ``steps_to_error`` per level (requested,
        then adaptive ones with their ``basis``); ``speedups`` (``speedup = reference_steps /
        run_steps``, > 1: the run is sooner; levels no run reaches are left out); ``errors`` (lowest,
        final, at matched steps); ``phase_onsets`` (with ``ratios`` = reference onset / run onset, > 1:
        the run enters the phase sooner); ``phase_differences`` per phase both have; ``notes``.
    """
    reference = runs[0]
    ref_label = reference["label"]
    labels = [r["label"] for r in runs]
    if curves is None:  # only the recorded step counts: use them as curves of their own
        curves = {}
    levels = (
        matched_thresholds({label: curves.get(label) for label in labels}, thresholds, ref_label)
        if curves
        else _fixed(thresholds)
    )
    recorded = {r["label"]: {e["threshold"]: e["step"] for e in r["steps_to_error"]} for r in runs}
    steps = {
        label: {
            t["threshold"]: (
                first_step_at_or_below(curves[label], t["threshold"])
                if curves.get(label) is not None
                else recorded[label].get(t["threshold"])
            )
            for t in levels
        }
        for label in labels
    }
    last = {r["label"]: (r.get("steps") or {}).get("last") for r in runs}
    text, level = headline(steps, levels, last)
    table = []
    for t in levels:
        per_run = {label: steps[label][t["threshold"]] for label in labels}
        reached = {k: v for k, v in per_run.items() if v is not None}
        table.append(
            {
                "threshold": t["threshold"],
                "basis": t["basis"],
                "name": t["name"],
                "steps": per_run,
                "fastest": min(reached, key=reached.__getitem__) if reached else None,
            }
        )
    speedups = []
    for run in runs[1:]:
        label = run["label"]
        for t in levels:
            a, b = steps[label][t["threshold"]], steps[ref_label][t["threshold"]]
            if a is None and b is None:
                continue  # nobody got there: the adaptive levels say more than "neither ..."
            speedups.append(
                {
                    "threshold": t["threshold"],
                    "basis": t["basis"],
                    "run": label,
                    "reference": ref_label,
                    "run_steps": a,
                    "reference_steps": b,
                    "speedup": _number(b / a if a and b else None),
                    "text": _speedup_text(label, ref_label, error_words(t), a, b, last.get(ref_label), last.get(label)),
                }
            )
    onsets, notes = phase_onsets(runs)
    return {
        "reference": ref_label,
        "headline": text,
        "headline_threshold": None if level is None else dict(level),
        "thresholds": [float(t) for t in thresholds],
        "steps_to_error": table,
        "speedups": speedups,
        "errors": errors_side_by_side({label: curves.get(label) for label in labels}),
        "phase_onsets": onsets,
        "phase_differences": _phase_differences(runs),
        "notes": notes,
    }


def _phase_differences(runs: Sequence[Mapping[str, Any]]) -> list[dict]:
    reference = runs[0]
    ref_phases = {p["label"]: p for p in reference["phases"] or []}
    out = []
    for run in runs[1:]:
        for phase in run["phases"] or []:
            ref = ref_phases.get(phase["label"])
            if ref is None:
                continue
            onset = ref["first_step"] / phase["first_step"] if phase["first_step"] > 0 and ref["first_step"] > 0 else None
            median_ratio = (
                phase["median_snr"] / ref["median_snr"] if phase["median_snr"] is not None and ref["median_snr"] else None
            )
            out.append(
                {
                    "phase": phase["label"],
                    "run": run["label"],
                    "reference": reference["label"],
                    "run_first_step": phase["first_step"],
                    "reference_first_step": ref["first_step"],
                    "onset_ratio": _number(onset),
                    "run_duration": phase["last_step"] - phase["first_step"],
                    "reference_duration": ref["last_step"] - ref["first_step"],
                    "run_median_snr": phase["median_snr"],
                    "reference_median_snr": ref["median_snr"],
                    "median_snr_ratio": _number(median_ratio),
                }
            )
    return out
