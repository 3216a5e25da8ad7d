"""Raw metadata of a run store: every ``zarr.json`` read as plain JSON before zarr interprets it.

``pinnlog verify`` and ``--repair`` go through these, so that one damaged array (bad JSON, an unknown
codec, a pipe) is reported on its own instead of making zarr refuse the whole group. Stores come from
:mod:`~pinnlog.analyzer.store.location` (local ones as :class:`~.guards.SafeLocalStore`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pinnlog.analyzer.errors import CorruptStoreError, NotAStoreError, short
from pinnlog.analyzer.store.format import check_format_version
from pinnlog.analyzer.store.location import Location

if TYPE_CHECKING:
    import zarr

__all__ = [
    "array_values",
    "chunk_grid_shape",
    "dimension_names",
    "is_stub",
    "jsonable",
    "list_children",
    "partial_files",
    "read_json",
    "read_root",
    "sync",
]


def sync(coro):
    from zarr.core.sync import sync

    return sync(coro)


def read_json(store, key: str) -> dict:
    """``key`` parsed as a JSON object; CorruptStoreError when it is absent, unreadable or not an object."""
    from zarr.core.buffer import default_buffer_prototype

    buf = sync(store.get(key, prototype=default_buffer_prototype()))
    if buf is None:
        raise CorruptStoreError(f"{key} is missing")
    try:
        doc = json.loads(buf.to_bytes())
    except RecursionError as exc:
        raise CorruptStoreError(f"{key} is nested too deeply to be pinnlog metadata") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptStoreError(f"{key} is not valid JSON ({short(str(exc), 60, raw=True)})") from exc
    if not isinstance(doc, dict):
        raise CorruptStoreError(f"{key} is not a JSON object")
    return doc


def list_children(store, prefix: str) -> list[str]:
    """Names of the nodes directly under ``prefix`` (entries that hold a ``zarr.json``)."""

    async def names():
        return [name async for name in store.list_dir(prefix)]

    from pinnlog.analyzer.store.format import DIGESTS_NAME
    from pinnlog.analyzer.store.lease import LEASE_NAME

    found = []
    for name in sorted(sync(names())):
        if name not in ("zarr.json", DIGESTS_NAME, LEASE_NAME) and not name.endswith(".partial"):
            found.append(name)
    return found


def is_stub(store, prefix: str) -> bool:
    """True if ``prefix`` holds no file but temporary ones: a node whose creation a kill interrupted.

    zarr creates a node's folder, writes ``zarr.<id>.partial`` and renames it to ``zarr.json``; a kill
    in between leaves the folder alone. Such a node never held a committed row.
    """

    async def keys():
        return [key async for key in store.list_prefix(prefix.rstrip("/") + "/")]

    return all(key.endswith(".partial") for key in sync(keys()))


def partial_files(loc: Location) -> list[Path]:
    """Temporary files of atomic writes that a kill interrupted (zarr writes ``*.partial`` then renames); local stores only."""
    if loc.local is None:
        return []
    return [p for p in loc.local.rglob("*.partial") if p.is_file() and not p.is_symlink()]


def read_root(store, path) -> dict:
    """The root metadata, after checking it is a Zarr v3 group with a ``pinnlog_format`` we read."""
    try:
        root = read_json(store, "zarr.json")
    except CorruptStoreError as exc:
        raise NotAStoreError(f"{path} is not a readable Zarr v3 group ({exc}); pass a pinnlog run store") from exc
    if root.get("zarr_format") != 3 or root.get("node_type") != "group":
        raise NotAStoreError(f"{path} is not a Zarr v3 group; pass a directory written by pinnlog")
    attrs = root["attributes"] if isinstance(root.get("attributes"), dict) else {}
    check_format_version(attrs.get("pinnlog_format"), path, attrs.get("pinnlog_format_minor"))
    return root


def jsonable(value: Any) -> Any:
    """Attributes must be plain JSON: numpy scalars become Python numbers, tuples lists."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


# -- typed views of an open zarr array ----------------------------------------------------------------
# zarr types an array's metadata as "v2 or v3" and its indexing as "any scalar or array"; pinnlog opens
# every node with zarr_format=3 and reads through the default (numpy) buffer, so these narrow the types.
def dimension_names(arr: zarr.Array) -> tuple[str | None, ...] | None:
    """The array's ``dimension_names`` as its metadata holds them (None when it has none)."""
    from zarr.core.metadata import ArrayV3Metadata

    meta = arr.metadata
    assert isinstance(meta, ArrayV3Metadata), "pinnlog opens Zarr v3 nodes only"
    return meta.dimension_names


def chunk_grid_shape(arr: zarr.Array) -> tuple[int, ...]:
    """The shape of the array's (outer) chunks: its regular chunk grid, the only grid zarr 3 reads."""
    from zarr.core.chunk_grids import RegularChunkGrid

    grid = arr.metadata.chunk_grid
    assert isinstance(grid, RegularChunkGrid), "zarr 3 reads regular chunk grids only"
    return grid.chunk_shape


def array_values(arr: zarr.Array, n: int | None = None) -> np.ndarray:
    """``arr[:n]`` (every element when ``n`` is None) as a numpy array."""
    return np.asarray(arr[:n] if n is not None else arr[...])
