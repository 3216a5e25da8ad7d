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
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: the checkout's benchmarks package
from benchmarks.reliability.campaign_run import toy_run, watching_commits
from pinnlog.recorder import every

SCHEDULE, RAW_SCHEDULE = every(2), every(5)


def say(line: str) -> None:
    os.write(1, (line + "\n").encode())


def record(path: str, seed: int, n_steps: int) -> None:
    torch.set_num_threads(1)
    run = toy_run(n_batches=4, batch_size=32, width=32, seed=seed)
    rec = run.recorder(path, schedule=SCHEDULE, raw_schedule=RAW_SCHEDULE, probe=run.x[:16], overwrite=True)
    for step in range(n_steps):
        loss = run.train_step()
        if SCHEDULE(step) or RAW_SCHEDULE(step):
            say(f"P {step}")
        rec.step(step, loss=loss.item())
        say(f"S {step}")
    say("X close")
    rec.close()
    say("X done")


def main() -> None:
    with watching_commits(started=lambda group: say(f"W {group}"), committed=lambda group, n: say(f"C {group} {n}")):
        serve()


def serve() -> None:
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
