"""Check a run store end to end (``pinnlog verify``).

:func:`verify_run` reads every ``zarr.json`` as plain JSON before zarr interprets it, so one damaged
array cannot hide the others: it checks the format version, the root attributes, every group's arrays
(dims, dtypes, codecs, capacity against ``n_committed``), decodes every committed chunk, checks the
reductions' own identity (``sum_rms2 = sum_mu2 + sum_sigma2``) and their agreement with the raw
snapshots (SNR to 1e-6, :func:`pinnlog.analyzer.metrics.check_consistency`), and the status. It
never decodes an array whose codecs are outside the allow-list, and reads local stores through
:class:`~pinnlog.analyzer.store.guards.SafeLocalStore` (no links leaving the store, no pipes).

:mod:`~pinnlog.analyzer.store.repair` builds on this module (never the other way round).
"""

from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pinnlog.analyzer.errors import CorruptStoreError, short
from pinnlog.analyzer.store.checks import (
    DAMAGED,
    OK,
    WARNING,
    Finding,
    check_root_attrs,
    codec_findings,
    raw_sum_tolerance,
    static_findings,
    tensor_sums,
)
from pinnlog.analyzer.store.format import CHECKSUM_CODEC, CHUNK_MAX_BYTES, GROUPS, STRING, activation_dim
from pinnlog.analyzer.store.guards import disallowed_codecs, unsafe_entries
from pinnlog.analyzer.store.location import open_for_reading
from pinnlog.analyzer.store.metadata import (
    array_values,
    chunk_grid_shape,
    dimension_names,
    is_stub,
    list_children,
    partial_files,
    read_json,
    read_root,
    sync,
)

__all__ = ["SNR_TOLERANCE", "Finding", "VerifyReport", "verify_run"]

SNR_TOLERANCE = 1e-6  # sum_rms2 = sum_mu2 + sum_sigma2 (both float64 in the recorder)
#: verify reads at most this many chunks of one array (a store of 1 M steps of scalars has 123)
MAX_CHUNKS_PER_ARRAY = 10_000_000
STUB = "a folder without metadata: its creation was interrupted (it never held a committed row); --repair removes it"


@dataclass
class VerifyReport:
    """What :func:`verify_run` found. ``exit_code``: 0 healthy, 1 damaged (``usable`` says what is left)."""

    path: str
    status: str | None
    findings: list[Finding] = field(default_factory=list)
    committed: dict[str, int] = field(default_factory=dict)
    usable: dict[str, int] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return not any(f.level == DAMAGED for f in self.findings)

    @property
    def exit_code(self) -> int:
        return 0 if self.healthy else 1

    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.level != OK]

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "status": self.status,
            "healthy": self.healthy,
            "committed": dict(self.committed),
            "usable": dict(self.usable),
            "findings": [f.__dict__ for f in self.findings],
        }

    def __str__(self) -> str:
        lines = [f"{self.path}: {'healthy' if self.healthy else 'DAMAGED'} (status {self.status!r})"]
        lines += [f"  {f.level:8s} {f.where:28s} {f.check:22s} {f.detail}" for f in self.findings]
        return "\n".join(lines)


# -- one array ------------------------------------------------------------------------------------------
def _expected(group: str, var: str) -> tuple[tuple[str, ...], str] | None:
    spec = GROUPS[group]
    if var in spec.variables:
        return spec.variables[var]
    if group == "scalars":
        return (("step",), "float64")
    if group == "activations":
        return (("acapture", "probe", activation_dim(var)), "float32")
    return None


