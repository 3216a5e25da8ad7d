"""Kernel launches of a capture against a plain training step: what a capture costs on a launch-bound GPU.

    python benchmarks/launch_count.py                  # the paper's problem; the counts are the same on any device
    python benchmarks/launch_count.py --device cuda    # on a GPU: also the CUDA kernels the profiler sees
    python benchmarks/launch_count.py --quick          # K = 8 batches of 32 points (--threads 1: torch's threads)

At the paper's size a training step on a GPU is a chain of a few hundred small kernels, each of which
costs about the same few microseconds to launch and run; a capture then costs about its number of
launches. The loop engine's K double-backward passes launch K times a batch gradient's kernels, which
is why a capture cost 52-88 plain steps on the H200 (docs/performance.md). This script counts, with a
``TorchDispatchMode``, every aten operator that runs on the training thread, except views and bare
allocations (they launch no kernel): on a GPU each counted operator is one kernel launch. The count is
an upper bound there: it includes the few operators on Adam's step counter, a CPU scalar that stays on
the host on a GPU too. The writer thread's work (numpy, compression) is not counted: dispatch modes
are per thread.

Set-up (benchmarks/paper_problem.py): MLP [2] + [128] x 6 + [1] tanh, K = 100 batches of 256 points, 512
initial-condition points, Adam; the paper's recording (residual batch losses, the initial-condition
loss as ``shared_loss``), as in recorder_overhead.py (b). Prints the launches of a plain step, of one
full-batch gradient, of ``rec.step`` with a capture (loop engine, also with the initial-condition loss
in every batch as recorder_overhead.py (a) "capture" measures it; vectorised engine with all K batches
in one pass as on CUDA, its first capture with the self-check against the loop, and in CPU chunks of
25) and without one, then the whole-run ratios a launch-bound GPU would show for issue 14's targets
(every(100) over 3,000 steps, the paper's cadence over 20,000): a model, which the H200 figures check.
Last, what the model leaves out and can be measured here: the time the writer thread's Python work
takes from a GIL-bound training thread per capture (:func:`writer_gil_cost`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paper_problem import AllenCahnProblem, make_run, plain_step
from recorder_overhead import CADENCE_TARGETS, CADENCES, _paper_recorder, _timed

from pinnlog.recorder import Recorder, every

#: Operators that are not views but launch no kernel: allocations and a reshape of a contiguous tensor.
LAUNCH_FREE = frozenset(
    getattr(torch.ops.aten, name)
    for name in ("empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "_unsafe_view", "lift_fresh", "alias")
)


class LaunchCount(TorchDispatchMode):
    """Counts the kernel-launching aten operators run while the mode is active, by operator name."""

    def __init__(self):
        super().__init__()
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not func.is_view and func.overloadpacket not in LAUNCH_FREE:
            self.ops[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))

    @property
    def total(self) -> int:
        return sum(self.ops.values())


def launches(fn) -> LaunchCount:
    """The launches of ``fn()`` on this thread."""
    count = LaunchCount()
    with count:
        fn()
    return count


def cuda_kernels(fn) -> int:
    """CUDA kernels, copies and fills of ``fn()`` as the profiler records them (CUDA only)."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    return sum(1 for event in prof.events() if event.device_type == DeviceType.CUDA)


@dataclass
class StepLaunches:
    """Launches of a plain step and of ``rec.step`` on the steps of a recorded run (``checked``: a capture
    that also runs the vectorised engine's self-check)."""

    plain: int
    capture: int
    checked: int
    no_capture: int


def run_ratio(counts: StepLaunches, schedule, steps: int, check_every: int | None = 1000) -> tuple[float, int]:
    """Launches of a recorded run of ``steps`` steps / those of the plain run, and its number of captures.

    A capture is checked at the first capture and every ``check_every``-th after it (the engine's rule).
    """
    captures = [step for step in range(steps) if schedule(step)]
    extra = (steps - len(captures)) * counts.no_capture
    for i, _ in enumerate(captures):
        checked = i == 0 or (check_every is not None and i % check_every == 0)
        extra += counts.checked if checked else counts.capture
    return 1 + extra / (steps * counts.plain), len(captures)


