"""One rank of the DDP test: a tiny model trained with DDP on gloo, recorded by ``DistributedRecorder``.

Each rank holds its own 16 rows of one fixed data set, split into ``N_LOCAL`` batches; rank 0 writes the
store. ``data()`` and ``make_model()`` are what the test rebuilds in a single process to check the store.
"""

from __future__ import annotations

import torch

N_LOCAL, ROWS_PER_BATCH, WORLD = 2, 8, 2
STEPS = 10


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(2, 6), torch.nn.Tanh(), torch.nn.Linear(6, 1))


def data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All ranks' rows in rank-major order, and the boundary points every batch shares."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(WORLD * N_LOCAL * ROWS_PER_BATCH, 2, generator=g)
    y = torch.sin(2 * x[:, :1]) * x[:, 1:]
    boundary = torch.randn(5, 2, generator=g)
    return x, y, boundary


def batch_loss_of(x, y, rank: int, n_local: int = N_LOCAL):
    """``batch_loss(model, b)`` over batch ``b`` of ``rank``'s shard."""

    def batch_loss(model, b):
        start = (rank * n_local + b) * ROWS_PER_BATCH
        part = slice(start, start + ROWS_PER_BATCH)
        return ((model(x[part]) - y[part]) ** 2).mean()

    return batch_loss


def batch_losses_of(x, y, rank: int, n_local: int = N_LOCAL):
    """``batch_losses(model, batches)``: the same losses for a slice of ``rank``'s batches, on stacked rows."""

    def batch_losses(model, batches):
        start = rank * n_local * ROWS_PER_BATCH
        shard = slice(start, start + n_local * ROWS_PER_BATCH)
        xs, ys = x[shard].view(n_local, ROWS_PER_BATCH, -1)[batches], y[shard].view(n_local, ROWS_PER_BATCH, -1)[batches]
        return ((model(xs) - ys) ** 2).mean(dim=(1, 2))

    return batch_losses


def shared_loss_of(boundary):
    def shared_loss(model):
        return 0.5 * (model(boundary) ** 2).mean()

    return shared_loss


def run_rank(rank: int, path: str, port: int, vectorised: bool = False) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from pinnlog.recorder import every
    from pinnlog.recorder.distributed import DistributedRecorder

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        x, y, boundary = data()
        model = DistributedDataParallel(make_model())
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        batch_loss, shared_loss = batch_loss_of(x, y, rank), shared_loss_of(boundary)
        shard = slice(rank * N_LOCAL * ROWS_PER_BATCH, (rank + 1) * N_LOCAL * ROWS_PER_BATCH)
        with DistributedRecorder(
            path,
            model,
            optimizer,
            batch_loss,
            n_batches=N_LOCAL,
            shared_loss=shared_loss,
            batch_losses=batch_losses_of(x, y, rank) if vectorised else None,
            check_every=2,
            schedule=every(3),
            raw_schedule=every(3),
        ) as rec:
            for step in range(STEPS):
                optimizer.zero_grad()
                loss = ((model(x[shard]) - y[shard]) ** 2).mean() + 0.5 * (model(boundary) ** 2).mean()
                loss.backward()
                optimizer.step()
                rec.step(step, loss=loss)
    finally:
        dist.destroy_process_group()
