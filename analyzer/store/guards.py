"""A read-only local Zarr store that is safe to point at a directory someone mailed you.

``zarr.storage.LocalStore`` follows symlinks and opens whatever file a key names. In a hostile store
that means a chunk that is a symlink to ``/dev/zero`` (an endless read), a named pipe (a read that
blocks forever), or a symlink to a file elsewhere on the disk (a leak). :class:`SafeLocalStore`
refuses, with a :class:`CorruptStoreError`, any key whose resolved path leaves the store's own
directory or is not a regular file. Symlinks that stay inside the store, and a store directory that
is itself reached through a symlink, are fine.

The codec allow-list (no pickle or other object codecs) is checked separately, on the metadata:
:func:`disallowed_codecs` walks a metadata document, nested ``sharding_indexed`` codecs included.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping
from typing import Any

from zarr.storage import LocalStore

from pinnlog.analyzer.errors import CorruptStoreError, PinnlogError
from pinnlog.analyzer.store.format import ALLOWED_CODECS

__all__ = ["GuardedArray", "SafeLocalStore", "disallowed_codecs", "guarded", "guarded_dask_array", "unsafe_entries"]


def _inside(real: str, real_root: str) -> bool:
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def _check_path(path: str, real_root: str, key: str) -> None:
    """Raise if ``path`` resolves outside ``real_root`` or to anything but a regular file."""
    if not os.path.lexists(path):
        return  # a missing key reads as None, as in LocalStore
    real = os.path.realpath(path)
    if not _inside(real, real_root):
        raise CorruptStoreError(
            f"{real_root}: {key!r} is a link leaving the store (to {real[:80]!r}); pinnlog does not follow it, remove the link"
        )
    try:
        mode = os.stat(real).st_mode
    except OSError:
        return  # a dangling link inside the store: reads as missing
    if stat.S_ISDIR(mode):
        return  # LocalStore answers None for a directory key
    if not stat.S_ISREG(mode):
        raise CorruptStoreError(
            f"{real_root}: {key!r} is not a regular file (a pipe or device); pinnlog refuses to read it, remove it"
        )


class SafeLocalStore(LocalStore):
    """``LocalStore`` that refuses keys leaving the store or naming pipes, devices and sockets."""

    def _real_root(self) -> str:
        return os.path.realpath(self.root)

    def _guard(self, key: str) -> None:
        _check_path(os.path.join(str(self.root), key), self._real_root(), key)

    async def get(self, key: str, prototype=None, byte_range=None):
        self._guard(key)
        return await super().get(key, prototype, byte_range)

    async def get_partial_values(self, prototype, key_ranges: Iterable):
        key_ranges = list(key_ranges)
        for key, _ in key_ranges:
            self._guard(key)
        return await super().get_partial_values(prototype, key_ranges)

    async def exists(self, key: str) -> bool:
        self._guard(key)
        return await super().exists(key)


def disallowed_codecs(metadata: Any) -> list[str]:
    """Names of every codec in a metadata document (nested ones too) outside format 1's allow-list."""
    found: list[str] = []

    def walk(node: Any, depth: int) -> None:
        if depth > 50:  # deeper than any real codec chain: refuse rather than recurse
            found.append("<nested too deep>")
            return
        if isinstance(node, Mapping):
            for key, value in node.items():
                if key in ("codecs", "index_codecs") and isinstance(value, list):
                    for codec in value:
                        name = codec.get("name") if isinstance(codec, Mapping) else codec
                        if not isinstance(name, str) or name not in ALLOWED_CODECS:
                            found.append(str(name)[:40])
                walk(value, depth + 1)
        elif isinstance(node, list):
            for value in node:
                walk(value, depth + 1)

    walk(metadata, 0)
    return found


def unsafe_entries(root: str | os.PathLike, limit: int = 20) -> list[str]:
    """Entries of a local store directory that leave it (symlinks) or are not regular files or dirs.

    Walks without following links; returns at most ``limit`` one-line descriptions.
    """
    real_root = os.path.realpath(root)
    problems: list[str] = []
    for dirpath, dirnames, filenames in os.walk(real_root, followlinks=False):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, real_root)
            if os.path.islink(full):
                target = os.path.realpath(full)
                if not _inside(target, real_root):
                    problems.append(f"{rel} is a link leaving the store (to {target[:80]})")
                    continue
                try:
                    mode = os.stat(target).st_mode
                except OSError:
                    continue
            else:
                mode = os.lstat(full).st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                problems.append(f"{rel} is not a regular file (a pipe, device or socket)")
            if len(problems) >= limit:
                return problems
    return problems


def guarded(path, where: str, fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, turning any failure that is not already ours into one ``CorruptStoreError`` line.

    zarr and xarray raise whatever their parsers meet in a damaged store (JSONDecodeError, unknown
    codec, conflicting dimension sizes, RecursionError ...); a user should see one line naming the
    store and what to run next, not a traceback.
    """
    try:
        return fn(*args, **kwargs)
    except PinnlogError:
        raise
    except Exception as exc:
        detail = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise CorruptStoreError(
            f"{path}: {where} is damaged ({type(exc).__name__}: {detail}); `pinnlog verify {path}` says what is still usable"
        ) from exc


class GuardedArray:
    """A zarr array for ``dask.array.from_array`` whose reads fail with one ``CorruptStoreError`` line.

    A chunk that does not decode (truncated, bit-flipped into an invalid stream) makes the codec raise
    whatever it raises (``RuntimeError: error during blosc decompression``); a metric computed from
    the run should instead fail with our error naming the store, the array and ``pinnlog verify``.
    """

    def __init__(self, array, path, where: str, rows: int | None = None):
        self.array, self.path, self.where = array, str(path), where
        # ``rows``: the committed prefix only. A store being written is pre-allocated far beyond it,
        # and a dask graph over the whole capacity would have millions of chunks.
        shape = array.shape if rows is None else (min(rows, array.shape[0]), *array.shape[1:])
        self.shape, self.dtype, self.ndim = tuple(shape), array.dtype, array.ndim

    def __getitem__(self, key):
        return guarded(self.path, self.where, self.array.__getitem__, key)

    def __dask_tokenize__(self):
        from dask.base import tokenize

        return ("pinnlog-guarded", tokenize(self.array), self.where, self.shape)


def guarded_dask_array(array, chunks, path, where: str, rows: int | None = None):
    """``dask.array.from_zarr(array, chunks)`` (its first ``rows`` only) whose chunk reads raise ``CorruptStoreError`` on damage."""
    import dask.array as da
    import numpy as np
    from dask.base import tokenize

    wrapped = GuardedArray(array, path, where, rows)
    return da.from_array(
        wrapped,
        chunks=chunks,
        name="from-zarr-" + tokenize(wrapped, chunks),
        asarray=True,
        meta=np.empty((0,) * array.ndim, dtype=array.dtype),
    )
