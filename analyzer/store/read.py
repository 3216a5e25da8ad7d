"""Open a run store lazily, refusing anything that is not a readable format-1 store.

``open_run`` returns an ``xarray.DataTree`` whose groups are dask-backed Datasets trimmed to their
``n_committed`` rows, with the group's capture axis swapped for ``step``. Every user mistake (wrong
path, not a store, unknown format, nothing committed) is one of the one-line errors of
:mod:`pinnlog.analyzer.errors`, never a traceback from zarr.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
import xarray as xr
import zarr

from pinnlog.analyzer.errors import (
    ArgumentTypeError,
    CorruptStoreError,
    EmptyRunError,
    MissingGroupError,
    NotAStoreError,
    PinnlogError,
    StoreNotFoundError,
)
from pinnlog.analyzer.store.format import GROUPS, STRING, check_format_version, name_coordinates
from pinnlog.analyzer.store.guards import disallowed_codecs, guarded, guarded_dask_array
from pinnlog.analyzer.store.location import open_for_reading
from pinnlog.analyzer.store.metadata import array_values, dimension_names

# The lease and the chunk manifest are files beside the groups; zarr notes, on every listing, that
# they are not Zarr nodes. They are pinnlog's own (docs/format.md): not worth a warning.
warnings.filterwarnings("ignore", message=r"Object at \.pinnlog-.* is not recognized as a component of a Zarr hierarchy")

__all__ = [
    "describe_run",
    "group_sizes",
    "open_group_dataset",
    "open_run",
    "open_store_group",
    "read_root_attrs",
    "require_group",
]


def open_store_group(path: str | os.PathLike, storage_options: dict | None = None) -> zarr.Group:
    """The root ``zarr.Group`` of a run, read-only, or one of our one-line errors.

    ``path`` is a directory, an fsspec URL (``file://``, ``memory://``, ``s3://`` ...) or an already
    open ``zarr`` store object; :func:`~pinnlog.analyzer.store.location.open_for_reading` opens it.
    """
    store, _ = open_for_reading(path, storage_options)
    try:
        root = zarr.open_group(store=store, mode="r", zarr_format=3, use_consolidated=False)
        _check_whole_store(store, root, path)
        return root
    except CorruptStoreError:
        _root_document_refused(store, path)  # as verify says it: a root zarr.json refused is not a store (exit 2)
        raise
    except PinnlogError:
        raise
    except FileNotFoundError as exc:
        raise StoreNotFoundError(str(path)) from exc
    except Exception as exc:
        raise NotAStoreError(f"{path} is not a readable Zarr v3 group ({type(exc).__name__}); pass a pinnlog run store") from exc


def _root_document_refused(store, path) -> None:
    """Raise ``NotAStoreError`` if the root ``zarr.json`` itself is refused (over the size or depth caps, a link ...)."""
    from pinnlog.analyzer.store.metadata import read_root

    try:
        read_root(store, path)
    except NotAStoreError:
        raise
    except PinnlogError:  # the root is readable; the refusal was about something else
        pass


def _check_whole_store(store, root: zarr.Group, path) -> None:
    """A store pinnlog closed (``committed`` attribute, format 1.2) must still hold its chunk manifest."""
    from pinnlog.analyzer.store.format import CHECKSUM_CODEC, DIGESTS_NAME
    from pinnlog.analyzer.store.guards import SafeLocalStore

    attrs = root.attrs
    if (
        isinstance(store, SafeLocalStore)
        and attrs.get("checksums") == CHECKSUM_CODEC
        and attrs.get("status") == "complete"
        and isinstance(attrs.get("committed"), dict)
        and store.digests() is None
    ):
        raise CorruptStoreError(
            f"{path}: {DIGESTS_NAME} is missing from a store pinnlog closed; `pinnlog verify {path}` says what is still usable"
        )


def _check_static(ds: xr.Dataset, attrs: dict, path) -> None:
    """``numel``, ``layer``, ``is_bias`` must be the ``layout`` attribute's: they decide which layer a sum belongs to."""
    from pinnlog.analyzer.store.checks import DAMAGED, static_findings

    values = {v: np.asarray(ds[v].values) for v in ("numel", "layer", "is_bias") if v in ds}
    for finding in static_findings(values, attrs.get("layout")):
        if finding.level == DAMAGED:
            raise CorruptStoreError(
                f"{path}: {finding.where} {finding.detail}; `pinnlog verify {path}` says what is still usable"
            )


def read_root_attrs(root: zarr.Group, path: str | os.PathLike) -> dict[str, Any]:
    """Root attributes after checking ``pinnlog_format``."""
    attrs = dict(root.attrs)
    check_format_version(attrs.get("pinnlog_format"), path, attrs.get("pinnlog_format_minor"))
    return attrs


def _n_committed(group: zarr.Group, path, name: str) -> int:
    n = group.attrs.get("n_committed", 0)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise CorruptStoreError(f"{path}: group {name!r} has an invalid n_committed={str(n)[:40]!r}")
    return n


def _check_codecs(arr: zarr.Array, path, where: str, attrs: dict | None = None, growing: bool = True) -> None:
    meta: dict[str, Any] = arr.metadata.to_dict()
    for name in disallowed_codecs(meta):  # nested codecs (inside sharding) too
        raise CorruptStoreError(f"{path}: {where} uses codec {name[:40]!r}, which pinnlog refuses to decode")
    # byte order, fill value, checksum: what would make zarr read other numbers than pinnlog wrote
    meta = dict(meta, codecs=[c if isinstance(c, dict) else {"name": c} for c in meta.get("codecs", [])])
    from pinnlog.analyzer.store.checks import DAMAGED, codec_findings

    for finding in codec_findings(where, _jsonish(meta), attrs or {}, growing):
        if finding.level == DAMAGED:
            raise CorruptStoreError(f"{path}: {where}: {finding.detail}; `pinnlog verify {path}` says what is still usable")


def _jsonish(meta: dict) -> dict:
    """zarr's metadata dict as its zarr.json says it (fill value NaN as the string "NaN", enums as strings)."""
    import json

    return json.loads(json.dumps(meta, default=lambda o: getattr(o, "value", None) or str(o)))


def group_sizes(root: zarr.Group, path="run") -> dict[str, int]:
    """``{group: n_committed}`` for every format-1 group present."""
    sizes = {}
    for name, member in root.groups():
        if name in GROUPS:
            sizes[name] = _n_committed(member, path, name)
    return sizes


def open_group_dataset(root: zarr.Group, name: str, path, chunks) -> xr.Dataset:
    group = root[name]
    assert isinstance(group, zarr.Group), f"{name} is an array"  # callers pass names from root.groups()
    root_attrs = dict(root.attrs)
    # n_committed is read before any array: rows below it were complete when it was raised, and
    # arrays only grow while a writer runs, so this is a consistent prefix even mid-write.
    n = _n_committed(group, path, name)
    axis = GROUPS[name].axis
    data_vars: dict[str, xr.Variable] = {}
    for var, arr in group.arrays():
        dims = dimension_names(arr)
        if dims is None or len(dims) != arr.ndim or any(d is None for d in dims):
            raise CorruptStoreError(f"{path}: array {name}/{var} has no dimension_names; it was not written by pinnlog")
        expected = GROUPS[name].variables.get(var)
        is_name = expected is not None and expected[1] == STRING  # a 1.1 name coordinate
        if arr.dtype.kind not in "biuf" and not (is_name and arr.dtype.kind in "TU"):
            raise CorruptStoreError(f"{path}: array {name}/{var} has dtype {arr.dtype}, not allowed in format 1")
        _check_codecs(arr, path, f"{name}/{var}", root_attrs, dims[0] == axis)
        if expected and tuple(dims) != expected[0]:
            raise CorruptStoreError(
                f"{path}: {name}/{var} has dims {list(dims)[:4]}, format 1 says {list(expected[0])}; "
                "it was not written by pinnlog"
            )
        growing = dims[0] == axis
        if growing and arr.shape[0] < n:
            raise CorruptStoreError(
                f"{path}: {name}/{var} holds {arr.shape[0]} rows but n_committed={n}; run `pinnlog verify --repair`"
            )
        if is_name and not growing:
            data = np.array(array_values(arr).tolist(), dtype=str)  # a handful of names: plain numpy strings
        elif not growing or var == "step":
            # Static arrays (numel, layer, is_bias per tensor) and the step coordinate are tiny and
            # needed to shape every result, so they are read now rather than on every compute.
            data = array_values(arr, n if growing else None)
        else:
            native = getattr(arr, "shards", None) or arr.chunks  # whole shards: one read per task
            wanted = tuple(chunks.get("step" if d == axis else d, c) for d, c in zip(dims, native)) if chunks else native
            data = guarded_dask_array(arr, wanted, path, f"{name}/{var}", rows=n)  # a bad chunk: CorruptStoreError
        data_vars[var] = xr.Variable(dims, data, attrs=dict(arr.attrs))
    attrs = dict(group.attrs)
    attrs["n_committed"] = n
    ds = xr.Dataset(data_vars, attrs=attrs)
    ds = ds.set_coords([c for c in GROUPS[name].coords if c in ds.variables])
    if "step" in ds and ds["step"].dims == (axis,):
        ds = ds.set_coords("step")
        if axis != "step":
            ds = ds.swap_dims({axis: "step"})
    return ds


def open_run(
    path: str | os.PathLike, *, chunks: dict[str, int] | None = None, storage_options: dict | None = None
) -> xr.DataTree:
    """Open a run lazily.

    Nothing but metadata, the ``step`` coordinates and the per-tensor constants (``numel``,
    ``layer``, ``is_bias``) is read; every other array is a dask array over the store's chunks
    (whole shards where the store is sharded). Each group is trimmed to the ``n_committed`` it had
    when opened, so a store that is still being written opens as a consistent prefix; open it
    again to see newer rows.

    Parameters
    ----------
    path : str, path-like or zarr store
        A ``*.zarr`` directory, any URL that zarr/fsspec opens (``file://``, ``memory://``,
        ``s3://`` ...), or an open ``zarr.abc.store.Store``.
    chunks : dict, optional
        dask chunk sizes by dimension name for the growing arrays, e.g. ``{"param": 2**20}`` or
        ``{"step": 64}`` (``step`` names each group's growing axis); other dimensions keep the
        store's own chunks (whole shards where sharded), which is also the default.
    storage_options : dict, optional
        Passed to fsspec for URLs (credentials, endpoint ...).

    Returns
    -------
    xarray.DataTree
        Root attrs are the run's metadata; each child (``scalars``, ``gradient_stats``, ...) is a
        dask-backed Dataset over ``step``, trimmed to its committed rows. Each child's attrs also
        carry the run's ``layers`` and ``layout`` (when recorded), so a metric given only the
        group's Dataset still knows the layer names and the parameter layout.

    Raises
    ------
    StoreNotFoundError, NotAStoreError, UnknownFormatError, EmptyRunError, CorruptStoreError

    Examples
    --------
    >>> run = open_run("runs/ac.zarr")                       # doctest: +SKIP
    >>> run["gradient_stats"]["sum_mu2"].dims                  # doctest: +SKIP
    ('step', 'tensor')
    """
    if chunks is not None and not isinstance(chunks, dict):
        raise ArgumentTypeError(f"chunks must be a dict of dimension name -> chunk size, like {{'param': 2**20}}; got {chunks!r}")
    root = open_store_group(path, storage_options)
    attrs = read_root_attrs(root, path)
    sizes = guarded(path, "the list of groups", group_sizes, root, path)
    if not any(sizes.values()):
        raise EmptyRunError(f"{path} holds no committed step yet; record at least one step (rec.step) and retry")
    children = {name: guarded(path, f"group {name!r}", open_group_dataset, root, name, path, chunks) for name in sizes}
    if "gradient_stats" in children:
        _check_static(children["gradient_stats"], attrs, path)
    for name, ds in children.items():
        for key in ("layers", "layout"):
            if key in attrs:
                ds.attrs[key] = attrs[key]
        children[name] = _with_name_coordinates(ds, name, attrs)
    tree = xr.DataTree(dataset=xr.Dataset(attrs=attrs), children={k: xr.DataTree(v) for k, v in children.items()})
    tree.attrs["source"] = str(path) if isinstance(path, (str, os.PathLike)) else repr(path)
    return tree


def _with_name_coordinates(ds: xr.Dataset, name: str, attrs: dict) -> xr.Dataset:
    """A format-1.0 group gets the name coordinates a 1.1 store holds, built from the ``layout`` attribute."""
    missing = [c for c in GROUPS[name].coords if c not in ds.coords]
    coords = name_coordinates(attrs.get("layout"), attrs.get("layers")) if missing else None
    if coords is None or not all(len(coords[c]) == ds.sizes.get(GROUPS[name].variables[c][0][0], -1) for c in missing):
        return ds
    return ds.assign_coords({c: (GROUPS[name].variables[c][0], np.asarray(coords[c], dtype=str)) for c in missing})


def require_group(run: xr.DataTree, name: str, variable: str | None = None) -> xr.Dataset:
    """The Dataset of group ``name``, or a ``MissingGroupError`` that names the recorder option."""
    spec = GROUPS.get(name)
    option = spec.option if spec else "?"
    if name not in run.children or run[name].to_dataset().sizes.get("step", 1) == 0:
        raise MissingGroupError(f"this run has no {name!r} data; record it with Recorder({option} ...)")
    ds = run[name].to_dataset()
    if variable is not None and variable not in ds:
        raise MissingGroupError(f"this run's {name!r} group has no {variable!r}; record it with Recorder({option} ...)")
    return ds


def describe_run(path: str | os.PathLike) -> dict[str, Any]:
    """Metadata-only facts about a run (what ``pinnlog info`` prints): attrs, groups, shapes, bytes."""
    root = open_store_group(path)
    attrs = read_root_attrs(root, path)
    # metadata zarr cannot parse (not JSON, an unknown codec, a bad chunk key separator ...) is one
    # CorruptStoreError naming the group, as open_run says it
    sizes = guarded(path, "the list of groups", group_sizes, root, path)
    groups = [guarded(path, f"group {name!r}", _describe_group, root, name, n, path) for name, n in sizes.items()]
    return {"path": str(path), "attrs": attrs, "groups": groups, "bytes": sum(g["bytes"] for g in groups)}


def _describe_group(root: zarr.Group, name: str, n: int, path) -> dict[str, Any]:
    group = root[name]
    assert isinstance(group, zarr.Group), f"{name} is an array"  # group_sizes lists groups only
    shapes: dict[str, tuple[int, ...]] = {}
    nbytes = 0
    for var, arr in group.arrays():
        _check_codecs(arr, path, f"{name}/{var}")  # info lists sizes only, but never of an array it would refuse
        dims = dimension_names(arr) or ()
        shape = list(arr.shape)
        if dims and dims[0] == GROUPS[name].axis:
            shape[0] = min(shape[0], n)
        shapes[var] = tuple(shape)
        nbytes += int(arr.nbytes_stored())
    return {"name": name, "n_committed": n, "shapes": shapes, "bytes": nbytes}