def _check_array_metadata(
    group: str, var: str, meta: dict, n: int, out: list[Finding], attrs: dict | None = None
) -> tuple[bool, bool]:
    """Dims, dtype, codecs and capacity of one array from its raw metadata: (may be decoded, conforms)."""
    where = f"{group}/{var}"
    if meta.get("node_type") != "array" or meta.get("zarr_format") != 3:
        out.append(Finding(where, "metadata", DAMAGED, "not a Zarr v3 array"))
        return False, False
    bad = disallowed_codecs(meta)
    if bad:
        out.append(Finding(where, "codecs", DAMAGED, f"codec {short(bad[0])} is not allowed (never decoded)"))
        return False, False
    shape, dims, dtype = meta.get("shape"), meta.get("dimension_names"), meta.get("data_type")
    if not isinstance(shape, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
        out.append(Finding(where, "shape", DAMAGED, f"shape {short(shape)} is not a list of sizes"))
        return False, False
    if not isinstance(dims, list) or len(dims) != len(shape) or not all(isinstance(d, str) for d in dims):
        out.append(Finding(where, "dims", DAMAGED, f"dimension_names {short(dims)} do not name its {len(shape)} dims"))
        return False, False
    expected = _expected(group, var)
    if not _numeric(dtype) and not (expected is not None and expected[1] == STRING == dtype):
        out.append(Finding(where, "dtype", DAMAGED, f"dtype {short(dtype)} is not numeric (never decoded)"))
        return False, False
    conforms = True
    growing = bool(dims) and dims[0] == GROUPS[group].axis
    codec_problems = codec_findings(where, meta, attrs or {}, growing)
    if codec_problems:
        out += codec_problems
        if any(f.check in ("codecs", "chunks") for f in codec_problems):
            return False, False  # never decoded: zarr would read it another way than pinnlog wrote it
        conforms = False
    chunk = (
        (meta.get("chunk_grid") or {}).get("configuration", {}).get("chunk_shape")
        if isinstance(meta.get("chunk_grid"), dict)
        else None
    )
    if (
        not isinstance(chunk, list)
        or len(chunk) != len(shape)
        or not all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in chunk)
    ):
        out.append(Finding(where, "chunks", DAMAGED, f"chunk shape {short(chunk)} does not fit shape {short(shape)}"))
        return False, False
    if math.prod(chunk) * (8 if dtype == STRING else np.dtype(dtype).itemsize) > CHUNK_MAX_BYTES:
        out.append(
            Finding(where, "chunks", DAMAGED, f"chunks of {short(chunk)} exceed pinnlog's limit of {CHUNK_MAX_BYTES:,} bytes")
        )
        return False, False
    expected = _expected(group, var)
    if expected is None:
        out.append(Finding(where, "variable", WARNING, "not a format-1 variable of this group; ignored"))
    else:
        exp_dims, exp_dtype = expected
        if tuple(dims) != exp_dims:
            out.append(Finding(where, "dims", DAMAGED, f"dims {short(dims)}, format 1 says {list(exp_dims)}"))
            conforms = False
        if dtype != exp_dtype:
            out.append(Finding(where, "dtype", DAMAGED, f"dtype {short(dtype)}, format 1 says {exp_dtype}"))
            conforms = False
    axis = GROUPS[group].axis
    if dims and dims[0] == axis and shape[0] < n:
        out.append(Finding(where, "capacity", DAMAGED, f"holds {shape[0]} rows but n_committed={n}"))
        return False, False
    return True, conforms


def _numeric(dtype: Any) -> bool:
    try:
        return isinstance(dtype, str) and np.dtype(dtype).kind in "biuf"
    except TypeError:
        return False


def _decode_array(store, key: str, n: int, axis: str, out: list[Finding]) -> tuple[set[int], np.ndarray | None]:
    """Read every committed chunk of one array; rows (along ``axis``) of chunks that fail, and a 1-d copy.

    The copy (committed rows) is returned for 1-d arrays only (``step`` columns, scalars), to check them.
    """
    import zarr

    arr = zarr.open_array(store=store, path=key, mode="r", zarr_format=3)
    dims: tuple[str | None, ...] = dimension_names(arr) or ()
    growing = bool(dims) and dims[0] == axis
    limits = [min(n, arr.shape[0]) if growing else arr.shape[0], *arr.shape[1:]] if arr.ndim else []
    chunk_shape = chunk_grid_shape(arr)
    bad_rows: set[int] = set()
    missing = failed = 0
    first_error = ""
    n_chunks = math.prod(math.ceil(lim / c) for lim, c in zip(limits, chunk_shape))
    if n_chunks > MAX_CHUNKS_PER_ARRAY:
        out.append(
            Finding(key, "chunks", DAMAGED, f"{n_chunks:,} chunks to read, over pinnlog's limit of {MAX_CHUNKS_PER_ARRAY:,}")
        )
        return {-1}, None
    copy = np.empty(limits[0], dtype=arr.dtype) if arr.ndim == 1 and limits[0] <= 2**27 else None
    for coords in itertools.product(*(range(math.ceil(lim / c)) for lim, c in zip(limits, chunk_shape))):
        region = tuple(slice(i * c, min((i + 1) * c, lim)) for i, c, lim in zip(coords, chunk_shape, limits))
        try:
            if not sync(store.exists(f"{key}/{arr.metadata.encode_chunk_key(coords)}")):
                missing += 1
            block = arr[region]
            if copy is not None:
                copy[region[0]] = block
        except Exception as exc:
            failed += 1
            if isinstance(exc, CorruptStoreError):  # ours: "<store>: <what>"; the store is named above already
                text = str(exc).split(": ", 1)[-1]
            else:
                text = f"{type(exc).__name__}: {exc}"
            first_error = first_error or short(text, 100, raw=True)
            if growing:
                bad_rows.update(range(region[0].start, region[0].stop))
            else:
                bad_rows.add(-1)  # a static array: the whole group is affected
    if failed:
        out.append(Finding(key, "decode", DAMAGED, f"{failed} chunk(s) do not decode: {first_error}"))
    elif missing and growing:  # zarr skips chunks equal to the fill value, so an absent chunk may be fine
        out.append(
            Finding(
                key,
                "chunks",
                WARNING,
                f"{missing} committed chunk(s) absent: they read as the fill value "
                "(NaN or -1), as zarr skips all-fill chunks; if data was there, it is lost",
            )
        )
    if copy is not None and failed:
        copy = None
    return bad_rows, copy


