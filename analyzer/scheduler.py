"""Run the analyzer's dask graphs on a ``dask.distributed`` cluster instead of local threads.

    with dask_scheduler("tcp://10.0.0.5:8786", runs=["/shared/runs/ac.zarr"]) as client:
        values = dask.compute(*lazy_metrics)        # runs on the cluster's workers

The graph of a metric holds the store's location, not its data: every worker reads the chunks it
needs itself, so the run must be where every worker can read it (a shared file system, ``s3://``,
``gs://``). A worker that cannot see a local path or a ``memory://`` URL would not fail: zarr reads a
missing chunk as its fill value, so the metrics would silently come out NaN. :func:`dask_scheduler`
therefore asks every worker to open each run first and refuses, with one line, when one cannot or
sees a different store under the same name.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Any

import dask

from pinnlog.analyzer.errors import PinnlogError, SchedulerError

__all__ = ["CONNECT_TIMEOUT", "SCHEDULER_ENV", "SchedulerError", "dask_scheduler", "store_identity"]

#: The environment variable that ``pinnlog analyze/compare/watch`` read when ``--scheduler`` is not given
#: (dask's own name for the scheduler address, so a shell set up for dask works as it is).
SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"
CONNECT_TIMEOUT = "10s"


def store_identity(path: str | os.PathLike) -> tuple[str, str]:
    """``("ok", created)`` if this process can open the run at ``path``, else ``("error", one line)``.

    ``created`` (the root attribute, an ISO time to the second) tells two stores of the same name apart:
    a stale copy on a worker's local disk is refused like a missing one.
    """
    from pinnlog.analyzer.store.read import open_store_group, read_root_attrs

    try:
        attrs = read_root_attrs(open_store_group(path), path)
    except PinnlogError as exc:
        return "error", str(exc)
    except Exception as exc:
        return "error", f"{type(exc).__name__}: {str(exc)[:200]}"
    return "ok", str(attrs.get("created", ""))


def _location(run: Any) -> str | None:
    """What a worker must open: an absolute path or the URL itself; None for in-process store objects."""
    from pinnlog.analyzer.store.location import locate

    loc = locate(run)
    if loc.url is not None:
        return loc.url
    if loc.local is not None:
        return str(loc.local.absolute())
    return None


def check_workers_read(client: Any, address: str, runs: Sequence[Any]) -> None:
    """Raise :class:`SchedulerError` unless every worker of ``client`` opens every run as this process does."""
    for run in runs:
        where = _location(run)
        if where is None:
            continue
        status, here = store_identity(where)
        if status != "ok":
            continue  # the analysis itself reports a run this process cannot open, with its own error
        seen = client.run(store_identity, where)
        if not seen:
            raise SchedulerError(
                f"the dask scheduler at {address} has no workers; start some (dask worker {address}) or leave out --scheduler"
            )
        for worker, (status, value) in sorted(seen.items()):
            if status == "ok" and value == here:
                continue
            # the worker's own error says what it saw; its advice (check the path) is replaced by ours
            why = value.split("; ")[0] if status != "ok" else f"a different store there (created {value}, here {here})"
            fix = (
                "memory:// stores exist only in the process that wrote them; copy the run to shared storage"
                if where.startswith("memory://")
                else "put the run where every worker reads the same files (a shared file system, s3://, gs://) "
                "and pass that path or URL"
            )
            raise SchedulerError(f"dask worker {worker} cannot read {run} ({why.rstrip('.')}); {fix}, or leave out --scheduler")


@contextlib.contextmanager
def dask_scheduler(address: str | None, *, runs: Sequence[Any] = (), timeout: str = CONNECT_TIMEOUT) -> Iterator[Any]:
    """Compute on the ``dask.distributed`` scheduler at ``address`` inside the block; None keeps local threads.

    Parameters
    ----------
    address : str or None
        ``tcp://host:8786`` (or any address ``distributed.Client`` takes). None or "" yields None and
        changes nothing: dask's local threaded scheduler runs the graphs.
    runs : sequence of path, URL or store
        The runs the graphs read. Every worker must open each one (paths are made absolute first)
        and find the same store (same ``created`` attribute) as this process.
    timeout : str
        How long to wait for the scheduler, e.g. ``"10s"``.

    Yields
    ------
    distributed.Client or None
        Connected to ``address`` and set as dask's scheduler inside the block (``dask.compute``,
        ``.values`` and ``.compute()`` run on the cluster); closed on leaving it.

    Raises
    ------
    SchedulerError
        ``distributed`` is not installed, the scheduler cannot be reached, it has no workers, or a
        worker cannot read one of ``runs``.
    """
    if not address:
        yield None
        return
    try:
        from distributed import Client
    except ImportError as exc:
        raise SchedulerError("--scheduler needs dask.distributed; pip install 'pinnlog[distributed]'") from exc
    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise SchedulerError(
            f"cannot reach the dask scheduler at {address} ({type(exc).__name__}); "
            f"start it or leave out --scheduler (and {SCHEDULER_ENV})"
        ) from exc
    try:
        check_workers_read(client, address, runs)
        with dask.config.set(scheduler=client):
            yield client
    finally:
        client.close()
