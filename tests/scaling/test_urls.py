"""Runs written and read through fsspec URLs (``memory://``, ``file://``) equal runs in a plain directory.

Writing: ``RunWriter`` (the commit protocol) and the ``Recorder`` (a real training loop). Reading:
``open_run``, ``pinnlog info`` and ``pinnlog analyze``. Every check compares with a computation of the
test's own: numpy on the synthetic truth, or an autograd loop at the recorded weights.
"""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
import zarr

from pinnlog.analyzer import metrics as M
from pinnlog.analyzer import open_run
from pinnlog.analyzer.errors import RecorderError
from pinnlog.analyzer.store.write import RunWriter

LAYERS = (2, 5, 4, 1)


def memory_url(name: str = "run.zarr") -> str:
    return f"memory://pinnlog-urls-{uuid.uuid4().hex}/{name}"


def numpy_snr(truth) -> np.ndarray:
    """Eq. 8 over the weight matrices: |mean_B g| / |std_B g| (ddof=0), per capture."""
    weights = np.concatenate([np.arange(t["offset"], t["offset"] + t["numel"]) for t in truth.layout if not t["is_bias"]])
    g = truth.gradients[:, :, weights].astype(np.float64)
    return np.linalg.norm(g.mean(axis=1), axis=1) / np.linalg.norm(g.std(axis=1), axis=1)


@pytest.mark.parametrize("scheme", ["memory", "file"])
def test_runstore_writes_through_a_url_and_open_run_reads_it_back(scheme, tmp_path, write_run, synthetic_run):
    truth = synthetic_run(n_steps=5, layers=LAYERS, seed=3, raw=2, residuals=16)
    url = memory_url() if scheme == "memory" else (tmp_path / "run.zarr").as_uri()
    write_run(url, truth)
    run = open_run(url)
    assert run.attrs["status"] == "complete"
    np.testing.assert_allclose(M.snr(run).values, numpy_snr(truth), rtol=1e-12)
    np.testing.assert_array_equal(run["batch_gradients"]["batch_gradients"].values, truth.gradients[truth.raw_rows])
    np.testing.assert_array_equal(run["residuals"]["residual"].values, truth.residual)
    np.testing.assert_array_equal(run["scalars"]["loss"].values, truth.loss)
    if scheme == "file":  # file:// is the local directory, written with atomic renames, readable by path
        np.testing.assert_array_equal(M.snr(open_run(tmp_path / "run.zarr")).values, M.snr(run).values)
        leftovers = [p for p in (tmp_path / "run.zarr").rglob("*") if ".tmp" in p.name or p.name.startswith(".")]
        # the chunk manifest is the one hidden file of a closed store (docs/format.md, format 1.2); no lease is left
        assert [p.name for p in leftovers] == [".pinnlog-digests.json"]


def test_a_url_that_holds_a_run_is_not_overwritten_without_asking(write_run, synthetic_run):
    url = memory_url()
    write_run(url, synthetic_run(n_steps=2, layers=LAYERS, seed=1))
    with pytest.raises(RecorderError, match="already exists; pass overwrite=True"):
        RunWriter(url, {})
    RunWriter(url, {"model": "new"}, overwrite=True).close()
    attrs = zarr.open_group(url, mode="r").attrs
    assert attrs["model"] == "new" and "gradient_stats" not in zarr.open_group(url, mode="r")


def test_info_and_analyze_read_a_memory_url(cli, tmp_path, write_run, synthetic_run):
    truth = synthetic_run(n_steps=12, layers=LAYERS, seed=5)
    url = memory_url("ac.zarr")
    write_run(url, truth)
    info = cli("info", url)
    assert info.exit_code == 0, info.stderr
    committed = {
        cells[0]: cells[1]
        for cells in ([c.strip() for c in line.split("│")[1:3]] for line in info.stdout.splitlines() if line.startswith("│"))
        if cells[0]
    }
    assert committed == {"gradient_stats": "12", "scalars": str(truth.scalar_steps.size)}
    result = cli("analyze", url, "-o", tmp_path / "report", "-q")
    assert result.exit_code == 0, result.stderr
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["runs"][0]["label"] == "ac"
    final = summary["runs"][0]["final"]["snr"]
    assert final["step"] == int(truth.steps[-1])
    assert final["value"] == pytest.approx(numpy_snr(truth)[-1], rel=1e-10)


# -- the Recorder ------------------------------------------------------------------------------------


def _train(path, steps=12):
    """A tiny Adam run recorded to ``path``: K=4 fixed batches, a capture every 3 steps, raw weights too."""
    torch = pytest.importorskip("torch")
    from pinnlog.recorder import Recorder, every

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 6), torch.nn.Tanh(), torch.nn.Linear(6, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.randn(32, 2)
    y = torch.sin(x[:, :1]) * x[:, 1:]

    def batch_loss(m, b):
        part = slice(8 * b, 8 * b + 8)
        return ((m(x[part]) - y[part]) ** 2).mean()

    with Recorder(path, model, optimizer, batch_loss, n_batches=4, schedule=every(3), raw_schedule=every(3)) as rec:
        for step in range(steps):
            optimizer.zero_grad()
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()
            optimizer.step()
            rec.step(step, loss=loss)
    return model, batch_loss


def _autograd_reductions(model, batch_loss, weights: np.ndarray, layout) -> tuple[np.ndarray, np.ndarray]:
    """Per-tensor sum mu^2 and sum sigma^2 at ``weights``: a backward per batch, numpy statistics."""
    import torch

    params = list(model.parameters())
    with torch.no_grad():
        torch.nn.utils.vector_to_parameters(torch.from_numpy(weights.copy()), params)
    rows = []
    for b in range(4):
        model.zero_grad()
        batch_loss(model, b).backward()
        rows.append(torch.cat([p.grad.reshape(-1) for p in params]).numpy().astype(np.float64))
    g = np.stack(rows)
    mu, var = g.mean(axis=0), g.var(axis=0)
    spans = [slice(t["offset"], t["offset"] + t["numel"]) for t in layout]
    return np.array([(mu[s] ** 2).sum() for s in spans]), np.array([var[s].sum() for s in spans])


def test_the_recorder_writes_to_memory_and_file_urls_what_it_writes_to_a_directory(tmp_path):
    url = memory_url()
    model, batch_loss = _train(url)
    _train((tmp_path / "u.zarr").as_uri())
    _train(tmp_path / "d.zarr")
    by_url, by_file, by_dir = open_run(url), open_run(tmp_path / "u.zarr"), open_run(tmp_path / "d.zarr")
    for run in (by_file, by_dir):  # same seed, same steps: the same numbers wherever they were written
        for name in ("sum_mu2", "sum_sigma2", "sum_w2", "sum_m_hat2"):
            np.testing.assert_array_equal(run["gradient_stats"][name].values, by_url["gradient_stats"][name].values)
    stats, weights = by_url["gradient_stats"], by_url["weights"]["weights"].values
    assert by_url.attrs["status"] == "complete" and list(stats["step"].values) == [0, 3, 6, 9]
    for row in range(stats.sizes["step"]):
        mu2, sigma2 = _autograd_reductions(model, batch_loss, weights[row], by_url.attrs["layout"])
        np.testing.assert_allclose(stats["sum_mu2"].values[row], mu2, rtol=1e-6)
        np.testing.assert_allclose(stats["sum_sigma2"].values[row], sigma2, rtol=1e-6)