# -- one group ------------------------------------------------------------------------------------------
def _check_group(store, name: str, gmeta: dict, attrs: dict, out: list[Finding], decode: bool = True) -> tuple[int, int, dict]:
    """Checks of one format-1 group; returns (committed, usable rows, {var: 1-d committed values})."""
    spec = GROUPS[name]
    attributes = gmeta.get("attributes")
    gattrs = attributes if isinstance(attributes, dict) else {}
    n = gattrs.get("n_committed", 0)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        out.append(Finding(name, "n_committed", DAMAGED, f"n_committed={short(n)} is not a non-negative int"))
        return 0, 0, {}
    if gattrs.get("axis", spec.axis) != spec.axis:
        out.append(Finding(name, "axis", WARNING, f"axis attribute {short(gattrs.get('axis'))}, format 1 says {spec.axis!r}"))
    metas: dict[str, dict] = {}
    structural_ok = True
    for var in list_children(store, name):
        try:
            metas[var] = read_json(store, f"{name}/{var}/zarr.json")
        except CorruptStoreError as exc:
            stub = is_stub(store, f"{name}/{var}")
            out.append(Finding(f"{name}/{var}", "metadata", WARNING if stub else DAMAGED, STUB if stub else str(exc)))
            structural_ok = structural_ok and stub
    for var in spec.variables if n else ():  # a group that committed nothing may have no arrays yet
        if var not in metas and var not in spec.optional and not any(f.where == f"{name}/{var}" for f in out):
            out.append(Finding(f"{name}/{var}", "present", DAMAGED, "required variable is missing"))
            structural_ok = False
    verdicts = {var: _check_array_metadata(name, var, meta, n, out, attrs) for var, meta in metas.items()}
    decodable = {var: v[0] for var, v in verdicts.items()}
    structural_ok = structural_ok and all(v[0] and v[1] for v in verdicts.values())
    sizes_ok = _check_sizes(name, metas, attrs, out)
    bad_rows: set[int] = set()
    columns: dict[str, np.ndarray] = {}
    for var, ok in decodable.items():
        if ok and n and decode:
            rows, column = _decode_array(store, f"{name}/{var}", n, spec.axis, out)
            bad_rows |= rows
            if column is not None:
                columns[var] = column
    if "step" in columns:
        step = columns["step"]
        if np.any(step < 0) or np.any(np.diff(step) <= 0):
            out.append(Finding(f"{name}/step", "steps", DAMAGED, "steps are not strictly increasing non-negative numbers"))
            structural_ok = False
    if not structural_ok or not sizes_ok or -1 in bad_rows:
        usable = 0
    else:
        usable = n - len(bad_rows)
    return n, usable, columns


