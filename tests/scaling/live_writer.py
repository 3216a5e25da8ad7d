"""A recording subprocess for the watch test: a tiny model recorded with ``Recorder``, in two halves.

    python live_writer.py RUN MARKER_DIR

Records steps 0..19 (a capture every 2 steps), commits them (``rec.flush()``), creates MARKER_DIR/half,
waits for MARKER_DIR/go (at most 120 s), records steps 20..39 and closes the store ("complete").
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from pinnlog.recorder import Recorder, every

HALF, STEPS = 20, 40


def main(path: str, markers: str) -> int:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 6), torch.nn.Tanh(), torch.nn.Linear(6, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.randn(32, 2)
    y = torch.sin(2 * x[:, :1]) * x[:, 1:]

    def batch_loss(m, b):
        part = slice(8 * b, 8 * b + 8)
        return ((m(x[part]) - y[part]) ** 2).mean()

    with Recorder(path, model, optimizer, batch_loss, n_batches=4, schedule=every(2)) as rec:
        for step in range(STEPS):
            if step == HALF:
                rec.flush()
                (Path(markers) / "half").touch()
                deadline = time.monotonic() + 120
                while not (Path(markers) / "go").exists():
                    if time.monotonic() > deadline:
                        raise TimeoutError("nobody said go")
                    time.sleep(0.05)
            optimizer.zero_grad()
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()
            optimizer.step()
            rec.step(step, loss=loss, test_error=float(loss) ** 0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
