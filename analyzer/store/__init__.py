"""Store format 1, read and written in one place (torch-free).

The only code of pinnlog that knows paths, chunks, ``n_committed`` and ``status``:

========================  ===============================================================
``format``                groups, dims, dtypes, codecs, the chunk policy (docs/format.md in code)
``location``              the one opener: path | ``file://`` | ``memory://`` | fsspec URL -> store
``guards``                ``SafeLocalStore`` (no links out, no pipes), ``GuardedArray`` (one-line chunk errors)
``metadata``              every ``zarr.json`` as plain JSON, before zarr interprets it
``write``                 ``RunWriter``: the commit protocol (rows first, then ``n_committed``)
``read``                  ``open_run``, ``describe_run``: lazy xarray over the committed rows
``checks``, ``verify``    ``verify_run``: the whole store, array by array
``repair``                ``repair_run``: close a store a kill left open (imports ``verify``, never back)
========================  ===============================================================

The public names are loaded on first use, so importing the package (the recorder does) pulls in
neither xarray nor dask.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the names as a type checker sees them; at run time __getattr__ loads them
    from pinnlog.analyzer.store.read import describe_run, open_run
    from pinnlog.analyzer.store.repair import repair_run
    from pinnlog.analyzer.store.verify import verify_run
    from pinnlog.analyzer.store.write import RunWriter

__all__ = ["RunWriter", "describe_run", "open_run", "repair_run", "verify_run"]

_HOMES = {
    "RunWriter": "write",
    "describe_run": "read",
    "open_run": "read",
    "repair_run": "repair",
    "verify_run": "verify",
}


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_HOMES))
