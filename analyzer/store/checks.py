"""The findings of ``pinnlog verify`` and the checks of a run's root attributes (docs/format.md, "Root attributes").

Every detail string is built with :func:`short`, so an attribute holding 10 MB or markup never reaches
a terminal or a report whole.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pinnlog.analyzer.errors import short
from pinnlog.analyzer.store.format import STATUS_VALUES

__all__ = ["DAMAGED", "OK", "WARNING", "Finding", "check_root_attrs", "short"]

OK, WARNING, DAMAGED = "ok", "warning", "damaged"
HUGE_STRING = 100_000  # characters; format 1 truncates the model repr to 4,000


@dataclass(frozen=True)
class Finding:
    """One line of the verdict: where, what was checked, how it went (ok/warning/damaged), and details."""

    where: str
    check: str
    level: str
    detail: str = ""


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _longest_string(value: Any, depth: int = 0) -> int:
    if depth > 64:
        return 0
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return max([_longest_string(k, depth + 1) for k in value] + [_longest_string(v, depth + 1) for v in value.values()] + [0])
    if isinstance(value, list):
        return max([_longest_string(v, depth + 1) for v in value] + [0])
    return 0


def _layout_problem(layout: Any) -> str | None:
    if not isinstance(layout, list) or not layout:
        return f"layout {short(layout)} is not a non-empty list of tensors"
    offset = 0
    for i, t in enumerate(layout):
        if not isinstance(t, dict):
            return f"layout[{i}] is not an object"
        shape, numel = t.get("shape"), t.get("numel")
        if not isinstance(t.get("name"), str):
            return f"layout[{i}] has no string 'name'"
        if not isinstance(shape, list) or not all(_is_int(s) and s >= 0 for s in shape):
            return f"layout[{i}].shape {short(shape)} is not a list of sizes"
        if not _is_int(numel) or numel != math.prod(shape):
            return f"layout[{i}].numel {short(numel)} is not the product of its shape"
        if t.get("offset") != offset:
            return f"layout[{i}].offset {short(t.get('offset'))}, expected {offset} (tensors are contiguous)"
        if not _is_int(t.get("layer")) or t["layer"] < 0:
            return f"layout[{i}].layer {short(t.get('layer'))} is not a layer index"
        if not isinstance(t.get("is_bias"), bool):
            return f"layout[{i}].is_bias {short(t.get('is_bias'))} is not true/false"
        offset += numel
    return None


def _layers_problem(layers: Any) -> str | None:
    if not isinstance(layers, list):
        return f"layers {short(layers)} is not a list"
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict) or not isinstance(layer.get("name"), str) or not _is_int(layer.get("index")):
            return f"layers[{i}] lacks an int 'index' and a string 'name'"
        if layer.get("width") is not None and not _is_int(layer.get("width")):
            return f"layers[{i}].width {short(layer.get('width'))} is not an int"
    return None


def check_root_attrs(attrs: dict) -> list[Finding]:
    """Types and consistency of the root attributes (``pinnlog_format`` is checked before this)."""
    out: list[Finding] = []
    status = attrs.get("status")
    if "status" not in attrs:
        out.append(Finding("store", "status", DAMAGED, "no 'status' attribute; `pinnlog verify --repair` sets it"))
    elif not isinstance(status, str) or status not in STATUS_VALUES:
        out.append(Finding("store", "status", DAMAGED, f"status {short(status)} is not one of {list(STATUS_VALUES)}"))
    n_batches = attrs.get("n_batches")
    if "n_batches" not in attrs:
        out.append(Finding("store", "n_batches", WARNING, "no 'n_batches' attribute"))
    elif not isinstance(n_batches, int) or isinstance(n_batches, bool) or n_batches < 1:
        out.append(Finding("store", "n_batches", DAMAGED, f"n_batches {short(n_batches)} is not a positive int"))
    elif n_batches == 1:
        out.append(Finding("store", "n_batches", WARNING, "one batch: every variance is 0 and SNR is infinite"))
    if "layout" in attrs:
        problem = _layout_problem(attrs["layout"])
        out.append(
            Finding("store", "layout", DAMAGED, problem)
            if problem
            else Finding("store", "layout", OK, f"{len(attrs['layout'])} tensors")
        )
    else:
        out.append(Finding("store", "layout", WARNING, "no 'layout' attribute: raw snapshots cannot be split into tensors"))
    if "layers" in attrs:
        problem = _layers_problem(attrs["layers"])
        if problem:
            out.append(Finding("store", "layers", DAMAGED, problem))
    activation_layers = attrs.get("activation_layers", [])
    if not isinstance(activation_layers, list) or not all(isinstance(x, str) for x in activation_layers):
        out.append(Finding("store", "activation_layers", DAMAGED, f"{short(activation_layers)} is not a list of layer names"))
    for key in (
        "created",
        "pinnlog_version",
        "torch_version",
        "device",
        "model",
        "schedule",
        "raw_schedule",
        "residual_schedule",
        "probe_schedule",
        "imported_from",
    ):
        if key in attrs and not isinstance(attrs[key], str):
            out.append(Finding("store", key, WARNING, f"{key} {short(attrs[key])} is not a string"))
    if "shared_loss" in attrs and not isinstance(attrs["shared_loss"], bool):
        out.append(Finding("store", "shared_loss", WARNING, f"shared_loss {short(attrs['shared_loss'])} is not true/false"))
    for key, value in attrs.items():
        longest = _longest_string(value)
        if longest > HUGE_STRING:
            out.append(Finding("store", "attribute size", WARNING, f"{short(key)} holds a string of {longest:,} characters"))
    return out
