"""The metrics and ``pinnlog analyze`` on a ``dask.distributed`` cluster equal the local threaded results.

One ``LocalCluster`` (two worker processes on loopback, one thread each) serves the module. Each test
checks that the work really ran on the cluster's workers (dask's task stream), that the values equal
the local scheduler's and an independent numpy computation, and that a run the workers cannot read is
refused in one line instead of silently read as fill values.
"""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
import xarray as xr

from pinnlog.analyzer import metrics as M
from pinnlog.analyzer import open_run
from pinnlog.analyzer.scheduler import SchedulerError, dask_scheduler

distributed = pytest.importorskip("distributed")

ARGS = dict(n_steps=9, layers=(2, 6, 5, 1), seed=11, raw=3, activations=40, residuals=32)

METRICS = {
    "snr": lambda run: M.snr(run),
    "snr_per_layer": lambda run: M.snr(run, per_layer=True, include_bias=True),
    "srr_b": lambda run: M.srr_b(run, per_layer=True),
    "srr_c": lambda run: M.srr_c(run),
    "gradient_norms": lambda run: M.gradient_norms(run),
    "weight_norm": lambda run: M.weight_norm(run),
    "snr_from_batch_gradients": lambda run: M.snr_from_batch_gradients(run, per_layer=True),
    "mutual_information": lambda run: M.mutual_information(run),
    "binarization": lambda run: M.binarization(run),
    "residual_homogeneity": lambda run: M.residual_homogeneity(run),
}


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(
        n_workers=2, processes=True, host="127.0.0.1", threads_per_worker=1, dashboard_address=None
    ) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def path(tmp_path_factory, make_store):
    return make_store(tmp_path_factory.mktemp("distributed"), **ARGS)


def _compute_all(path):
    """Every metric of one run in one Dataset (a Dataset result's variables get the metric's prefix)."""
    run = open_run(path)
    parts = []
    for name, metric in METRICS.items():
        value = metric(run)
        parts.append(
            value.rename(name) if isinstance(value, xr.DataArray) else value.rename({v: f"{name}_{v}" for v in value.data_vars})
        )
    return xr.merge(parts, compat="override", join="outer").compute()


def test_metrics_on_the_cluster_equal_the_local_ones_and_numpy(cluster, path, synthetic_run):
    local = _compute_all(path)
    with dask_scheduler(cluster.scheduler_address, runs=[path]) as client, distributed.get_task_stream(client) as stream:
        remote = _compute_all(path)
    workers = {task["worker"] for task in stream.data}
    assert workers and workers <= set(cluster.scheduler_info["workers"])  # the cluster did the work
    xr.testing.assert_allclose(remote, local, rtol=1e-12, atol=0)
    # ... and both are the paper's Eq. 8 on the synthetic truth: |mean_B g| / |std_B g| over the weights
    truth = synthetic_run(**ARGS)
    weights = np.concatenate([np.arange(t["offset"], t["offset"] + t["numel"]) for t in truth.layout if not t["is_bias"]])
    g = truth.gradients[:, :, weights].astype(np.float64)
    expected = np.linalg.norm(g.mean(axis=1), axis=1) / np.linalg.norm(g.std(axis=1), axis=1)
    np.testing.assert_allclose(remote["snr"].values, expected, rtol=1e-10)


def test_analyze_on_the_cluster_writes_the_summary_of_the_runs_metrics(cluster, make_store, cli, tmp_path, monkeypatch):
    path = make_store(tmp_path, n_steps=9, layers=(2, 5, 1), seed=4, name="small.zarr")
    # A relative path: the workers started in another working directory and must still find the run.
    # The address comes from DASK_SCHEDULER_ADDRESS, the default of --scheduler.
    monkeypatch.chdir(tmp_path)
    result = cli("analyze", "small.zarr", "-o", "remote", "-q", env={"DASK_SCHEDULER_ADDRESS": cluster.scheduler_address})
    assert result.exit_code == 0, result.stderr
    remote = json.loads((tmp_path / "remote" / "summary.json").read_text())["runs"][0]
    assert json.loads((tmp_path / "remote" / "summary.json").read_text())["options"]["scheduler"] == cluster.scheduler_address
    run = open_run(path)  # computed here, with local threads
    for name, metric in (("snr", M.snr), ("srr_b", M.srr_b), ("srr_c", M.srr_c)):
        local = metric(run).compute()
        assert remote["final"][name] == {"step": int(local["step"][-1]), "value": pytest.approx(float(local[-1]), rel=1e-12)}
    assert remote["recorded"] == {name: run[name].sizes["step"] for name in run.children}


def test_a_run_the_workers_cannot_read_is_refused_in_one_line(cluster, cli, write_run, synthetic_run):
    url = f"memory://pinnlog-dist-{uuid.uuid4().hex}/run.zarr"  # exists in this process only
    write_run(url, synthetic_run(n_steps=3, layers=(2, 4, 1), seed=1))
    with (
        pytest.raises(SchedulerError, match=r"cannot read memory://.*copy the run to shared storage"),
        dask_scheduler(cluster.scheduler_address, runs=[url]),
    ):
        pass
    result = cli("analyze", url, "-q", "--scheduler", cluster.scheduler_address)
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: dask worker tcp://127.0.0.1:"), result.stderr


def test_without_an_address_nothing_changes(path):
    import dask

    before = dask.config.get("scheduler", None)
    with dask_scheduler(None, runs=[path]) as client:
        assert client is None and dask.config.get("scheduler", None) == before
