"""Where a run lives, and the one place that turns a location into a zarr store object.

A location is a directory (``run.zarr``), a ``file://`` URL (the same directory), ``memory://`` or any
other fsspec URL (``s3://``, ``gs://`` ...), or a zarr store object already open. Every reader, the
writer, ``verify`` and ``repair`` open stores here, so they agree on what a location means:

- a local directory, however it was named, is read through :class:`~.guards.SafeLocalStore` (no link
  leaving the store, no pipe or device is ever opened) and written through zarr's ``LocalStore``
  (atomic file writes: temp file + rename, which the commit protocol relies on);
- anything else goes to fsspec through ``zarr.storage.FsspecStore``.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from pinnlog.analyzer.errors import NotAStoreError, RecorderError, StoreNotFoundError

__all__ = ["Location", "locate", "open_for_reading", "open_for_writing", "open_writable"]


@dataclass(frozen=True)
class Location:
    """A run's location: ``local`` (a directory) or ``url`` (fsspec) or ``store`` (an open zarr store)."""

    source: str  # as the user wrote it, for messages
    local: Path | None = None
    url: str | None = None
    store: Any = None


def locate(path: str | os.PathLike | Any) -> Location:
    """Classify ``path``: a ``file://`` URL is the local directory it names."""
    from zarr.abc.store import Store

    if isinstance(path, Store):
        return Location(repr(path), store=path)
    if isinstance(path, str) and "://" in path:
        parsed = urlparse(path)
        if parsed.scheme == "file":
            return Location(path, local=Path(unquote(parsed.netloc + parsed.path)))
        return Location(path, url=path)
    return Location(str(path), local=Path(path))


def _check_local_store(loc: Location) -> Path:
    p = loc.local
    assert p is not None
    if not p.exists():
        raise StoreNotFoundError(loc.source)
    if not p.is_dir():
        raise NotAStoreError(f"{loc.source} is a file, not a run store; pass the *.zarr directory")
    if not (p / "zarr.json").is_file():
        hint = " (it looks like Zarr v2, which pinnlog does not write)" if (p / ".zgroup").exists() else ""
        raise NotAStoreError(f"{loc.source} is not a Zarr v3 store{hint}; pass a directory written by pinnlog")
    return p


def _fsspec_store(loc: Location, *, read_only: bool, storage_options: dict | None = None):
    from zarr.storage import FsspecStore

    try:
        return FsspecStore.from_url(str(loc.url), read_only=read_only, storage_options=storage_options)
    except (ImportError, ValueError) as exc:  # unknown scheme, or its fsspec backend not installed
        first_line = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise NotAStoreError(
            f"{loc.source}: cannot open this URL ({first_line}); install the fsspec backend for its scheme or check it"
        ) from exc
    except Exception as exc:
        raise StoreNotFoundError(loc.source) from exc


def open_for_reading(path, storage_options: dict | None = None, *, writable: bool = False):
    """``(store, location)`` for an existing run; a local one is a :class:`SafeLocalStore`.

    ``writable`` is for ``repair`` only: the same guard, opened for writing.
    """
    from pinnlog.analyzer.store.guards import SafeLocalStore

    loc = locate(path)
    if loc.store is not None:
        store = loc.store
        if not writable and not store.read_only:
            store = store.with_read_only(True)
        return store, loc
    if loc.url is not None:
        return _fsspec_store(loc, read_only=not writable, storage_options=storage_options), loc
    p = _check_local_store(loc)
    # absolute: a dask worker with another working directory must find the same files
    return SafeLocalStore(p.absolute(), read_only=not writable), loc


def open_writable(path):
    """An existing run opened for writing (``repair``): same guard as :func:`open_for_reading`."""
    return open_for_reading(path, writable=True)


def _is_pinnlog_store(p: Path) -> bool:
    """True if ``p`` is a directory whose root ``zarr.json`` is a group with a ``pinnlog_format`` attribute."""
    import json

    from pinnlog.analyzer.store.format import METADATA_MAX_BYTES
    from pinnlog.analyzer.store.guards import read_inside

    try:
        raw = read_inside(os.path.realpath(p), "zarr.json", METADATA_MAX_BYTES)
        doc = json.loads(raw) if raw is not None else None
    except Exception:
        return False
    return isinstance(doc, dict) and isinstance(doc.get("attributes"), dict) and "pinnlog_format" in doc["attributes"]


def _empty_keeping(p: Path, keep: str) -> None:
    """Remove everything in directory ``p`` but the file ``keep`` (links are removed, never followed)."""
    for entry in os.scandir(p):
        if entry.name == keep:
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)


def open_for_writing(path, overwrite: bool):
    """``(store, location, lease)`` for a new run at ``path``, refusing to clobber one unless ``overwrite``.

    A local directory comes with its writer lease held (:mod:`~.lease`); ``overwrite`` takes the lease
    of the store it replaces first (refusing a store another process writes) and deletes only a
    pinnlog store (a root ``zarr.json`` with ``pinnlog_format``), never another folder or a file.
    ``lease`` is None for URLs and store objects.
    """

    from pinnlog.analyzer.store.lease import LEASE_NAME, Lease
    from pinnlog.analyzer.store.write import DigestingLocalStore

    loc = locate(path)
    if loc.store is not None:
        return loc.store, loc, None
    if loc.url is not None:
        from fsspec.core import url_to_fs

        # A synchronous view of the same filesystem for the existence check: FsspecStore's own
        # (async) filesystem cannot be called outside zarr's event loop.
        fs, root = url_to_fs(loc.url)
        if fs.exists(root) and (fs.isfile(root) or fs.ls(root)):
            if not overwrite:
                raise RecorderError(f"{loc.source} already exists; pass overwrite=True or choose another path")
            fs.rm(root, recursive=True)
        fs.makedirs(root, exist_ok=True)
        return _fsspec_store(loc, read_only=False), loc, None
    p = loc.local
    assert p is not None
    if p.is_symlink():
        raise RecorderError(
            f"{p} is a link; pinnlog writes a run only into a real directory (remove the link or choose another path)"
        )
    if p.exists():
        if not overwrite:
            raise RecorderError(f"{p} already exists; pass overwrite=True or choose another path")
        if not p.is_dir() or not _is_pinnlog_store(p):
            raise RecorderError(
                f"{p} exists and is not a pinnlog run store; overwrite=True replaces only a pinnlog store, "
                "so move it away or choose another path"
            )
        lease = Lease(p, "overwrite").acquire()  # refuses a store another recorder writes
        _empty_keeping(p, LEASE_NAME)
    else:
        p.mkdir(parents=True)
        lease = Lease(p, "record into").acquire()
    # The writer's own directory, emptied: LocalStore writes atomically (temp file + rename).
    return DigestingLocalStore(p), loc, lease
