"""``summary.json``: what a report found, as numbers a script can read (schema: ``summary.schema.json``).

The document is built from already-computed metric outputs and phase tables (see ``build.py``); this
module only selects and formats. ``docs/report.md`` explains every field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import numpy as np
import xarray as xr

from pinnlog.analyzer.store.format import RUN_DESCRIPTION

__all__ = [
    "FINAL_QUANTITIES",
    "METADATA_KEYS",
    "SCHEMA_VERSION",
    "last_finite",
    "load_schema",
    "phase_rows",
    "run_summary",
    "summary_document",
    "threshold_name",
    "to_json",
]

SCHEMA_VERSION = 1

#: Root attributes of a store copied into ``runs[].metadata`` (when present).
METADATA_KEYS = RUN_DESCRIPTION

#: Quantities reported under ``runs[].final`` (metric name in ``build.py`` -> what it is).
FINAL_QUANTITIES = {
    "loss": "training loss (scalars/loss)",
    "test_error": "relative L2 test error (metrics.relative_l2)",
    "snr": "whole-net SNR, weights only (metrics.snr, Eq 8)",
    "srr_b": "SRR_B (metrics.srr_b, Eq 17)",
    "srr_c": "SRR_C (metrics.srr_c, Eq 13)",
}


def load_schema() -> dict:
    """The JSON Schema (draft 2020-12) every ``summary.json`` validates against."""
    text = resources.files("pinnlog.analyzer.report").joinpath("summary.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def _number(value: Any) -> float | None:
    """A finite float, or None (JSON has no NaN or infinity)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def threshold_name(threshold: float) -> str:
    """How a threshold is written for people: ``0.1 -> "10%"``."""
    percent = threshold * 100
    return f"{percent:g}%" if percent >= 0.1 else f"{threshold:g}"


def last_finite(values: xr.DataArray | None) -> dict | None:
    """``{"step", "value"}`` of the last row of a ``(step,)`` array whose value is finite, or None."""
    if values is None or values.sizes.get("step", 0) == 0:
        return None
    data = np.asarray(values.values, dtype=float)
    finite = np.flatnonzero(np.isfinite(data))
    if finite.size == 0:
        return None
    i = int(finite[-1])
    return {"step": int(values["step"].values[i]), "value": float(data[i])}


def _minimum(values: xr.DataArray | None) -> dict | None:
    if values is None or values.sizes.get("step", 0) == 0:
        return None
    data = np.asarray(values.values, dtype=float)
    if not np.isfinite(data).any():
        return None
    i = int(np.nanargmin(data))
    return {"step": int(values["step"].values[i]), "value": float(data[i])}


def phase_rows(phases: Any) -> list[dict] | None:
    """A ``PhaseTable`` as the summary's rows ``{label, first_step, last_step, median_snr, slope,
    first_step_low, first_step_high}`` (the last two: the 95 % interval of ``first_step``, docs/phases.md).

    The one serialisation of a phase is :meth:`PhaseTable.to_dict`; the summary only names the median
    after the signal it is the median of (the whole-net SNR). HTML and the command line read these rows.
    """
    if phases is None:
        return None
    keys = ("label", "first_step", "last_step")
    return [
        {key: row[key] for key in keys}
        | {"median_snr": row["median"], "slope": row["slope"]}
        | {key: row.get(key) for key in ("first_step_low", "first_step_high")}
        for row in phases.to_dict()["phases"]
    ]


def _metadata(attrs: Mapping[str, Any]) -> dict:
    meta = {key: attrs[key] for key in METADATA_KEYS if key in attrs}
    if isinstance(meta.get("model"), str) and len(meta["model"]) > 4000:
        meta["model"] = meta["model"][:4000]
    layers = attrs.get("layers")
    if isinstance(layers, list):
        meta["layers"] = [
            str(layer.get("name", i)) if isinstance(layer, Mapping) else str(layer) for i, layer in enumerate(layers)
        ]
    layout = attrs.get("layout")
    if isinstance(layout, list):
        meta["n_parameters"] = int(sum(int(t.get("numel", 0)) for t in layout if isinstance(t, Mapping)))
    return json.loads(json.dumps(meta, default=str))  # attrs are JSON already; this guarantees it