def _check_sizes(name: str, metas: dict, attrs: dict, out: list[Finding]) -> bool:
    """One size per dimension across the group, and the sizes the root attributes imply."""
    sizes: dict[str, set[int]] = {}
    for meta in metas.values():
        dims, shape = meta.get("dimension_names"), meta.get("shape")
        if isinstance(dims, list) and isinstance(shape, list) and len(dims) == len(shape):
            for d, s in zip(dims[1:], shape[1:]):  # the growing axis differs by capacity; skip dim 0
                if isinstance(d, str) and isinstance(s, int):
                    sizes.setdefault(d, set()).add(s)
            if dims and dims[0] != GROUPS[name].axis and isinstance(dims[0], str) and shape and isinstance(shape[0], int):
                sizes.setdefault(dims[0], set()).add(shape[0])
    ok = True
    for dim, found in sizes.items():
        if len(found) > 1:
            out.append(Finding(name, "sizes", DAMAGED, f"dimension {short(dim)} has sizes {sorted(found)} in different arrays"))
            ok = False
    expected = {}
    layout = attrs.get("layout")
    if isinstance(layout, list) and all(isinstance(t, dict) and isinstance(t.get("numel"), int) for t in layout):
        expected["tensor"] = len(layout)
        expected["param"] = sum(t["numel"] for t in layout)
    if isinstance(attrs.get("n_batches"), int):
        expected["batch"] = attrs["n_batches"]
    layers = attrs.get("layers")
    for layer in layers if isinstance(layers, list) else []:
        # ``units`` (values per probe sample: C x H x W of a convolution, time x hidden of an RNN) when the
        # recorder wrote it; older stores only have ``width``, which is the units of a Linear layer.
        units = layer.get("units", layer.get("width")) if isinstance(layer, dict) else None
        if isinstance(layer, dict) and isinstance(layer.get("name"), str) and isinstance(units, int):
            expected[activation_dim(layer["name"])] = units
    for dim, want in expected.items():
        if dim in sizes and sizes[dim] != {want}:
            out.append(
                Finding(name, "sizes", DAMAGED, f"dimension {dim} has size {sorted(sizes[dim])}, the root attributes say {want}")
            )
            ok = False
    return ok


def _check_reductions(store, n: int, out: list[Finding]) -> np.ndarray:
    """``sum_rms2 = sum_mu2 + sum_sigma2`` and non-negative sums on finite rows; returns a mask of the rows that fail."""
    import zarr

    arrays = {
        v: array_values(zarr.open_array(store=store, path=f"gradient_stats/{v}", mode="r"), n)
        for v in ("sum_mu2", "sum_sigma2", "sum_rms2")
    }
    mu2, sigma2, rms2 = arrays["sum_mu2"], arrays["sum_sigma2"], arrays["sum_rms2"]
    finite = np.isfinite(mu2) & np.isfinite(sigma2) & np.isfinite(rms2)
    with np.errstate(invalid="ignore", over="ignore"):
        gap = np.abs(rms2 - (mu2 + sigma2)) > SNR_TOLERANCE * np.maximum(np.abs(rms2), 1e-300)
        negative = (mu2 < 0) | (sigma2 < 0)
    bad = np.any(finite & (gap | negative), axis=tuple(range(1, mu2.ndim)))
    n_bad = int(bad.sum())
    if n_bad:
        out.append(
            Finding(
                "gradient_stats",
                "reductions",
                DAMAGED,
                f"{n_bad} capture(s) break sum_rms2 = sum_mu2 + sum_sigma2 or are negative",
            )
        )
    else:
        out.append(Finding("gradient_stats", "reductions", OK, "sum_rms2 = sum_mu2 + sum_sigma2 on every finite row"))
    n_nonfinite = int((~finite).any(axis=tuple(range(1, mu2.ndim))).sum())
    if n_nonfinite:
        out.append(
            Finding("gradient_stats", "finite", WARNING, f"{n_nonfinite} capture(s) hold NaN/inf (metrics give NaN/inf there)")
        )
    return bad


def _read(store, key: str, n: int | None = None) -> np.ndarray:
    import zarr

    arr = zarr.open_array(store=store, path=key, mode="r", zarr_format=3)
    return array_values(arr, n)


