"""Fork server of the kill campaign: imports torch once, then forks one recording per request.

Protocol, one line each. The campaign sends ``PATH SEED N_STEPS`` on stdin. The forked child prints
(with one ``os.write`` per line, so lines from its two threads never interleave):

- ``R PID`` when it starts;
- ``P STEP`` just before a ``rec.step`` that captures (the capture runs inside it), ``S STEP`` when
  ``rec.step(STEP)`` returned;
- ``W GROUP`` when the writer thread starts an ``append`` (chunk writes), ``C GROUP N`` right after
  the append committed ``n_committed = N`` (the side channel: what the child knows is committed);
- ``X close`` just before ``rec.close()`` (trim + consolidate), ``X done`` after it.

The server prints ``D PID`` when the child is gone (killed or finished).
"""

from __future__ import annotations

import os
import sys

import torch

from pinnlog.analyzer.store import write as store_module
from pinnlog.recorder import Recorder, every

SCHEDULE, RAW_SCHEDULE = every(2), every(5)


def say(line: str) -> None:
    os.write(1, (line + "\n").encode())


def instrument_commits() -> None:
    """Report every commit of the real store on stdout (the test's side channel)."""
    append = store_module.RunWriter.append

    def reporting_append(self, group, rows, dims=None):
        say(f"W {group}")
        n = append(self, group, rows, dims)
        say(f"C {group} {n}")
        return n

    store_module.RunWriter.append = reporting_append


def record(path: str, seed: int, n_steps: int) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    n_batches, batch = 4, 32
    x = torch.rand(n_batches * batch, 2) * 2 - 1
    y = torch.sin(3 * x[:, :1]) * x[:, 1:]
    model = torch.nn.Sequential(
        torch.nn.Linear(2, 32), torch.nn.Tanh(), torch.nn.Linear(32, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1)
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)

    def batch_loss(m, b):
        sl = slice(b * batch, (b + 1) * batch)
        return ((m(x[sl]) - y[sl]) ** 2).mean()

    rec = Recorder(
        path,
        model,
        optimizer,
        batch_loss,
        n_batches,
        schedule=SCHEDULE,
        raw_schedule=RAW_SCHEDULE,
        residuals=lambda m: (m(x) - y).squeeze(-1),
        probe=x[:16],
        overwrite=True,
    )
    for step in range(n_steps):
        optimizer.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        optimizer.step()
        if SCHEDULE(step) or RAW_SCHEDULE(step):
            say(f"P {step}")
        rec.step(step, loss=loss.item())
        say(f"S {step}")
    say("X close")
    rec.close()
    say("X done")


def main() -> None:
    instrument_commits()
    say("SERVER READY")
    for line in sys.stdin:
        path, seed, n_steps = line.split()
        pid = os.fork()
        if pid == 0:
            try:
                say(f"R {os.getpid()}")
                record(path, int(seed), int(n_steps))
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        say(f"D {pid}")


if __name__ == "__main__":
    main()
