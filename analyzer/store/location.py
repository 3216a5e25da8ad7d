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


def open_for_writing(path, overwrite: bool):
    """``(store, location)`` for a new run at ``path``, refusing to clobber one unless ``overwrite``."""
    import zarr

    loc = locate(path)
    if loc.store is not None:
        return loc.store, loc
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
        return _fsspec_store(loc, read_only=False), loc
    p = loc.local
    assert p is not None
    if p.exists() or p.is_symlink():
        if not overwrite:
            raise RecorderError(f"{p} already exists; pass overwrite=True or choose another path")
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
    p.parent.mkdir(parents=True, exist_ok=True)
    # The writer's own fresh directory: nothing to guard against, and LocalStore writes atomically.
    return zarr.storage.LocalStore(p), loc
