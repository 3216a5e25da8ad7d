"""The commit protocol of store format 1, numpy in, Zarr v3 out (no torch here).

:class:`RunWriter` is what the recorder's background writer (``pinnlog.recorder.writer``) drives, and
what the paper-log importer and the test fixtures use to build stores without torch. Every array is pre-allocated in whole chunks along
its group's axis; ``append`` writes the rows, and only then raises the group's ``n_committed``
attribute. Readers trim to ``n_committed``, so a process killed at any instant leaves a consistent
prefix (the local store writes each chunk and each ``zarr.json`` atomically: temp file + rename).
"""

from __future__ import annotations

import asyncio
import json
import os
import warnings
import zlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
import zarr
from zarr.errors import ZarrUserWarning

from pinnlog.analyzer.errors import RecorderError, WriterError
from pinnlog.analyzer.store.format import (
    CHECKSUM_CODEC,
    DIGESTS_NAME,
    FORMAT_MINOR,
    FORMAT_VERSION,
    GROUPS,
    PREALLOCATED_ROWS,
    chunk_shape,
    compressors,
    fill_value,
    name_coordinates,
)
from pinnlog.analyzer.store.location import open_for_writing
from pinnlog.analyzer.store.metadata import dimension_names, jsonable

__all__ = ["DigestingLocalStore", "RunStore", "RunWriter", "set_rows"]

#: A growing array whose chunks hold several rows, each at most this many bytes, keeps its last chunk in
#: memory: an append then writes whole chunks and zarr does not read, decode and merge the chunk file
#: first (half an append's cost: 3.6 -> 2.0 ms of CPU per array, docs/performance.md).
TAIL_CHUNK_BYTES = 2**20


