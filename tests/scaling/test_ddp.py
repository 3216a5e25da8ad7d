"""DDP on gloo, 2 CPU processes: rank 0's store holds the reductions a single process computes over the union.

The two ranks train one model with ``DistributedDataParallel``, each on its own shard cut into 2 fixed
batches, and record with ``DistributedRecorder``. The test then rebuilds the model in this process at
every recorded step's weights and computes the 4 batch gradients of the union (rank-major order) two
independent ways: the single-process recorder's own capture, and a loop of ``backward()`` with numpy
statistics. The merged reductions must match both to 1e-6, the gathered raw rows the gradients.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).parent))
import ddp_worker as W

from pinnlog.analyzer import open_run
from pinnlog.recorder import captures

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="this torch build has no torch.distributed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module", params=["loop", "vectorised"])
def ddp_run(tmp_path_factory, request):
    """The DDP run recorded with each rank's loop engine, or its vectorised engine (``batch_losses``)."""
    import torch.multiprocessing as mp

    path = tmp_path_factory.mktemp("ddp") / "ddp.zarr"
    mp.spawn(W.run_rank, args=(str(path), free_port(), request.param == "vectorised"), nprocs=W.WORLD, join=True)
    return open_run(path)


def _at_weights(weights: np.ndarray) -> torch.nn.Module:
    model = W.make_model()
    with torch.no_grad():
        torch.nn.utils.vector_to_parameters(torch.from_numpy(weights.copy()), list(model.parameters()))
    return model


def _union_batch_loss(x, y):
    """The K = 4 batches of the union: batch b of the single process is batch b % 2 of rank b // 2."""
    losses = [W.batch_loss_of(x, y, rank) for rank in range(W.WORLD)]
    return lambda model, b: losses[b // W.N_LOCAL](model, b % W.N_LOCAL)


def test_rank_zero_writes_the_reductions_of_the_union_of_every_ranks_batches(ddp_run):
    x, y, boundary = W.data()
    stats = ddp_run["gradient_stats"]
    assert ddp_run.attrs["status"] == "complete" and ddp_run.attrs["n_batches"] == W.WORLD * W.N_LOCAL
    assert ddp_run.attrs["distributed"]["world_size"] == W.WORLD
    assert list(stats["step"].values) == [0, 3, 6, 9]
    used = "vectorised" if ddp_run.attrs["engine"]["batch_losses"] else "loop"
    assert stats["engine"].values.tolist() == [captures.ENGINE_CODES[used]] * 4
    assert ddp_run.attrs["engine"]["fallback_reason"] is None
    weights = ddp_run["weights"]["weights"].values
    batch_loss, shared_loss = _union_batch_loss(x, y), W.shared_loss_of(boundary)
    for row in range(stats.sizes["step"]):
        model = _at_weights(weights[row])
        layout = captures.build_layout(model)
        single = captures.capture_gradients(model, layout, batch_loss, W.WORLD * W.N_LOCAL, shared_loss)
        np.testing.assert_allclose(stats["sum_mu2"].values[row], single.sum_mu2.numpy(), rtol=1e-6)
        np.testing.assert_allclose(stats["sum_sigma2"].values[row], single.sum_sigma2.numpy(), rtol=1e-6)
        # ... and a plain backward() loop with numpy statistics (population variance, ddof=0)
        rows = []
        for b in range(W.WORLD * W.N_LOCAL):
            model.zero_grad()
            (batch_loss(model, b) + shared_loss(model)).backward()
            rows.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]).numpy())
        g = np.stack(rows).astype(np.float64)
        spans = [slice(o, o + c) for o, c in layout.spans]
        np.testing.assert_allclose(stats["sum_mu2"].values[row], [(g.mean(0)[s] ** 2).sum() for s in spans], rtol=1e-6)
        np.testing.assert_allclose(stats["sum_sigma2"].values[row], [g.var(0)[s].sum() for s in spans], rtol=1e-6)
        np.testing.assert_allclose(
            ddp_run["batch_gradients"]["batch_gradients"].values[row], np.stack(rows), rtol=1e-5, atol=1e-7
        )


def test_ddp_training_matches_single_process_training_on_the_union(ddp_run):
    """Recording does not change training: the weights rank 0 stored are those of plain full-data training.

    (DDP averages the two shards' gradients, so 10 Adam steps on the mean of the shard losses give the
    same weights; a capture that moved the weights, the RNG or the gradients would break the match.)
    """
    x, y, boundary = W.data()
    model = W.make_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    half = W.N_LOCAL * W.ROWS_PER_BATCH
    recorded = dict(zip(ddp_run["weights"]["step"].values.tolist(), ddp_run["weights"]["weights"].values))
    for step in range(W.STEPS):
        optimizer.zero_grad()
        loss = (
            sum(((model(x[r * half : (r + 1) * half]) - y[r * half : (r + 1) * half]) ** 2).mean() for r in range(W.WORLD))
            / W.WORLD
            + 0.5 * (model(boundary) ** 2).mean()
        )
        loss.backward()
        optimizer.step()
        if step in recorded:
            flat = torch.nn.utils.parameters_to_vector(model.parameters()).detach().numpy()
            np.testing.assert_allclose(recorded[step], flat, rtol=1e-5, atol=1e-6)
