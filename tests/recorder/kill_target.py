"""Fork server for test_recorder_sigkill.py: imports torch once, then forks one recording per request.

Protocol on stdin/stdout, one line each: the test sends ``PATH SEED``; the forked child records until it
is killed and prints ``READY PID`` once its first capture is committed; the server prints ``DONE PID``
when the child is gone. Forking skips the 3 s torch import per run. The server warms up once on one thread (a short recording
into a scratch directory, so lazy imports and codec set-up are done); zarr resets its event loop after a
fork and the writer thread of the warm-up is joined, so the children start clean.
"""

import os
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from recorder_problems import AllenCahn, TanhMLP

from pinnlog.recorder import every


def record_until_killed(path: str, seed: int, n_steps: int = 1_000_000, announce: bool = True) -> None:
    torch.manual_seed(seed)
    problem = AllenCahn(n_batches=3, batch_size=6, seed=seed)
    model = TanhMLP([2, 8, 8, 1])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    rec = problem.recorder(
        path,
        model,
        optimizer,
        schedule=every(2),
        raw_schedule=every(3),
        probe_schedule=every(4),
    )
    for step in range(n_steps):
        loss = problem.train_step(model, optimizer)
        rec.step(step, loss=loss)
        if step == 0 and announce:
            rec.flush()
            print(f"READY {os.getpid()}", flush=True)
    rec.close()


def main() -> None:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as scratch:
        record_until_killed(os.path.join(scratch, "warm.zarr"), 0, n_steps=4, announce=False)
    print("SERVER READY", flush=True)
    for line in sys.stdin:
        path, seed = line.split()
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            try:
                record_until_killed(path, int(seed))
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        print(f"DONE {pid}", flush=True)


if __name__ == "__main__":
    main()
