"""The commit protocol of store format 1, numpy in, Zarr v3 out (no torch here).

:class:`RunWriter` is what the recorder's background writer (``pinnlog.recorder.writer``) drives, and
what the paper-log importer and the test fixtures use to build stores without torch. Every array is pre-allocated in whole chunks along
its group's axis; ``append`` writes the rows, and only then raises the group's ``n_committed``
attribute. Readers trim to ``n_committed``, so a process killed at any instant leaves a consistent
prefix (the local store writes each chunk and each ``zarr.json`` atomically: temp file + rename).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
import zarr
from zarr.errors import ZarrUserWarning

from pinnlog.analyzer.errors import RecorderError
from pinnlog.analyzer.store.format import (
    FORMAT_MINOR,
    FORMAT_VERSION,
    GROUPS,
    PREALLOCATED_ROWS,
    chunk_shape,
    compressors,
    name_coordinates,
)
from pinnlog.analyzer.store.location import open_for_writing
from pinnlog.analyzer.store.metadata import jsonable

__all__ = ["RunStore", "RunWriter", "set_rows"]


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
        self._store, self.location = open_for_writing(path, overwrite)
        self.root = zarr.open_group(store=self._store, mode="w", zarr_format=3)
        root_attrs = {
            "pinnlog_format": FORMAT_VERSION,
            "status": "recording",
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        root_attrs.update(jsonable(dict(attrs or {})))
        root_attrs["pinnlog_format"] = FORMAT_VERSION
        root_attrs["pinnlog_format_minor"] = FORMAT_MINOR
        root_attrs["status"] = "recording"
        self.root.attrs.update(root_attrs)
        self._groups: dict[str, zarr.Group] = {}
        self._committed: dict[str, int] = {}
        self._capacity: dict[str, int] = {}
        self._variable_attrs: dict[tuple[str, str], dict[str, str]] = {}

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
        if var in g:
            return g[var]
        full_dims = self._dims(group, var, sample.ndim + 1, dims)
        if len(full_dims) != sample.ndim + 1:
            raise RecorderError(f"{group}/{var}: dims {full_dims} do not match data of {sample.ndim + 1} dims")
        capacity = self._capacity[group] or PREALLOCATED_ROWS
        shape = (capacity,) + sample.shape
        fill = np.nan if sample.dtype.kind == "f" else (False if sample.dtype.kind == "b" else -1)
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
        return arr

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
        axis = GROUPS[group].axis
        for _, arr in self._groups[group].arrays():
            dims = arr.metadata.dimension_names or ()
            if dims and dims[0] == axis:
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
                compressors=compressors(),
                dimension_names=var_dims,
                overwrite=True,
            )
            arr[...] = value

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
        self._grow(group, start + n)
        g = self._groups[group]
        axis = GROUPS[group].axis
        for var, arr in g.arrays():
            arr_dims = arr.metadata.dimension_names or ()
            if not arr_dims or arr_dims[0] != axis:
                continue
            if var in rows:
                arr[start : start + n] = rows[var]
            elif arr.dtype.kind == "f":
                arr[start : start + n] = np.nan
        # The commit point: everything above is invisible to readers until this attribute changes.
        g.attrs["n_committed"] = start + n
        self._committed[group] = start + n
        return start + n

    # -- closing -----------------------------------------------------------------------------------
    def close(self, status: str = "complete") -> None:
        """Trim every array to its committed rows, set ``status``, consolidate metadata."""
        for name, g in self._groups.items():
            n = self._committed[name]
            axis = GROUPS[name].axis
            for _, arr in g.arrays():
                dims = arr.metadata.dimension_names or ()
                if dims and dims[0] == axis and arr.shape[0] != n:
                    set_rows(arr, n)
            self._capacity[name] = n
        self.root.attrs["status"] = status
        with warnings.catch_warnings():
            # zarr warns that consolidated metadata is not (yet) in the v3 spec; format 1 documents it.
            warnings.filterwarnings("ignore", category=ZarrUserWarning)
            zarr.consolidate_metadata(self._store)

    def set_attrs(self, **attrs: Any) -> None:
        self.root.attrs.update(jsonable(attrs))


#: The name older releases used (``pinnlog.recorder.store.RunStore``).
RunStore = RunWriter
