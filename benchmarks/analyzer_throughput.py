"""How fast and how lean the analyzer is on raw batch gradients larger than memory should need.

Writes a synthetic store of ``--gigabytes`` of raw ``batch_gradients`` (the paper's MLP
[2]+[128]x6+[1]: P = 83,073 parameters, K = 100 batches, 33 MB per snapshot) under /tmp, then
prints, all measured in this run:

1. the binned entropy of Eq. 31 (``bin_codes`` + ``binned_entropy``) on 25,600 x 128 activations
   (target <= 15 ms),
2. t(plain sequential zarr read of every snapshot), t(SNR from the raw gradients with dask) and their
   ratio (target <= 1.5), the SNR checked against numpy at write time (<= 1e-6 relative),
3. the peak RSS of the process that computed (target <= 1 GB), sampled every 20 ms with psutil.

The memory limit (``--memory-limit``, default 1 GiB): with the threaded scheduler (default) the run
fails (exit 1) when the computing process's peak RSS exceeds it; with ``--scheduler distributed`` one
worker process runs the graph and its nanny enforces the limit (pauses, then kills the worker).

The store is deleted at the end. Run from the repository root::

    python benchmarks/analyzer_throughput.py                    # 3 GB, threaded scheduler, 1 GiB limit
    python benchmarks/analyzer_throughput.py --gigabytes 0.2    # a quick try
    python benchmarks/analyzer_throughput.py --scheduler distributed
    python benchmarks/analyzer_throughput.py --distributed      # 2 workers, 1 GiB each, < the store

``--distributed`` computes the same SNR on a ``LocalCluster`` of ``--workers`` processes (one thread
each, ``--memory-limit`` each, below the store's size) twice: as dask ships it, and tuned (the nanny's
``MALLOC_TRIM_THRESHOLD_`` unset, whole-snapshot chunks ``open_run(path, chunks={"param": -1})``), and
prints each worker's peak RSS and the CPU seconds of all processes against the threaded scheduler.
``--cluster-variants`` adds a cluster with each of the two tunings alone.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

PAPER_LAYERS = (2, 128, 128, 128, 128, 128, 128, 1)
K = 100


def paper_layout(widths=PAPER_LAYERS) -> list[dict]:
    from pinnlog.analyzer.datasets import mlp_layout

    return mlp_layout(widths)[0]


class PeakRSS:
    """Samples the resident set size of one process (by pid) in a background thread."""

    def __init__(self, pid: int, interval: float = 0.02):
        import psutil

        self.process = psutil.Process(pid)
        self.interval = interval
        self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except Exception:
                return
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def time_entropy(repeats: int) -> tuple[float, float]:
    from pinnlog.analyzer.metrics.information import bin_codes, binned_entropy

    rng = np.random.default_rng(0)
    activations = np.tanh(2.0 * rng.standard_normal((25_600, 128), dtype=np.float32))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        binned_entropy(bin_codes(activations, "relative", 30))
        times.append(time.perf_counter() - start)
    return min(times), float(np.median(times))


def write_store(path: Path, n_snapshots: int, seed: int = 0) -> np.ndarray:
    """Write the raw snapshots; return the whole-net, weights-only SNR of each, computed in numpy."""
    from pinnlog.analyzer.store.write import RunWriter

    layout = paper_layout()
    n_param = layout[-1]["offset"] + layout[-1]["numel"]
    weights = np.concatenate([np.arange(e["offset"], e["offset"] + e["numel"]) for e in layout if not e["is_bias"]])
    store = RunWriter(path, {"layout": layout, "n_batches": K, "model": "synthetic paper MLP"}, overwrite=True)
    rng = np.random.default_rng(seed)
    truth = np.empty(n_snapshots)
    for i in range(n_snapshots):
        signal = rng.standard_normal(n_param, dtype=np.float32) * np.float32(1.0 / (1 + i))
        grads = rng.standard_normal((K, n_param), dtype=np.float32)
        grads += signal
        g = grads[:, weights].astype(np.float64)
        truth[i] = np.linalg.norm(g.mean(axis=0)) / np.linalg.norm(g.std(axis=0))
        store.append("batch_gradients", {"step": np.asarray([100 * i]), "batch_gradients": grads[None]})
    store.close()
    return truth


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def plain_read(path: Path) -> tuple[float, float, int]:
    """Read every snapshot once with zarr, in order (the baseline): wall seconds, CPU seconds, bytes."""
    import zarr

    array = zarr.open_group(str(path), mode="r")["batch_gradients"]["batch_gradients"]
    cpu = cpu_seconds(os.getpid())
    start = time.perf_counter()
    total = 0
    for i in range(array.shape[0]):
        total += array[i].nbytes
    return time.perf_counter() - start, cpu_seconds(os.getpid()) - cpu, total


def measure(path: Path, scheduler: str, memory_limit: str) -> dict:
    """Compute the whole-net SNR from the raw gradients once; time it and sample the RSS of who computes."""
    import dask
    import dask.array as da

    from pinnlog.analyzer.metrics import snr_from_batch_gradients
    from pinnlog.analyzer.store.read import open_run

    client = cluster = None
    worker_pid = os.getpid()
    if scheduler == "distributed":
        from distributed import Client, LocalCluster

        cluster = LocalCluster(
            n_workers=1, threads_per_worker=os.cpu_count() or 1, processes=True, memory_limit=memory_limit, dashboard_address=None
        )
        client = Client(cluster)
        worker_pid = next(iter(client.run(os.getpid).values()))
    try:
        with dask.config.set(scheduler=client or "threads"):
            da.zeros(4, chunks=2).sum().compute()  # the first compute imports scheduler machinery: not the metric's cost
            metric = snr_from_batch_gradients(open_run(path))  # lazy: nothing read yet
            with PeakRSS(worker_pid) as rss, PeakRSS(os.getpid()) as own_rss:
                cpu = cpu_seconds(worker_pid)
                start = time.perf_counter()
                values = metric.values
                seconds = time.perf_counter() - start
                cpu = cpu_seconds(worker_pid) - cpu
    finally:
        if client is not None:
            client.close()
            cluster.close()
    return {"seconds": seconds, "cpu": cpu, "values": values, "peak": rss.peak, "client_peak": own_rss.peak}


def measure_cluster(path: Path, n_workers: int, memory_limit: str, trim_unset: bool, whole: bool) -> dict:
    """The SNR from raw gradients on a LocalCluster of ``n_workers`` one-thread processes.

    Returns wall seconds, CPU seconds of every process involved (workers, and this one, which runs the
    scheduler and the client), each worker's peak RSS and the values. ``trim_unset``: the nanny does not set
    ``MALLOC_TRIM_THRESHOLD_`` (with it, glibc returns every freed chunk buffer to the OS and the next
    one page-faults in again: system time) and each task reads a whole snapshot (8x fewer tasks).
    """
    import contextlib

    import dask
    import psutil
    from distributed import Client, LocalCluster

    from pinnlog.analyzer.metrics import snr_from_batch_gradients
    from pinnlog.analyzer.store.read import open_run

    config = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None} if trim_unset else {}
    chunks = {"param": -1} if whole else None
    if trim_unset:  # a nanny writes its variables into our own environment, where the next cluster's workers inherit them
        os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    with (
        dask.config.set(config),
        LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            memory_limit=memory_limit,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        with dask.config.set(scheduler=client):
            _ = snr_from_batch_gradients(open_run(path, chunks=chunks)).isel(step=slice(0, 2)).values  # imports
            pids = client.run(os.getpid)
            metric = snr_from_batch_gradients(open_run(path, chunks=chunks))
            everyone = [os.getpid(), *pids.values()]
            with contextlib.ExitStack() as stack:
                peaks = {worker: stack.enter_context(PeakRSS(pid)) for worker, pid in pids.items()}
                before = [psutil.Process(pid).cpu_times() for pid in everyone]
                start = time.perf_counter()
                values = metric.values
                seconds = time.perf_counter() - start
                after = [psutil.Process(pid).cpu_times() for pid in everyone]
        restarted = sorted(set(pids.values()) - set(client.run(os.getpid).values()))
        trim = sorted(set(map(str, client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_").values())))
    spent = [(a.user - b.user, a.system - b.system) for a, b in zip(after, before)]
    return {
        "seconds": seconds,
        "cpu": sum(u + s for u, s in spent),
        "cpu_client": sum(spent[0]),
        "system": sum(s for _, s in spent),
        "values": values,
        "peaks": {w: p.peak for w, p in peaks.items()},
        "restarted": restarted,
        "trim": ", ".join(trim),
    }


#: --cluster-variants: name -> (MALLOC_TRIM_THRESHOLD_ unset, whole-snapshot chunks)
VARIANTS = {"as shipped": (False, False), "trim unset": (True, False), "whole snapshots": (False, True), "tuned": (True, True)}


def report_cluster(path: Path, truth: np.ndarray, args, limit: int, on_disk: int, results: dict) -> bool:
    """Run ``--distributed`` as shipped and tuned; print per-worker peaks and CPU against the threads."""
    baseline = results.get("threads") or measure(path, "threads", args.memory_limit)
    print(
        f"[cluster] {args.workers} worker processes x 1 thread, memory limit {limit / 2**20:.0f} MiB each; "
        f"store {on_disk / 2**20:.0f} MiB on disk ({on_disk / limit:.1f}x one worker's limit)"
    )
    ok = True
    variants = VARIANTS if args.cluster_variants else {"as shipped": (False, False), "tuned": (True, True)}
    for name, (trim_unset, whole) in variants.items():
        result = measure_cluster(path, args.workers, args.memory_limit, trim_unset, whole)
        agree = float(np.max(np.abs(result["values"] / truth - 1)))
        within = all(peak <= limit for peak in result["peaks"].values()) and not result["restarted"]
        ok &= agree < 1e-6 and within
        peaks = ", ".join(f"{peak / 2**20:.0f}" for peak in result["peaks"].values())
        print(
            f"[cluster {name}] {result['seconds']:.2f} s wall, {result['cpu']:.2f} s CPU (all processes) = "
            f"{result['cpu'] / baseline['cpu']:.2f}x the threaded scheduler's {baseline['cpu']:.2f} s "
            f"(wall {result['seconds'] / baseline['seconds']:.2f}x); {result['system']:.2f} s of it system time, "
            f"{result['cpu_client']:.2f} s in this process (scheduler + client); max relative difference to numpy "
            f"{agree:.1e}"
        )
        print(
            f"[cluster {name}] workers' MALLOC_TRIM_THRESHOLD_={result['trim']}, chunks "
            f"{'whole snapshots' if whole else 'as stored (4 MiB)'}; peak RSS per worker {peaks} MiB (limit {limit / 2**20:.0f} MiB "
            f"{'respected' if within else 'EXCEEDED'}{'; workers restarted' if result['restarted'] else ''})"
        )
    return ok


def build_parser() -> argparse.ArgumentParser:
    """The command line this script accepts (tests/test_docs.py parses the documented commands with it)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gigabytes", type=float, default=3.0, help="raw batch_gradients to write (GB, 1e9 bytes)")
    parser.add_argument(
        "--scheduler",
        choices=("threads", "distributed", "both"),
        default="threads",
        help="threads: dask's default, in this process; distributed: one worker process",
    )
    parser.add_argument("--memory-limit", default="1GiB", help="peak RSS allowed to the computing process (per worker)")
    parser.add_argument(
        "--distributed", action="store_true", help="also compute on a LocalCluster of --workers processes, as shipped and tuned"
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes of --distributed (1 thread each)")
    parser.add_argument(
        "--cluster-variants", action="store_true", help="with --distributed: each tuning alone too (4 clusters instead of 2)"
    )
    parser.add_argument("--workdir", default="/tmp", help="where the store is written (deleted after)")
    parser.add_argument("--entropy-repeats", type=int, default=30)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    from dask.utils import parse_bytes

    limit = parse_bytes(args.memory_limit)
    print(f"machine: {os.cpu_count()} CPU(s) visible, load average {os.getloadavg()[0]:.1f}")
    best, median = time_entropy(args.entropy_repeats)
    print(
        f"entropy (Eq. 31) of 25,600 x 128, relative binning, 30 bins: best {best * 1e3:.1f} ms, "
        f"median {median * 1e3:.1f} ms over {args.entropy_repeats} (target <= 15 ms)"
    )

    snapshot_bytes = K * (paper_layout()[-1]["offset"] + 1) * 4
    n_snapshots = max(1, int(np.ceil(args.gigabytes * 1e9 / snapshot_bytes)))
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="pinnlog-bench-", dir=args.workdir))
    path = workdir / "bench.zarr"
    try:
        start = time.perf_counter()
        truth = write_store(path, n_snapshots)
        on_disk = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        print(
            f"wrote {n_snapshots} snapshots x {K} batches x {snapshot_bytes // K // 4:,} params = "
            f"{n_snapshots * snapshot_bytes / 1e9:.2f} GB raw ({on_disk / 1e9:.2f} GB on disk) "
            f"in {time.perf_counter() - start:.0f} s"
        )
        schedulers = ("threads", "distributed") if args.scheduler == "both" else (args.scheduler,)
        reads = [plain_read(path)]
        results = {}
        for scheduler in schedulers:
            results[scheduler] = measure(path, scheduler, args.memory_limit)
            reads.append(plain_read(path))
        t_read, cpu_read, nbytes = min(r[0] for r in reads), min(r[1] for r in reads), reads[0][2]
        print(
            f"plain sequential zarr read: {', '.join(f'{r[0]:.2f}' for r in reads)} s wall, "
            f"{', '.join(f'{r[1]:.2f}' for r in reads)} s CPU (best {nbytes / t_read / 1e9:.2f} GB/s)"
        )
        ok = True
        for scheduler, result in results.items():
            agree = float(np.max(np.abs(result["values"] / truth - 1)))
            within = result["peak"] <= limit
            ok &= agree < 1e-6 and within
            print(
                f"[{scheduler}] SNR from raw batch gradients: {result['seconds']:.2f} s wall, "
                f"{result['cpu']:.2f} s CPU; max relative difference to numpy {agree:.1e}"
            )
            print(
                f"[{scheduler}] ratio t(metric) / t(plain read) = {result['seconds'] / t_read:.2f} wall "
                f"(target <= 1.5), {result['cpu'] / cpu_read:.2f} CPU"
            )
            print(
                f"[{scheduler}] peak RSS of the computing process {result['peak'] / 2**20:.0f} MiB "
                f"(target <= 1 GB; limit {limit / 2**20:.0f} MiB {'respected' if within else 'EXCEEDED'})"
                + (f"; client process {result['client_peak'] / 2**20:.0f} MiB" if scheduler == "distributed" else "")
            )
        if args.distributed:
            ok &= report_cluster(path, truth, args, limit, on_disk, results)
        return 0 if ok else 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