def run_summary(
    *,
    label: str,
    path: str,
    attrs: Mapping[str, Any],
    recorded: Mapping[str, int],
    values: Mapping[str, Any],
    phases: Any,
    phases_note: str | None,
    steps_to_error: Mapping[float, int | None],
    layer_phases: Mapping[Any, Any] | None = None,
) -> dict:
    """The ``runs[]`` entry of one run.

    Parameters
    ----------
    values : mapping
        Computed metric outputs by name (``snr``, ``test_error``, ``loss``, ...); missing names are null.
    phases : PhaseTable or None
        From ``detect_phases`` on the whole-net SNR.
    steps_to_error : mapping
        ``{threshold: first step with test error <= threshold, or None}`` from ``metrics.steps_to_error``.
    """
    steps = [
        int(v["step"].values[-1])
        for v in values.values()
        if isinstance(v, (xr.DataArray, xr.Dataset)) and "step" in v.coords and v.sizes.get("step", 0)
    ]
    first = [
        int(v["step"].values[0])
        for v in values.values()
        if isinstance(v, (xr.DataArray, xr.Dataset)) and "step" in v.coords and v.sizes.get("step", 0)
    ]
    final = {name: last_finite(values.get(name)) for name in FINAL_QUANTITIES}
    final["min_test_error"] = _minimum(values.get("test_error"))
    metadata = _metadata(attrs)
    snr_values = values.get("snr")
    if isinstance(snr_values, xr.DataArray) and "tensors" in snr_values.attrs:
        metadata["gradient_tensors"] = str(snr_values.attrs["tensors"])  # which tensors SNR/SRR cover
    srr_c_values = values.get("srr_c")
    if isinstance(srr_c_values, xr.DataArray) and srr_c_values.sizes.get("step", 0) and final["srr_c"] is None:
        metadata["srr_c_note"] = (
            "SRR_C is NaN at every capture: no tensor it covers has Adam moments (the optimizer has not stepped, "
            "or it trains no recorded tensor)"
        )
    return {
        "label": str(label),
        "path": str(path),
        "metadata": metadata,
        "recorded": {str(k): int(v) for k, v in recorded.items()},
        "steps": {"first": min(first) if first else None, "last": max(steps) if steps else None},
        "phases": phase_rows(phases),
        "phases_note": phases_note,
        "phases_verdict": getattr(phases, "verdict", None),
        "layer_phases": None
        if not layer_phases
        else [
            {"layer": str(getattr(t, "name", k)), "phases": phase_rows(t), "verdict": t.verdict} for k, t in layer_phases.items()
        ],
        "final": final,
        "steps_to_error": [{"threshold": float(t), "step": None if s is None else int(s)} for t, s in steps_to_error.items()],
    }


def summary_document(
    kind: str,
    runs: Sequence[dict],
    *,
    options: Mapping[str, Any],
    comparison_: dict | None = None,
    figures: Sequence[Mapping[str, Any]] = (),
    skipped: Sequence[Mapping[str, str]] = (),
    warnings: Sequence[str] = (),
) -> dict:
    """The whole ``summary.json``: ``kind`` is ``"analyze"`` (one run) or ``"compare"`` (two or more)."""
    from pinnlog.analyzer import __version__

    return {
        "schema_version": SCHEMA_VERSION,
        "kind": kind,
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "pinnlog_version": __version__,
        "options": dict(options),
        "runs": list(runs),
        "comparison": comparison_,
        "figures": [dict(f) for f in figures],
        "skipped": [dict(s) for s in skipped],
        "warnings": [str(w) for w in warnings],
    }


def to_json(document: Mapping[str, Any]) -> str:
    """Strict JSON (no NaN or infinity: such numbers were already turned into null)."""
    return json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