class DigestingLocalStore(zarr.storage.LocalStore):
    """``LocalStore`` that remembers the CRC-32 of every chunk it writes (the manifest ``close`` saves).

    The crc32c codec inside each chunk catches a flipped bit; it cannot tell that a whole chunk file
    was swapped with another array's, deleted (it then reads as the fill value) or added. The
    manifest (``.pinnlog-digests.json``: chunk key -> CRC-32 of its bytes) binds every chunk to its
    key; readers compare each chunk they read against it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.digests: dict[str, int] = {}

    async def set(self, key: str, value) -> None:
        await super().set(key, value)
        if not key.endswith("zarr.json"):
            self.digests[key] = zlib.crc32(value.as_numpy_array())

    async def delete(self, key: str) -> None:
        await super().delete(key)
        self.digests.pop(key, None)

    async def delete_dir(self, prefix: str) -> None:
        await super().delete_dir(prefix)
        prefix = prefix.rstrip("/") + "/"
        for key in [k for k in self.digests if k.startswith(prefix)]:
            del self.digests[key]


def set_rows(array: zarr.Array, rows: int) -> None:
    """Set the length of ``array``'s first axis by rewriting its metadata only.

    zarr's own ``resize`` also deletes the chunks outside the new shape, which means visiting every
    chunk of the old grid: millions for a pre-allocated group of one-row chunks. Chunks past the
    committed rows are absent anyway (or, after a kill, uncommitted; ``repair`` removes those).
    """
    from zarr.core.sync import sync

    sync(array.async_array.resize((rows, *array.shape[1:]), delete_outside_chunks=False))


class RunWriter:
    """A format-1 run being written.

    Parameters
    ----------
    path : str or path-like
        Directory (``run.zarr``) or fsspec URL.
    attrs : dict
        Root attributes (``docs/format.md`` lists them); ``pinnlog_format`` and ``status`` are set here.
    overwrite : bool
        Replace an existing store at ``path``.
    """

    def __init__(self, path: str | os.PathLike, attrs: Mapping[str, Any] | None = None, overwrite: bool = False):
        self.path = path
        # A local store comes with its writer lease held (``lease.py``): no second writer, no repair
        # or overwrite of it while this object writes.
        self._store, self.location, self.lease = open_for_writing(path, overwrite)
        # mode "a" on the emptied directory: "w" would delete the lease file just taken
        self.root = zarr.open_group(store=self._store, mode="a" if self.lease is not None else "w", zarr_format=3)
        root_attrs = {
            "pinnlog_format": FORMAT_VERSION,
            "status": "recording",
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        root_attrs.update(jsonable(dict(attrs or {})))
        root_attrs["pinnlog_format"] = FORMAT_VERSION
        root_attrs["pinnlog_format_minor"] = FORMAT_MINOR
        root_attrs["status"] = "recording"
        root_attrs["checksums"] = CHECKSUM_CODEC  # format 1.2: every chunk carries a crc32c
        self.root.attrs.update(root_attrs)
        self._groups: dict[str, zarr.Group] = {}
        self._committed: dict[str, int] = {}
        self._capacity: dict[str, int] = {}
        self._variable_attrs: dict[tuple[str, str], dict[str, str]] = {}
        # The arrays along each group's axis, as this writer made them: listing a group re-reads every
        # array's metadata, which cost more than the rows themselves at every append (docs/performance.md).
        self._growing: dict[str, dict[str, zarr.Array]] = {}
        # (group, var) -> (index of the chunk along the axis, its content as committed plus fill values)
        self._tails: dict[tuple[str, str], tuple[int, np.ndarray]] = {}

    # -- groups ------------------------------------------------------------------------------------
    def n_committed(self, group: str) -> int:
        return self._committed.get(group, 0)

    def _group(self, name: str) -> zarr.Group:
        if name not in self._groups:
            if name not in GROUPS:
                raise RecorderError(f"unknown group {name!r}; format 1 has {sorted(GROUPS)}")
            group = self.root.create_group(name)
            group.attrs.update({"n_committed": 0, "axis": GROUPS[name].axis})
            self._groups[name] = group
            self._growing[name] = {}
            self._committed[name] = 0
            self._capacity[name] = 0
            if GROUPS[name].coords:  # format 1.1: the names, so that plain xarray can .sel(tensor="layers.0.weight")
                coords = name_coordinates(self.root.attrs.get("layout"), self.root.attrs.get("layers"))
                if coords is not None:
                    self.set_static(name, {c: np.array(coords[c], dtype=str) for c in GROUPS[name].coords})
        return self._groups[name]

    def _dims(self, group: str, var: str, ndim: int, dims: Mapping[str, tuple[str, ...]] | None):
        if dims and var in dims:
            return tuple(dims[var])
        spec = GROUPS[group]
        if var in spec.variables:
            return spec.variables[var][0]
        if spec.dynamic and ndim == 1:
            return (spec.axis,)
        raise RecorderError(f"variable {var!r} of group {group!r} needs its dimension names")

    def _chunks(self, group: str, shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
        return chunk_shape(group, shape, itemsize)

    def _ensure_array(self, group: str, var: str, sample: np.ndarray, dims) -> zarr.Array:
        g = self._group(group)
        if var in self._growing[group]:
            return self._growing[group][var]
        if var in g:
            existing = g[var]
            assert isinstance(existing, zarr.Array), f"{group}/{var} is a group"  # this writer made every node below a group
            return self._register(group, var, existing)
        full_dims = self._dims(group, var, sample.ndim + 1, dims)
        if len(full_dims) != sample.ndim + 1:
            raise RecorderError(f"{group}/{var}: dims {full_dims} do not match data of {sample.ndim + 1} dims")
        capacity = self._capacity[group] or PREALLOCATED_ROWS
        shape = (capacity,) + sample.shape
        fill = fill_value(sample.dtype)
        arr = g.create_array(
            var,
            shape=shape,
            chunks=self._chunks(group, shape, sample.dtype.itemsize),
            dtype=sample.dtype,
            fill_value=fill,
            compressors=compressors(),
            dimension_names=full_dims,
        )
        if (group, var) in self._variable_attrs:
            arr.attrs.update(self._variable_attrs[(group, var)])
        self._capacity[group] = capacity
        return self._register(group, var, arr)

    def _register(self, group: str, var: str, arr: zarr.Array) -> zarr.Array:
        dims = dimension_names(arr) or ()
        if dims and dims[0] == GROUPS[group].axis:
            self._growing[group][var] = arr
        return arr

    def _check_writable(self, group: str) -> None:
        """Refuse to write when another process holds the lease or changed the group's arrays.

        zarr silently drops writes past an array's end, so a writer whose cached capacity is wrong
        (someone trimmed the store under it) would commit rows of fill values: the real capacity is
        read from disk before every write.
        """
        if self.lease is not None and not self.lease.check():
            raise WriterError(
                f"{self.location.source}: another process took this store's lease; pinnlog stopped writing "
                f"(rows up to {self._committed.get(group, 0)} of {group!r} are committed)"
            )
        from zarr.core.buffer import default_buffer_prototype

        from pinnlog.analyzer.store.metadata import sync

        growing = list(self._growing[group])
        prototype = default_buffer_prototype()

        async def read_all():  # one round trip to zarr's event loop for all of them
            return await asyncio.gather(*(self._store.get(f"{group}/{var}/zarr.json", prototype=prototype) for var in growing))

        for var, buf in zip(growing, sync(read_all())):
            shape = json.loads(buf.to_bytes()).get("shape") if buf is not None else None
            if not shape or shape[0] != self._capacity[group]:
                raise WriterError(
                    f"{self.location.source}: {group}/{var} was changed by another process (capacity "
                    f"{shape[0] if shape else 'gone'}, the writer expected {self._capacity[group]}); pinnlog stopped writing "
                    f"(rows up to {self._committed.get(group, 0)} of {group!r} are committed)"
                )

    def describe(self, group: str, var: str, **attrs: str) -> None:
        """Attributes of variable ``group/var`` (``long_name``, ``units``): set now, or when it is created."""
        attrs = {k: str(v) for k, v in attrs.items() if v is not None}
        self._variable_attrs.setdefault((group, var), {}).update(attrs)
        g = self._group(group)
        if var in g:
            g[var].attrs.update(attrs)

    def _grow(self, group: str, needed: int) -> None:
        """Resize the group's growing arrays (metadata only) to at least ``needed`` rows.

        Only a run of more than ``PREALLOCATED_ROWS`` rows in one group gets here; a kill between two
        of these resizes leaves capacities that differ (``pinnlog verify --repair`` evens them).
        """
        cap = self._capacity[group]
        if needed <= cap:
            return
        new_cap = max(needed, 2 * cap)
        for arr in self._growing[group].values():
            set_rows(arr, new_cap)
        self._capacity[group] = new_cap

    def set_static(self, group: str, values: Mapping[str, np.ndarray], dims: Mapping[str, tuple[str, ...]] | None = None):
        """Write arrays that do not grow along the group's axis (e.g. ``numel`` per tensor)."""
        g = self._group(group)
        for var, value in values.items():
            value = np.asarray(value)
            var_dims = self._dims(group, var, value.ndim, dims)
            arr = g.create_array(
                var,
                shape=value.shape,
                dtype=str if value.dtype.kind in "UT" else value.dtype,  # names: Zarr v3 string (vlen-utf8)
                fill_value=None if value.dtype.kind in "UT" else fill_value(value.dtype),
                compressors=compressors(),
                dimension_names=var_dims,
                overwrite=True,
            )
            arr[...] = value
            self._register(group, var, arr)

    def append(self, group: str, rows: Mapping[str, np.ndarray], dims: Mapping[str, tuple[str, ...]] | None = None) -> int:
        """Write ``n`` rows of each variable along the group's axis, then commit them.

        Variables the group already has but ``rows`` lacks are written as NaN (missing), so every
        committed row of every array is defined. Returns the new ``n_committed``.
        """
        if not rows:
            return self.n_committed(group)
        rows = {k: np.asarray(v) for k, v in rows.items()}
        n = {v.shape[0] for v in rows.values()}
        if len(n) != 1:
            raise RecorderError(f"{group}: variables disagree on the number of rows: {sorted(n)}")
        (n,) = n
        self._group(group)
        if not self._capacity[group]:
            # Every array of a group is created with the same capacity and never grows while recording,
            # so a kill at any instant leaves one size per dimension (plain xarray opens the group). The
            # capacity costs metadata only: zarr writes no chunk that holds nothing but the fill value.
            self._capacity[group] = PREALLOCATED_ROWS
        start = self._committed[group]
        for var, value in rows.items():
            self._ensure_array(group, var, value[0], dims)
        self._check_writable(group)
        self._grow(group, start + n)
        g = self._groups[group]
        writes = []
        for var, arr in self._growing[group].items():
            if var in rows:
                writes += self._regions(group, var, arr, start, rows[var])
            elif arr.dtype.kind == "f":
                writes += self._regions(group, var, arr, start, np.full((n, *arr.shape[1:]), np.nan, dtype=arr.dtype))
        from pinnlog.analyzer.store.metadata import sync

        async def write_all():  # every array's rows in one round trip to zarr's event loop
            await asyncio.gather(*(arr.async_array.setitem(region, value) for arr, region, value in writes))

        sync(write_all())
        # The commit point: everything above is invisible to readers until this attribute changes.
        g.attrs["n_committed"] = start + n
        self._committed[group] = start + n
        return start + n

    def _regions(self, group: str, var: str, arr: zarr.Array, start: int, value: np.ndarray) -> list:
        """``(array, region, values)`` writes that put ``value`` at rows ``start:``: whole chunks from the
        kept last chunk where that is cheap (``TAIL_CHUNK_BYTES``), else the rows themselves."""
        per_chunk = arr.chunks[0]
        chunk_bytes = per_chunk * int(np.prod(arr.chunks[1:], dtype=np.int64)) * arr.dtype.itemsize
        whole_rows = tuple(arr.chunks[1:]) == tuple(arr.shape[1:])  # a chunk holds whole rows
        if per_chunk == 1 or chunk_bytes > TAIL_CHUNK_BYTES or not whole_rows or arr.dtype.kind not in "biuf":
            return [(arr, slice(start, start + len(value)), value)]
        writes = []
        done = 0
        while done < len(value):
            row = start + done
            index = row // per_chunk
            first, end = index * per_chunk, min((index + 1) * per_chunk, arr.shape[0])
            tail = self._tails.get((group, var))
            if tail is None or tail[0] != index:
                buffer = np.full((end - first, *arr.shape[1:]), arr.fill_value, dtype=arr.dtype)
                if row > first:  # rows of this chunk written before this writer kept it (not in a fresh store)
                    buffer[: row - first] = arr[first:row]
                tail = (index, buffer)
                self._tails[(group, var)] = tail
            take = min(len(value) - done, end - row)
            tail[1][row - first : row - first + take] = value[done : done + take]
            writes.append((arr, slice(first, end), tail[1]))
            done += take
        return writes

    # -- closing -----------------------------------------------------------------------------------
    def close(self, status: str = "complete") -> None:
        """Trim every array to its committed rows, set ``status``, consolidate metadata."""
        if self.lease is not None and not self.lease.check():
            # Another process owns the directory now (it took a stale lease, or overwrote it): not ours to close.
            raise WriterError(
                f"{self.location.source}: another process took this store's lease; pinnlog left it as that process has it"
            )
        for name, g in self._groups.items():
            n = self._committed[name]
            axis = GROUPS[name].axis
            for _, arr in g.arrays():
                dims = dimension_names(arr) or ()
                if dims and dims[0] == axis and arr.shape[0] != n:
                    set_rows(arr, n)
            self._capacity[name] = n
        # What was recorded, for verify: a group deleted or emptied later is damage, not "never recorded".
        self.root.attrs["committed"] = dict(self._committed)
        if isinstance(self._store, DigestingLocalStore):
            # The manifest before the status: a store that says "complete" always has one.
            self._write_digests()
        self.root.attrs["status"] = status
        with warnings.catch_warnings():
            # zarr warns that consolidated metadata is not (yet) in the v3 spec; format 1 documents it.
            warnings.filterwarnings("ignore", category=ZarrUserWarning)
            zarr.consolidate_metadata(self._store)
        if self.lease is not None:
            self.lease.release()
            self.lease = None

    def _write_digests(self) -> None:
        """Save the chunk manifest atomically (temp file + rename)."""
        root = os.fspath(self._store.root)
        doc = json.dumps({"algorithm": "crc32", "chunks": dict(sorted(self._store.digests.items()))}).encode()
        tmp = os.path.join(root, DIGESTS_NAME + ".partial")
        with open(tmp, "wb") as f:
            f.write(doc)
        os.replace(tmp, os.path.join(root, DIGESTS_NAME))

    def abandon(self) -> None:
        """Stop writing as a killed process would: the lease is left behind, stale (tests of repair use this)."""
        if self.lease is not None:
            self.lease.abandon()
            self.lease = None

    def set_attrs(self, **attrs: Any) -> None:
        self.root.attrs.update(jsonable(attrs))


#: The name older releases used (``pinnlog.recorder.store.RunStore``).
RunStore = RunWriter
