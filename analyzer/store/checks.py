"""The findings of ``pinnlog verify`` and the checks of a run's root attributes (docs/format.md, "Root attributes").

Every detail string is built with :func:`short`, so an attribute holding 10 MB or markup never reaches
a terminal or a report whole.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

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


# -- cross-checks of the arrays (``pinnlog verify``) -------------------------------------------------------
#: Unit roundoff of float32: a stored float32 value is its float64 source to a relative 2**-24.
U32 = 2.0**-24
#: Relative slack for float64 sums computed in a different order (two-pass in blocks, both sides).
F64_SLACK = 1e-12


def codec_findings(where: str, meta: dict, attrs: dict, growing: bool = True) -> list[Finding]:
    """The codec chain against format 1: little-endian ``bytes``, no storage transformers, a regular grid,
    the ``/`` or ``.`` chunk-key separator, the format's fill value (growing arrays: a static one is checked
    against ``layout`` instead), and (format 1.2) ``crc32c`` last."""
    from pinnlog.analyzer.store.format import CHECKSUM_CODEC, fill_value

    out: list[Finding] = []
    codecs = meta.get("codecs")
    if not isinstance(codecs, list) or not codecs:
        return [Finding(where, "codecs", DAMAGED, f"codecs {short(codecs)} is not a list of codecs")]
    names = [c.get("name") if isinstance(c, dict) else c for c in codecs]
    for c in codecs:
        if isinstance(c, dict) and c.get("name") == "bytes":
            conf = c.get("configuration") or {}
            endian = conf.get("endian", "little") if isinstance(conf, dict) else None
            one_byte = isinstance(meta.get("data_type"), str) and meta["data_type"] in ("bool", "int8", "uint8")
            if endian != "little" and not (one_byte and endian is None):
                out.append(
                    Finding(where, "codecs", DAMAGED, f"bytes codec endian {short(endian)}; format 1 writes little-endian")
                )
    if meta.get("storage_transformers"):
        out.append(Finding(where, "codecs", DAMAGED, "storage_transformers are not part of format 1 (never decoded)"))
    grid = meta.get("chunk_grid")
    if not (isinstance(grid, dict) and grid.get("name") == "regular"):
        out.append(Finding(where, "chunks", DAMAGED, f"chunk grid {short(grid)} is not format 1's regular grid"))
    enc = meta.get("chunk_key_encoding")
    sep = (
        (enc.get("configuration") or {}).get("separator", "/")
        if isinstance(enc, dict) and isinstance(enc.get("configuration", {}), dict)
        else None
    )
    if not isinstance(enc, dict) or enc.get("name") not in ("default", "v2") or sep not in ("/", "."):
        out.append(Finding(where, "chunks", DAMAGED, f"chunk_key_encoding {short(enc)} is not format 1's"))
    dtype = meta.get("data_type")
    if growing and isinstance(dtype, str) and dtype != "string":
        try:
            want = fill_value(dtype)
        except TypeError:
            want = None
        got = meta.get("fill_value")
        nan = (isinstance(got, str) and got == "NaN") or (isinstance(got, float) and math.isnan(got))
        same = (nan and isinstance(want, float)) or (got == want and type(got) is type(want))
        if want is not None and not same:
            out.append(
                Finding(
                    where,
                    "fill value",
                    DAMAGED,
                    f"fill_value {short(got)}, format 1 says {short(want)}: a missing chunk would read as it",
                )
            )
    if attrs.get("checksums") == CHECKSUM_CODEC and (not names or names[-1] != CHECKSUM_CODEC):
        out.append(Finding(where, "checksum", DAMAGED, "the store says every chunk carries a crc32c, this array's codecs do not"))
    return out


def static_findings(values: dict, layout: Any) -> list[Finding]:
    """``numel``, ``layer``, ``is_bias`` of ``gradient_stats`` against the ``layout`` attribute (same tensors, same order)."""
    out: list[Finding] = []
    if _layout_problem(layout) is not None:
        return out
    for var in ("numel", "layer", "is_bias"):
        if var not in values:
            continue
        got = values[var]
        want = [t[var] for t in layout]
        if len(got) != len(want) or any(bool(g != w) for g, w in zip(got.tolist(), want)):
            first = next((i for i, (g, w) in enumerate(zip(got.tolist(), want)) if g != w), min(len(got), len(want)))
            out.append(
                Finding(
                    f"gradient_stats/{var}", "layout", DAMAGED, f"differs from the layout attribute (first at tensor {first})"
                )
            )
        else:
            out.append(Finding(f"gradient_stats/{var}", "layout", OK, "agrees with the layout attribute"))
    return out


def raw_sum_tolerance(mu2: np.ndarray, sigma2: np.ndarray, rms2_raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How far ``sum_mu2`` and ``sum_sigma2`` recomputed from float32 batch-gradient rows may be from the stored ones.

    The recorder reduces the K float32 rows g_b in float64 and then (``shared_loss``) stores
    r_b = fl32(g_b + fl32(s)). Per element |r_b - (g_b + s)| <= u |r_b| + u |s| (u = 2**-24); the
    part u |s| is the same in every row, so it moves the mean but not the variance. With
    E = 4 u sqrt(sum_rms2) (the rows' own root mean square norm, x 2 for both roundings and x 2 slack),
    Cauchy-Schwarz gives |Δ sum_mu2| <= 2 sqrt(sum_mu2) E + E² and the same for ``sum_sigma2``:
    relative to sigma² that is 8u sqrt(1 + SNR), so the tolerance grows with the SNR as the rounding does
    (Eq 8's SNR = sum_mu2 / sum_sigma2). A float64 term covers summation order.
    """
    e = 4 * U32 * np.sqrt(np.maximum(rms2_raw, 0))
    slack = F64_SLACK * np.abs(rms2_raw)
    tol_mu2 = 2 * np.sqrt(np.maximum(mu2, 0)) * e + e * e + slack
    tol_sigma2 = 2 * np.sqrt(np.maximum(sigma2, 0)) * e + e * e + slack
    return tol_mu2, tol_sigma2


def tensor_sums(rows: np.ndarray, layout: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per tensor (two-pass, float64): ``sum_mu2``, ``sum_sigma2``, ``sum_rms2`` of K x P float32 ``rows`` (Eq 8)."""
    k = rows.shape[0]
    mu2, sigma2, rms2 = [], [], []
    for t in layout:
        x = rows[:, t["offset"] : t["offset"] + t["numel"]].astype(np.float64)
        with np.errstate(invalid="ignore", over="ignore"):  # non-finite rows give non-finite sums: the checks report those
            mu = x.mean(axis=0)
            mu2.append(float(mu @ mu))
            d = x - mu
            sigma2.append(float((d * d).sum() / k))
            rms2.append(float((x * x).sum() / k))
    return np.asarray(mu2), np.asarray(sigma2), np.asarray(rms2)
