"""Close a run store left open by a killed run (``pinnlog verify --repair``) without losing a committed step.

A writer killed with SIGKILL leaves every group's arrays at their pre-allocated capacity, ``status`` at
``"recording"``, perhaps a ``*.partial`` temporary file of an atomic write, and no consolidated
metadata. Readers already see only the committed prefix (``n_committed``); :func:`repair_run` makes
that permanent: it trims capacity beyond ``n_committed`` (rows that were never committed), removes
the temporary files, marks the run ``"interrupted"`` and consolidates metadata.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass

from pinnlog.analyzer.errors import CorruptStoreError, PinnlogError, ReadOnlyStoreError, short
from pinnlog.analyzer.store.format import GROUPS
from pinnlog.analyzer.store.guards import SafeLocalStore, disallowed_codecs, unsafe_entries
from pinnlog.analyzer.store.location import open_writable
from pinnlog.analyzer.store.metadata import is_stub, list_children, partial_files, read_json, read_root, sync
from pinnlog.analyzer.store.verify import VerifyReport, verify_run
from pinnlog.analyzer.store.write import set_rows

__all__ = ["ReadOnlyStoreError", "RepairReport", "repair_run"]


#: Bytes a repair must be able to write before it changes anything (the lease and the rewritten metadata).
REPAIR_ROOM_BYTES = 256 * 1024


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _check_writable(path: str | os.PathLike) -> None:
    """Create and remove a file in the store and in each group folder, and open the metadata for writing.

    Repair must not start on a store it cannot finish: a read-only store stays exactly as it was.
    """
    root = os.fspath(path)
    folders = [root] + [
        os.path.join(root, n) for n in sorted(os.listdir(root)) if n in GROUPS and os.path.isdir(os.path.join(root, n))
    ]
    # Room for the lease and the rewritten metadata too: on a full disk an empty probe file is created
    # fine and the first real write fails half way through the repair.
    root_meta = os.path.join(root, "zarr.json")
    room = max(REPAIR_ROOM_BYTES, 2 * os.lstat(root_meta).st_size if os.path.isfile(root_meta) else 0)
    try:
        for folder in folders:
            fd, probe = tempfile.mkstemp(prefix=".pinnlog-write-test-", dir=folder)
            try:
                if folder == root:
                    _write_all(fd, bytes(room))
                    os.fsync(fd)
            finally:
                os.close(fd)
                os.unlink(probe)
            meta = os.path.join(folder, "zarr.json")
            if os.path.isfile(meta):
                os.close(os.open(meta, os.O_WRONLY | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)))
    except OSError as exc:
        raise ReadOnlyStoreError(
            f"{path} cannot be written ({exc.strerror or type(exc).__name__}); nothing was repaired: "
            "repair a writable copy, or run as a user who may write the store"
        ) from exc


@dataclass
class RepairReport:
    """What :func:`repair_run` changed, and the verdict on the store afterwards."""

    path: str
    actions: list[str]
    after: VerifyReport


def _remove_stub(store, prefix: str) -> str:
    sync(store.delete_dir(prefix))
    if isinstance(store, SafeLocalStore):  # delete_dir removes files; the empty folders go too
        shutil.rmtree(os.path.join(str(store.root), prefix), ignore_errors=True)
    return f"removed {prefix}/, a node whose creation was interrupted (it held no committed row)"


def _remove_chunks_beyond(store, prefix: str, arr, n: int) -> int:
    """Delete the stored chunks of ``arr`` whose rows all lie at or past ``n`` (written, never committed).

    Only the keys that exist are visited: a pre-allocated array's chunk grid is mostly empty.
    """
    rows_per_chunk = arr.metadata.chunk_grid.chunk_shape[0]
    first_gone = -(-n // rows_per_chunk)  # the first chunk index wholly past the committed rows

    async def keys():
        return [key async for key in store.list_prefix(prefix + "/")]

    removed = 0
    for key in sync(keys()):
        rel = key[len(prefix) + 1 :]
        parts = rel.split("/")
        if len(parts) >= 2 and parts[0] == "c" and parts[1].isdigit() and int(parts[1]) >= first_gone:
            sync(store.delete(key))
            removed += 1
    return removed


def repair_run(path: str | os.PathLike) -> RepairReport:
    """Close a store left open by a killed run without losing a committed step.

    Trims every growing array to its group's ``n_committed`` (the capacity beyond it holds only
    uncommitted rows), removes temporary ``*.partial`` files of interrupted atomic writes, sets
    ``status`` to ``"interrupted"`` (a ``"complete"`` store keeps its status) and consolidates
    metadata. Run it only when no process is writing the store.

    Raises
    ------
    StoreNotFoundError, NotAStoreError, UnknownFormatError
        Not a pinnlog store.
    CorruptStoreError
        The store has links leaving it or pipes; repair does not touch such a store.
    """

    store, loc = open_writable(path)
    root_doc = read_root(store, path)
    if loc.local is not None:
        _check_writable(loc.local)
    if loc.local is not None and unsafe_entries(loc.local):
        raise CorruptStoreError(
            f"{path} holds links leaving the store or pipes (or links inside it); `pinnlog verify {path}` lists them; repair refuses it"
        )
    lease = None
    if loc.local is not None:
        from pinnlog.analyzer.store.lease import Lease

        # Refuses a store a live recorder writes (trimming it would make the writer lose rows);
        # a stale lease (its recorder was killed) is taken over, and removed when done.
        try:
            lease = Lease(loc.local, "repair").acquire(heartbeat=False)
        except PermissionError:
            # a read-only store: nothing here can change it, so no lease is needed (a live holder still refuses)
            from pinnlog.analyzer.store.lease import StoreLockedError, current_holder

            holder = current_holder(loc.local)
            if holder is not None:
                raise StoreLockedError(
                    f"{loc.local} is being written by {holder.describe()}; pinnlog will not repair it"
                ) from None
    try:
        actions = _repair(store, loc, root_doc, path)
    except OSError as exc:
        if isinstance(exc, PinnlogError):
            raise
        raise ReadOnlyStoreError(
            f"{path}: repair stopped, the store cannot be written ({exc.strerror or type(exc).__name__}); "
            "no committed step was dropped: free space (or fix permissions) and run `pinnlog verify --repair` again"
        ) from exc
    finally:
        if lease is not None:
            lease.release()
    return RepairReport(str(path), actions, verify_run(path))


def _repair(store, loc, root_doc: dict, path) -> list[str]:
    import zarr

    actions: list[str] = []
    for partial in partial_files(loc):
        partial.unlink()
        actions.append(f"removed temporary file {partial.relative_to(loc.local)}")
    for name in list_children(store, ""):
        if name not in GROUPS:
            continue
        try:
            gmeta = read_json(store, f"{name}/zarr.json")
        except CorruptStoreError as exc:
            actions.append(_remove_stub(store, name) if is_stub(store, name) else f"left {name} as is: {exc}")
            continue
        gattrs = gmeta.get("attributes") if isinstance(gmeta.get("attributes"), dict) else {}
        n = gattrs.get("n_committed", 0)
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            actions.append(f"left {name} as is: n_committed={short(n)} is not a count")
            continue
        group = zarr.open_group(store=store, path=name, mode="r+", zarr_format=3, use_consolidated=False)
        if "n_committed" not in gattrs:
            group.attrs["n_committed"] = 0
            actions.append(f"{name}: set the missing n_committed to 0")
        for var in list_children(store, name):
            try:
                meta = read_json(store, f"{name}/{var}/zarr.json")
            except CorruptStoreError:
                if is_stub(store, f"{name}/{var}"):
                    actions.append(_remove_stub(store, f"{name}/{var}"))
                continue
            dims, shape = meta.get("dimension_names"), meta.get("shape")
            if disallowed_codecs(meta) or not isinstance(dims, list) or not isinstance(shape, list) or not dims:
                continue
            if dims[0] == GROUPS[name].axis and isinstance(shape[0], int) and shape[0] > n:
                arr = zarr.open_array(store=store, path=f"{name}/{var}", mode="r+", zarr_format=3)
                set_rows(arr, n)
                removed = _remove_chunks_beyond(store, f"{name}/{var}", arr, n)
                extra = f", {removed} uncommitted chunk(s) removed" if removed else ""
                actions.append(f"{name}/{var}: capacity {shape[0]} -> {n} rows{extra}")
    attrs = root_doc["attributes"]
    root = zarr.open_group(store=store, mode="r+", zarr_format=3, use_consolidated=False)
    if attrs.get("status") not in ("complete", "interrupted"):
        root.attrs["status"] = "interrupted"
        actions.append(f"status {short(attrs.get('status'))} -> 'interrupted'")
    try:
        with warnings.catch_warnings():  # zarr notes that consolidated metadata is not in the v3 spec (format.md uses it)
            warnings.simplefilter("ignore", category=UserWarning)
            zarr.consolidate_metadata(store)
        actions.append("consolidated metadata")
    except Exception as exc:
        actions.append(f"metadata not consolidated ({type(exc).__name__}); `pinnlog verify` says why")
    return actions