def _check_consistency(store, attrs: dict, n_stats: int, n_raw: int, out: list[Finding], skip_steps: set[int]) -> int:
    """The reductions recomputed from the raw batch-gradient snapshots against the stored ones; rows that disagree.

    Tolerances: :func:`~.checks.raw_sum_tolerance` (float32 rounding of the rows, shared gradient included).
    Steps in ``skip_steps`` (reductions already found broken) are not compared.
    """
    layout = attrs.get("layout")
    try:
        steps = _read(store, "gradient_stats/step", n_stats)
        sums = {v: _read(store, f"gradient_stats/{v}", n_stats) for v in ("sum_mu2", "sum_sigma2")}
        raw_steps = _read(store, "batch_gradients/step", n_raw)
        import zarr

        raw = zarr.open_array(store=store, path="batch_gradients/batch_gradients", mode="r", zarr_format=3)
        row_of: dict[int, int] = {}
        for row, st in enumerate(steps.tolist()):
            row_of.setdefault(int(st), row)
        bad_steps, checked, worst = [], 0, 0.0
        for j, st in enumerate(raw_steps.tolist()):
            i = row_of.get(int(st))
            if i is None or int(st) in skip_steps:
                continue
            mu2, sigma2, rms2 = tensor_sums(np.asarray(raw[j]), layout)
            stored_mu2, stored_sigma2 = sums["sum_mu2"][i], sums["sum_sigma2"][i]
            if not (np.all(np.isfinite(stored_mu2)) and np.all(np.isfinite(mu2))):
                continue
            tol_mu2, tol_sigma2 = raw_sum_tolerance(np.maximum(mu2, stored_mu2), np.maximum(sigma2, stored_sigma2), rms2)
            gap = np.maximum(
                np.abs(mu2 - stored_mu2) / np.maximum(tol_mu2, 1e-300),
                np.abs(sigma2 - stored_sigma2) / np.maximum(tol_sigma2, 1e-300),
            )
            checked += 1
            worst = max(worst, float(np.max(gap, initial=0.0)))
            if np.any(gap > 1):
                bad_steps.append(int(st))
    except Exception as exc:
        out.append(Finding("batch_gradients", "raw consistency", WARNING, f"not checked: {short(str(exc), 100, raw=True)}"))
        return 0
    if bad_steps:
        out.append(
            Finding(
                "batch_gradients",
                "raw consistency",
                DAMAGED,
                f"{len(bad_steps)} snapshot(s) disagree with gradient_stats beyond float32 rounding (first at step {bad_steps[0]})",
            )
        )
    elif checked:
        out.append(
            Finding(
                "batch_gradients",
                "raw consistency",
                OK,
                f"{checked} snapshot(s) agree with gradient_stats (worst gap {worst:.2g} of the float32 rounding bound)",
            )
        )
    return len(bad_steps)


def _check_weights(store, attrs: dict, n_stats: int, n_w: int, out: list[Finding]) -> None:
    """``sum_w2`` against the weight snapshots: per tensor, within float32 rounding of the stored weights (4u relative)."""
    from pinnlog.analyzer.store.checks import U32

    layout: Any = attrs.get("layout")  # unchecked JSON: a malformed layout fails below and reads "not checked"
    try:
        steps = _read(store, "gradient_stats/step", n_stats)
        sum_w2 = _read(store, "gradient_stats/sum_w2", n_stats)
        w_steps = _read(store, "weights/step", n_w)
        import zarr

        weights = zarr.open_array(store=store, path="weights/weights", mode="r", zarr_format=3)
        row_of = {int(st): i for i, st in enumerate(steps.tolist())}
        bad, checked = [], 0
        for j, st in enumerate(w_steps.tolist()):
            i = row_of.get(int(st))
            if i is None or not np.all(np.isfinite(sum_w2[i])):
                continue
            w = np.asarray(weights[j]).astype(np.float64)
            got = np.array(
                [float(w[t["offset"] : t["offset"] + t["numel"]] @ w[t["offset"] : t["offset"] + t["numel"]]) for t in layout]
            )
            checked += 1
            if np.any(np.abs(got - sum_w2[i]) > 4 * U32 * np.abs(sum_w2[i]) + 1e-300):
                bad.append(int(st))
    except Exception as exc:
        out.append(Finding("weights", "sum_w2", WARNING, f"not checked: {short(str(exc), 100, raw=True)}"))
        return
    if bad:
        out.append(
            Finding(
                "gradient_stats/sum_w2",
                "weights",
                DAMAGED,
                f"{len(bad)} row(s) disagree with the weight snapshots (first at step {bad[0]})",
            )
        )
    elif checked:
        out.append(Finding("gradient_stats/sum_w2", "weights", OK, f"{checked} row(s) agree with the weight snapshots"))


