"""Raw access to a run store: every ``zarr.json`` read as plain JSON before zarr interprets it.

``pinnlog verify`` and ``--repair`` go through these, so that one damaged array (bad JSON, an unknown
codec, a pipe) is reported on its own instead of making zarr refuse the whole group. Local stores are
opened as :class:`~pinnlog.analyzer.safe_store.SafeLocalStore`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pinnlog.analyzer.errors import CorruptStoreError, NotAStoreError, StoreNotFoundError, UnknownFormatError
from pinnlog.analyzer.format import KNOWN_FORMATS
from pinnlog.analyzer.safe_store import SafeLocalStore
from pinnlog.analyzer.verify_checks import short

__all__ = ["is_stub", "list_children", "open_raw_store", "partial_files", "read_json", "read_root", "sync"]


def sync(coro):
    from zarr.core.sync import sync

    return sync(coro)


def open_raw_store(path: str | os.PathLike, *, writable: bool = False):
    """A zarr store object for ``path`` (local stores are :class:`SafeLocalStore`), or a not-a-store error."""
    if isinstance(path, str) and "://" in path:
        from zarr.storage import FsspecStore

        try:
            return FsspecStore.from_url(path, read_only=not writable)
        except Exception as exc:
            raise StoreNotFoundError(str(path)) from exc
    p = Path(path)
    if not p.exists():
        raise StoreNotFoundError(str(path))
    if not p.is_dir():
        raise NotAStoreError(f"{path} is a file, not a run store; pass the *.zarr directory")
    if not (p / "zarr.json").exists():
        hint = " (it looks like Zarr v2, which pinnlog does not write)" if (p / ".zgroup").exists() else ""
        raise NotAStoreError(f"{path} is not a Zarr v3 store{hint}; pass a directory written by pinnlog")
    return SafeLocalStore(p, read_only=not writable)


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

    found = []
    for name in sorted(sync(names())):
        if name != "zarr.json" and not name.endswith(".partial"):
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


def partial_files(path) -> list[Path]:
    """Temporary files of atomic writes that a kill interrupted (zarr writes ``*.partial`` then renames)."""
    if isinstance(path, str) and "://" in path:
        return []
    return [p for p in Path(path).rglob("*.partial") if p.is_file() and not p.is_symlink()]


def read_root(store, path) -> dict:
    """The root metadata, after checking it is a Zarr v3 group with a ``pinnlog_format`` we read."""
    try:
        root = read_json(store, "zarr.json")
    except CorruptStoreError as exc:
        raise NotAStoreError(f"{path} is not a readable Zarr v3 group ({exc}); pass a pinnlog run store") from exc
    if root.get("zarr_format") != 3 or root.get("node_type") != "group":
        raise NotAStoreError(f"{path} is not a Zarr v3 group; pass a directory written by pinnlog")
    attrs = root.get("attributes") if isinstance(root.get("attributes"), dict) else {}
    fmt = attrs.get("pinnlog_format")
    if fmt is None:
        raise NotAStoreError(f"{path} is a Zarr store but not a pinnlog run (no 'pinnlog_format' attribute)")
    if isinstance(fmt, bool) or not isinstance(fmt, int) or fmt not in KNOWN_FORMATS:
        raise UnknownFormatError(
            f"{path} has pinnlog_format={short(fmt)}, which this pinnlog does not know (it reads {list(KNOWN_FORMATS)}); upgrade pinnlog"
        )
    return root