def count_steps(args, problem, tmp: Path) -> dict[str, int]:
    """Launches of the plain step, the floor and each kind of ``rec.step``, in the order printed."""
    model, optimizer = make_run(args.device)
    params = list(model.parameters())
    loss = plain_step(model, optimizer, problem)  # Adam state exists, as at any capture after the first step
    k, found = problem.n_batches, {}
    found["plain training step"] = launches(lambda: plain_step(model, optimizer, problem)).total
    found["one full-batch gradient (the floor)"] = launches(lambda: torch.autograd.grad(problem.full_loss(model), params)).total
    found["one batch gradient (residual loss)"] = launches(
        lambda: torch.autograd.grad(problem.residual_loss(model, 0), params)
    ).total

    def recorder(name: str, engine: str, schedule=every(1), chunk_size=k):  # default: all K at once, as on CUDA
        return _paper_recorder(tmp / f"{name}.zarr", model, optimizer, problem, schedule, engine, chunk_size=chunk_size)

    rec = recorder("loop", "loop")
    found["capture, loop engine"] = launches(lambda: rec.step(0, loss=loss)).total
    rec.close()
    rec = Recorder(tmp / "no-shared.zarr", model, optimizer, problem.batch_loss, k, schedule=every(1))
    found["capture, loop engine, no shared_loss"] = launches(lambda: rec.step(0, loss=loss)).total
    rec.close()
    rec = recorder("vectorised", "vectorised")
    found["capture, vectorised, first (self-check)"] = launches(lambda: rec.step(0, loss=loss)).total
    found["capture, vectorised, all K at once"] = launches(lambda: rec.step(1, loss=loss)).total
    rec.close()
    rec = recorder("chunks", "vectorised", chunk_size=min(25, k))
    rec.step(0, loss=loss)
    found["capture, vectorised, chunks of 25 (CPU)"] = launches(lambda: rec.step(1, loss=loss)).total
    rec.close()
    rec = recorder("sparse", "vectorised", schedule=every(100))
    rec.step(0, loss=loss)
    found["rec.step without a capture"] = launches(lambda: rec.step(1, loss=loss)).total
    rec.close()
    if args.device.startswith("cuda"):
        rec = recorder("profiled", "vectorised")
        rec.step(0, loss=loss)
        try:
            found["CUDA kernels (profiler): plain training step"] = cuda_kernels(lambda: plain_step(model, optimizer, problem))
            found["CUDA kernels (profiler): capture, vectorised"] = cuda_kernels(lambda: rec.step(1, loss=loss))
        except Exception as error:  # report, do not hide: the counts above stand without it
            print(f"    CUDA profiler: failed: {type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}")
            found.pop("CUDA kernels (profiler): plain training step", None)
        rec.close()
    return found


def writer_gil_cost(device: str, tmp: Path, captures: int = 30, window: float = 0.1) -> float:
    """Median seconds a GIL-bound training thread loses per capture while the writer thread stores it.

    A launch-bound GPU training loop is such a thread: it holds the GIL between kernel launches, so the
    writer's Python work (zarr's codec pipeline, its event loop) is taken from it. Measured with a loop
    of tiny torch ops on the host: its count in ``window`` seconds right after ``rec.step`` handed a
    capture to the writer, against the same window just before. The rows written do not depend on the
    problem's size, only on its tensors: the paper's network on K = 2 batches of 4 points.
    """
    problem = AllenCahnProblem(n_batches=2, batch_size=4, n_ic=4, device=device)
    model, optimizer = make_run(device)
    loss = plain_step(model, optimizer, problem)
    rec = _paper_recorder(tmp / "writer.zarr", model, optimizer, problem, every(1), "vectorised")
    counter = torch.zeros(1)

    def spin() -> int:
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < window:
            counter.add_(1)
            n += 1
        return n

    rec.step(0, loss=loss)  # the self-check, and the groups' first writes
    rec.flush()
    before, after = [], []
    for step in range(1, captures + 1):
        before.append(spin())
        rec.step(step, loss=loss)
        after.append(spin())
        rec.flush()
    rec.close()
    rate = statistics.median(before) / window
    return statistics.median((b - a) / rate for b, a in zip(before, after))


def plain_step_seconds(device: str, problem, steps: int = 20) -> float:
    """Median wall time of a plain training step (synchronised on CUDA), after 3 warm-up steps."""
    model, optimizer = make_run(device)
    times = [_timed(device, lambda: plain_step(model, optimizer, problem)) for _ in range(steps + 3)]
    return statistics.median(times[3:])


def build_parser() -> argparse.ArgumentParser:
    """The command line this script accepts (tests/test_docs.py parses the documented commands with it)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="K = 8 batches of 32 points")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    return parser


def main(argv=None) -> dict[str, int]:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    problem = AllenCahnProblem(device=args.device, **(dict(n_batches=8, batch_size=32) if args.quick else {}))
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(
        f"launch_count: torch {torch.__version__}, {device_name}; K = {problem.n_batches} batches of {problem.batch_size} points"
    )
    with tempfile.TemporaryDirectory() as tmp:
        found = count_steps(args, problem, Path(tmp))
        lost = writer_gil_cost(args.device, Path(tmp), captures=8 if args.quick else 30)
    plain = found["plain training step"]
    print("kernel launches (aten operators that are not views or allocations), / a plain training step:")
    for name, n in found.items():
        base = found["CUDA kernels (profiler): plain training step"] if name.startswith("CUDA") else plain
        print(f"    {name:48s} {n:7d}   {n / base:7.2f}")
    counts = StepLaunches(
        plain=plain,
        capture=found["capture, vectorised, all K at once"],
        checked=found["capture, vectorised, first (self-check)"],
        no_capture=found["rec.step without a capture"],
    )
    print("whole run / plain run on a launch-bound GPU (a model: launches, not time), vectorised engine:")
    for cadence, steps in (("every100", 3000), ("paper", 20000)):
        ratio, n = run_ratio(counts, CADENCES[cadence], steps)
        print(f"    {cadence:9s} {steps:6d} steps, {n:4d} captures: {ratio:.4f}   (target <= {CADENCE_TARGETS[cadence]})")
    line = f"not in the model: the writer thread takes {1e3 * lost:.1f} ms per capture from a GIL-bound training thread (median)"
    if args.device.startswith("cuda"):  # on a GPU, in plain steps of this machine
        step = plain_step_seconds(args.device, problem)
        line += f" = {lost / step:.2f} plain steps of {1e3 * step:.1f} ms"
    print(line)
    return found


if __name__ == "__main__":
    main()