def _check_recorded_groups(attrs: dict, committed: dict[str, int], out: list[Finding]) -> None:
    """Every group the store says it recorded is there, with the rows it says.

    A store closed by this pinnlog lists ``{group: n_committed}`` in its ``committed`` attribute: exact.
    Older stores only have their schedules: a scheduled group that is missing is a warning (a schedule
    may legitimately never have fired).
    """
    listed = attrs.get("committed")
    if isinstance(listed, dict):
        for name, n in listed.items():
            if name not in GROUPS:
                continue
            if name not in committed:
                out.append(
                    Finding(name, "recorded", DAMAGED, f"the store says {short(n)} row(s) were recorded; the group is missing")
                )
            elif committed[name] != n:
                out.append(
                    Finding(
                        name,
                        "recorded",
                        DAMAGED,
                        f"the store says {short(n)} row(s) were recorded; the group has {committed[name]}",
                    )
                )
        return
    scheduled = {
        "gradient_stats": attrs.get("schedule"),
        "batch_gradients": attrs.get("raw_schedule"),
        "residuals": attrs.get("residual_schedule"),
        "activations": attrs.get("probe_schedule"),
    }
    for name, schedule in scheduled.items():
        if isinstance(schedule, str) and schedule not in ("None", "") and not committed.get(name):
            out.append(
                Finding(
                    name,
                    "recorded",
                    WARNING,
                    f"the schedule {short(schedule, 40, raw=True)} says it was recorded; it is missing or empty",
                )
            )


def _check_manifest(store, loc, attrs: dict, out: list[Finding]) -> None:
    """Every chunk file against the manifest of a closed store (``.pinnlog-digests.json``): none added or deleted."""
    from pinnlog.analyzer.store.format import DIGESTS_NAME
    from pinnlog.analyzer.store.guards import SafeLocalStore

    if not isinstance(store, SafeLocalStore) or loc.local is None:
        return
    try:
        manifest = store.digests()
    except CorruptStoreError as exc:
        out.append(Finding("store", "manifest", DAMAGED, str(exc)))
        return
    if manifest is None:
        if (
            attrs.get("checksums") == CHECKSUM_CODEC
            and attrs.get("status") == "complete"
            and isinstance(attrs.get("committed"), dict)
        ):
            out.append(Finding("store", "manifest", DAMAGED, f"{DIGESTS_NAME} is missing from a store pinnlog closed"))
        return

    async def keys():
        return [key async for key in store.list()]

    present = {k for k in sync(keys()) if "/" in k and not k.endswith(("zarr.json", ".partial"))}
    added = sorted(present - set(manifest))
    deleted = sorted(set(manifest) - present)
    if added:
        out.append(
            Finding(
                "store",
                "manifest",
                DAMAGED,
                f"{len(added)} chunk file(s) pinnlog did not write, e.g. {short(added[0], 60, raw=True)}",
            )
        )
    if deleted:
        out.append(
            Finding("store", "manifest", DAMAGED, f"{len(deleted)} chunk file(s) deleted, e.g. {short(deleted[0], 60, raw=True)}")
        )
    if not added and not deleted:
        out.append(Finding("store", "manifest", OK, f"{len(manifest)} chunk file(s), each as pinnlog wrote it"))


# -- the whole store ------------------------------------------------------------------------------------
def verify_run(path: str | os.PathLike, *, decode: bool = True) -> VerifyReport:
    """Check a run store end to end.

    Parameters
    ----------
    path : str or path-like
        A ``*.zarr`` directory or a URL.
    decode : bool
        Read every committed chunk (default). ``False`` checks metadata only.

    Returns
    -------
    VerifyReport
        ``findings`` (one per check), ``committed`` and ``usable`` rows per group, ``exit_code``
        (0 healthy, 1 damaged).

    Raises
    ------
    StoreNotFoundError, NotAStoreError, UnknownFormatError
        When ``path`` is not a pinnlog store at all (``pinnlog verify`` exits 2).
    """
    store, loc = open_for_reading(path)
    root = read_root(store, path)
    attrs = root["attributes"]
    out: list[Finding] = [Finding("store", "format version", OK, f"pinnlog_format={attrs['pinnlog_format']}")]
    status = attrs.get("status")
    out += check_root_attrs(attrs)
    if loc.local is not None:  # plain paths and file:// URLs alike
        for problem in unsafe_entries(loc.local):
            out.append(Finding("store", "files", DAMAGED, problem))
        partial = partial_files(loc)
        if partial:
            out.append(
                Finding(
                    "store", "files", WARNING, f"{len(partial)} temporary file(s) of interrupted writes; --repair removes them"
                )
            )
    committed, usable = {}, {}
    broken_steps: set[int] = set()
    for name in list_children(store, ""):
        try:
            gmeta = read_json(store, f"{name}/zarr.json")
        except CorruptStoreError as exc:
            if is_stub(store, name):
                out.append(Finding(name, "metadata", WARNING, STUB))
            elif name in GROUPS:
                out.append(Finding(name, "metadata", DAMAGED, str(exc)))
                committed[name], usable[name] = 0, 0
            else:  # a stray file or folder beside the groups: not ours to judge
                out.append(Finding(short(name, 60, raw=True), "entry", WARNING, "not a Zarr node; pinnlog ignores it"))
            continue
        if name not in GROUPS or gmeta.get("node_type") != "group":
            out.append(Finding(name, "group", WARNING, "not a format-1 group; pinnlog ignores it"))
            continue
        group_out: list[Finding] = []
        n, ok_rows, columns = _check_group(store, name, gmeta, attrs, group_out, decode)
        if name == "gradient_stats" and decode and ok_rows == n and n:
            bad = _check_reductions(store, n, group_out)
            ok_rows -= int(bad.sum())
            if "step" in columns:
                broken_steps = {int(s) for s in columns["step"][bad]}
        if not any(f.level == DAMAGED for f in group_out):
            group_out.insert(
                0,
                Finding(
                    name, "arrays", OK, f"{n} committed row(s); dims, dtypes, codecs" + (", chunks decode" if decode else "")
                ),
            )
        out += group_out
        committed[name], usable[name] = n, ok_rows
    links = any(f.check == "files" and f.level == DAMAGED for f in out)
    layout_ok = isinstance(attrs.get("layout"), list) and not any(f.check == "layout" and f.level == DAMAGED for f in out)
    if decode and usable.get("gradient_stats") and usable.get("batch_gradients") and not links and layout_ok:
        usable["batch_gradients"] -= _check_consistency(
            store, attrs, committed["gradient_stats"], committed["batch_gradients"], out, broken_steps
        )
    if decode and usable.get("gradient_stats") and usable.get("weights") and not links and layout_ok:
        _check_weights(store, attrs, committed["gradient_stats"], committed["weights"], out)
    if decode and "gradient_stats" in committed and not links and layout_ok:
        static = {}
        for var in ("numel", "layer", "is_bias"):
            try:
                static[var] = _read(store, f"gradient_stats/{var}")
            except Exception:
                continue  # absent or undecodable: already a finding of the group
        out += static_findings(static, attrs["layout"])
    _check_recorded_groups(attrs, committed, out)
    if decode:
        _check_manifest(store, loc, attrs, out)
    if attrs.get("checksums") != CHECKSUM_CODEC:
        out.append(
            Finding(
                "store",
                "checksum",
                WARNING,
                "written before format 1.2: its chunks carry no checksum, so a flipped bit cannot be detected",
            )
        )
    if not any(committed.values()):
        out.append(Finding("store", "committed", DAMAGED, "no group holds a committed step: nothing to analyse"))
    holder = None
    if loc.local is not None:
        from pinnlog.analyzer.store.lease import current_holder

        holder = current_holder(loc.local)
    if status == "recording" and holder is not None:
        out.append(
            Finding("store", "status", WARNING, f"being written by {holder.describe()}: verify sees its committed rows so far")
        )
    elif status == "recording":
        out.append(
            Finding(
                "store",
                "status",
                DAMAGED,
                "still open (status 'recording'): its writer runs or was killed; if none runs, `pinnlog verify --repair` closes it",
            )
        )
    elif status == "interrupted":
        out.append(
            Finding("store", "status", WARNING, "interrupted: the recording stopped early; every committed step is readable")
        )
    elif status == "complete":
        out.append(Finding("store", "status", OK, "complete"))
    return VerifyReport(str(path), status if isinstance(status, str) else None, out, committed, usable)
