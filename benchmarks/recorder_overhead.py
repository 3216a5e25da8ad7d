"""What recording costs on the paper's problem: time per capture, whole-run time, rec.step, memory.

    python benchmarks/recorder_overhead.py                 # the issue's figures (3,000 steps)
    python benchmarks/recorder_overhead.py --steps 200     # a shorter whole run
    python benchmarks/recorder_overhead.py --quick         # smoke-sized (200 steps, 3 repeats)
    python benchmarks/recorder_overhead.py --tiny          # smallest: K = 8 batches of 32 points (a test runs it)
    python benchmarks/recorder_overhead.py --device cuda   # on a GPU
    python benchmarks/recorder_overhead.py --engine loop   # (b) and (d) with the loop engine only
    python benchmarks/recorder_overhead.py --threads 1 --skip a,b,d   # (e) only: in place, cpu-small

Every part is measured per gradient engine (``recorder/engines.py``): ``loop`` (K batch_loss calls) and
``vectorised`` (``batch_losses`` on stacked inputs, one vmapped pass; its self-check against the loop
runs at a warm-up capture before the timed ones in (a), and inside the timed run in (b)).

Set-up (benchmarks/paper_problem.py): MLP [2] + [128] x 6 + [1] tanh, 25,600 collocation points in
K = 100 batches of 256, 512 initial-condition points, Adam. Plain and recorded work alternate in the
same process so that load on a shared machine hits both alike. Prints:

(a) one capture / one plain full-batch step (targets: <= 1.6, aim <= 1.0 with shared_loss), and the
    floor, one full-batch gradient alone / plain step;
(b) whole-run time recorded / plain with schedule=every(100) (target <= 1.03; ``--cadence paper``: every 2
    steps up to 300 then every 100, target <= 1.10; ``--overlap``: captures in the background): the two runs
    advance in turn, one step at a time (``--block``: more; with ``--overlap`` 50 steps, each recorded block
    ending with ``rec.flush()``); they must end bitwise identical;
(c) mean time of rec.step on a non-capture step / plain step (target < 1 %);
(d) the recorder's peak extra memory: the peak of live tensor bytes during a capture minus the peak of
    computing one batch gradient alone (which any capture needs), against 4 x P x 4 bytes without raw
    snapshots and 2 x K x P x 4 bytes with them (two raw captures in a row, the worst case). Counted
    with a TorchDispatchMode that follows every tensor storage the capture allocates until it is freed
    (on CUDA also with torch.cuda.max_memory_allocated).
(e) in place, on the ``cpu-small`` Allen-Cahn PINN of ``benchmarks/pinns`` (K = 16 x 128 points, [64] x 4;
    ``--inplace-config paper``: the paper's [128] x 6, K = 100 x 256 points):
    blocks of ``--inplace-every`` training steps with one capture at the first, each block ending with
    ``rec.flush()`` (the writer thread's work, and an overlapped capture, inside the block), plain and
    recorded blocks interleaved: a step with a capture / a step without = 1 + (recorded block - plain
    block) / plain step (target <= 1.6), synchronous and with ``overlap=True``; all runs must end bitwise
    identical.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paper_problem import AllenCahnProblem, make_run, plain_step

from pinnlog.recorder import Recorder, every


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(device, fn):
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


class TensorCensus(TorchDispatchMode):
    """Live and peak bytes of the tensor storages created while the mode is active (on ``device``)."""

    def __init__(self, device_type: str):
        super().__init__()
        self.device_type, self.live, self.peak = device_type, 0, 0
        self._seen: dict[int, int] = {}
        self._lock = threading.Lock()

    def _freed(self, key: int, nbytes: int) -> None:
        with self._lock:
            self.live -= nbytes
            self._seen.pop(key, None)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.device.type == self.device_type:
                storage = t.untyped_storage()
                key = storage.data_ptr()
                if key and key not in self._seen:
                    with self._lock:
                        self._seen[key] = storage.nbytes()
                        self.live += storage.nbytes()
                        self.peak = max(self.peak, self.live)
                    weakref.finalize(storage, self._freed, key, storage.nbytes())
        return out


def capture_ratio(args, problem, tmp: Path) -> dict:
    """(a): interleaved repeats of a plain step, a capture, a capture with shared_loss, a bare gradient."""
    model, optimizer = make_run(args.device)
    params = list(model.parameters())
    recs = {}
    for engine in args.engines:
        vectorised = engine == "vectorised"
        recs[f"capture/{engine}"] = Recorder(
            tmp / f"a-{engine}.zarr",
            model,
            optimizer,
            problem.batch_loss,
            problem.n_batches,
            schedule=every(1),
            batch_losses=problem.batch_losses if vectorised else None,
        )
        recs[f"capture_shared/{engine}"] = _paper_recorder(tmp / f"b-{engine}.zarr", model, optimizer, problem, every(1), engine)
    plain_step(model, optimizer, problem)  # warm-up (and Adam state for the reductions)
    for rec in recs.values():  # warm-up capture: the vectorised engine's self-check against the loop runs here
        rec.step(0)
        rec.flush()

    def bare_loop():  # the reference: K autograd.grad calls with float32 running sums
        total = [torch.zeros_like(p) for p in params]
        total_sq = [torch.zeros_like(p) for p in params]
        for b in range(problem.n_batches):
            for g, s, s2 in zip(torch.autograd.grad(problem.batch_loss(model, b), params), total, total_sq):
                s.add_(g)
                s2.addcmul_(g, g)

    times = {"plain": [], **{name: [] for name in recs}, "full_gradient": [], "bare_loop": []}
    for r in range(1, args.repeats + 1):
        times["plain"].append(_timed(args.device, lambda: plain_step(model, optimizer, problem)))
        for name, rec in recs.items():
            times[name].append(_timed(args.device, lambda rec=rec, r=r: rec.step(r)))
            rec.flush()  # the writer's share is timed in (b); keep it off the next measurement
        times["full_gradient"].append(_timed(args.device, lambda: torch.autograd.grad(problem.full_loss(model), params)))
        times["bare_loop"].append(_timed(args.device, bare_loop))
    for name, rec in recs.items():
        rec.close()
        used = set(rec._engine.history)
        if used != {name.split("/")[1]}:
            print(f"    NOTE: {name} used {sorted(used)}: {rec._engine.reason}")
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"(a) median of {args.repeats}: plain step {med['plain']:.4f} s, one full-batch gradient {med['full_gradient']:.4f} s, "
        f"bare loop of K autograd.grad {med['bare_loop']:.4f} s"
    )
    for engine in args.engines:
        capture, shared = med[f"capture/{engine}"], med[f"capture_shared/{engine}"]
        print(f"    [{engine}] capture {capture:.4f} s, with shared_loss {shared:.4f} s")
        print(f"    [{engine}] capture / plain step              = {capture / med['plain']:.2f}   (CPU: no regression)")
        print(f"    [{engine}] capture (shared_loss) / plain     = {shared / med['plain']:.2f}")
    print(f"    floor: full-batch gradient / plain = {med['full_gradient'] / med['plain']:.2f}")
    print(f"    bare K-gradient loop / plain       = {med['bare_loop'] / med['plain']:.2f}")
    return med


def _paper_recorder(path: Path, model, optimizer, problem, schedule, engine: str, overlap: bool = False, **options) -> Recorder:
    """The paper's recording (residual batch losses, the IC loss shared) on ``schedule``, with the batched
    residual losses the vectorised engine needs when ``engine`` is "vectorised"; ``options``: more Recorder keywords."""
    return Recorder(
        path,
        model,
        optimizer,
        problem.residual_loss,
        problem.n_batches,
        schedule=schedule,
        shared_loss=problem.ic_loss,
        batch_losses=problem.residual_losses if engine == "vectorised" else None,
        overlap=overlap,
        **options,
    )


# (b)'s schedules: the issue's every(100), and the paper's cadence (every 2 steps up to 300, then every 100)
CADENCES = {"every100": every(100), "paper": every(2, stop=300) | every(100, start=300)}
CADENCE_TARGETS = {"every100": 1.03, "paper": 1.10}


def whole_run_ratio(args, problem, tmp: Path) -> None:
    """(b) and (c): two identical runs, plain and recorded, advanced in turn one block of steps at a time.

    Blocks of one step (the default) make the load of a shared machine fall on both runs alike. With
    ``--overlap`` a capture runs on in the background while the plain run's next block is timed, so each
    recorded block (``--block`` steps, default 50) ends with ``rec.flush()``: a capture is charged to the
    recorded block that started it.
    """
    plain_model, plain_opt = make_run(args.device)
    model, optimizer = make_run(args.device)
    engine = args.engines[-1]
    schedule = CADENCES[args.cadence]
    rec = _paper_recorder(tmp / "run.zarr", model, optimizer, problem, schedule, engine, overlap=args.overlap)
    block = args.block or (50 if args.overlap else 1)
    t_plain = t_rec = 0.0
    step_calls: list[float] = []

    def plain_block(steps: range) -> None:
        for _ in steps:
            plain_step(plain_model, plain_opt, problem)

    def recorded_block(steps: range) -> None:
        for step in steps:
            loss = plain_step(model, optimizer, problem)
            c0 = time.perf_counter()
            rec.step(step, loss=loss)
            if not schedule(step):
                step_calls.append(time.perf_counter() - c0)
        if args.overlap:
            rec.flush()
        if steps[-1] == args.steps - 1:
            rec.close()

    for first in range(0, args.steps, block):
        steps = range(first, min(first + block, args.steps))
        t_plain += _timed(args.device, functools.partial(plain_block, steps))
        t_rec += _timed(args.device, functools.partial(recorded_block, steps))
    identical = all(torch.equal(a, b) for a, b in zip(plain_model.parameters(), model.parameters()))
    print(
        f"(b) [{engine}{', overlap' if args.overlap else ''}, blocks of {block}, engines used {sorted(set(rec._engine.history))}] {args.steps} steps, "
        f"schedule={schedule!r} ({len(rec._engine.history)} captures), shared_loss: plain {t_plain:.1f} s, recorded {t_rec:.1f} s "
        f"(incl. close), ratio {t_rec / t_plain:.3f}   (target <= {CADENCE_TARGETS[args.cadence]}); final weights bitwise identical: {identical}"
    )
    mean_call, mean_plain = statistics.fmean(step_calls), t_plain / args.steps
    print(
        f"(c) rec.step on a non-capture step: {mean_call * 1e6:.1f} us = {100 * mean_call / mean_plain:.4f} % "
        f"of a plain step ({mean_plain:.3f} s)   (target < 1 %)"
    )


def peak_extra_memory(args, problem, tmp: Path) -> None:
    """(d): live tensor bytes at the peak of a capture, above those of one batch gradient alone."""
    model, optimizer = make_run(args.device)
    params = list(model.parameters())
    plain_step(model, optimizer, problem)
    n_params, k = sum(p.numel() for p in params), problem.n_batches
    device_type = torch.device(args.device).type

    def census(fn) -> tuple[int, int]:
        if device_type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        mode = TensorCensus(device_type)
        with mode:
            fn()
        cuda_peak = 0
        if device_type == "cuda":
            torch.cuda.synchronize()
            cuda_peak = torch.cuda.max_memory_allocated() - base
        return mode.peak, cuda_peak

    one_batch = census(lambda: torch.autograd.grad(problem.batch_loss(model, 0), params))
    train = census(lambda: plain_step(model, optimizer, problem))
    engine = args.engines[-1]
    losses = problem.batch_losses if engine == "vectorised" else None
    rec = Recorder(tmp / "m1.zarr", model, optimizer, problem.batch_loss, k, schedule=every(1), batch_losses=losses)
    rec.step(0)  # the first capture carries the vectorised engine's self-check; (d) measures the captures after it
    grads = census(lambda: (rec.step(1), rec.flush()))
    rec.close()
    rec = Recorder(
        tmp / "m2.zarr", model, optimizer, problem.batch_loss, k, schedule=every(1), raw_schedule=every(1), batch_losses=losses
    )
    rec.step(0)
    rec.flush()
    raw = census(lambda: (rec.step(1), rec.step(2), rec.flush()))
    rec.close()
    mib = 2**20
    print(f"(d) [{engine}]")
    print(
        f"    P = {n_params}, K = {k}. Peak live tensor bytes: one batch gradient {one_batch[0] / mib:.1f} MiB, "
        f"plain training step {train[0] / mib:.1f} MiB"
    )
    for label, peak, target in (
        ("no raw snapshots", grads, 4 * n_params * 4),
        ("raw snapshots, two in a row", raw, 2 * k * n_params * 4),
    ):
        extra = peak[0] - one_batch[0]
        line = (
            f"    {label}: capture peak {peak[0] / mib:.2f} MiB, extra {extra:,} B = {extra / target:.3f} x target "
            f"({target:,} B); above the training step's own peak: {max(0, peak[0] - train[0]) / mib:.2f} MiB"
        )
        if device_type == "cuda":
            line += f"; CUDA allocator: extra {(peak[1] - one_batch[1]) / mib:.2f} MiB"
        print(line)


def in_place_ratio(args) -> None:
    """(e): blocks of steps with one capture each, recorded (synchronous, overlapped) against plain, interleaved."""
    import os

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout: benchmarks.pinns
    from benchmarks.pinns.configs import make_config, make_problem
    from benchmarks.pinns.trainer import PINNTrainer

    every_n, blocks = args.inplace_every, args.inplace_blocks
    config = make_config("allen_cahn", args.inplace_config, steps=every_n * (blocks + 1))
    variants = {"plain": None, "synchronous": False, "overlap": True}
    trainers, recs = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, overlap in variants.items():
            trainer = PINNTrainer(make_problem("allen_cahn", args.inplace_config), config, rba=False, device=args.device, seed=0)
            trainers[name] = trainer
            if overlap is not None:
                recs[name] = Recorder(
                    Path(tmp) / f"{name}.zarr",
                    trainer.model,
                    trainer.optimizer,
                    trainer.batch_loss,
                    config.n_batches,
                    shared_loss=trainer.shared_loss,
                    batch_losses=trainer.batch_losses,
                    schedule=every(every_n),
                    overlap=overlap,
                )
        times: dict[str, list[float]] = {name: [] for name in variants}
        cpu: dict[str, list[float]] = {name: [] for name in variants}

        def block(name: str, first: int) -> tuple[float, float]:
            trainer, rec = trainers[name], recs.get(name)
            _sync(args.device)
            t0, c0 = time.perf_counter(), time.process_time()
            for step in range(first, first + every_n):
                scalars = trainer.train_step()
                if rec is not None:
                    rec.step(step, **scalars)
            if rec is not None:
                rec.flush()  # the writer's share and an overlapped capture end inside the block
            _sync(args.device)
            return time.perf_counter() - t0, time.process_time() - c0

        load = os.getloadavg()[0]
        order = list(variants)
        for b in range(blocks + 1):  # block 0: warm-up, with the self-check (and overlap's first, synchronous capture)
            for name in order[b % 3 :] + order[: b % 3]:  # rotate who runs first
                wall, cpu_s = block(name, b * every_n)
                if b:
                    times[name].append(wall)
                    cpu[name].append(cpu_s)
        ref = list(trainers["plain"].model.parameters())
        identical = {
            name: all(torch.equal(a, b) for a, b in zip(ref, trainers[name].model.parameters())) for name in recs
        }  # before the breakdown trains the synchronous run further
        n_captures = {name: len(rec._engine.history) for name, rec in recs.items()}
        breakdown = _capture_breakdown(trainers["synchronous"], recs["synchronous"], (blocks + 1) * every_n)
        for rec in recs.values():
            rec.close()
    plain, plain_cpu = statistics.median(times["plain"]), statistics.median(cpu["plain"])
    print(
        f"(e) in place, {args.inplace_config} Allen-Cahn (K = {config.n_batches}, {config.n_collocation} points), {blocks} blocks of "
        f"{every_n} steps with one capture each; plain block: median {plain:.3f} s wall ({1e3 * plain / every_n:.1f} ms/step), "
        f"{plain_cpu:.3f} s CPU; load {load:.1f} -> {os.getloadavg()[0]:.1f}"
    )
    for name in ("synchronous", "overlap"):
        # paired: each recorded block against the plain block of the same round (adjacent in time, same load)
        extra = statistics.median(r - p for r, p in zip(times[name], times["plain"]))
        extra_cpu = statistics.median(r - p for r, p in zip(cpu[name], cpu["plain"]))
        print(
            f"    [{name}] a step with a capture / a step without, in place = {1 + extra / (plain / every_n):.2f} wall "
            f"(target <= 1.6), {1 + extra_cpu / (plain_cpu / every_n):.2f} in CPU time (all threads); block "
            f"{(plain + extra) / plain:.3f} x plain; {n_captures[name]} captures; weights bitwise identical: {identical[name]}"
            + (f"; overlap off: {recs[name]._overlap_reason}" if recs[name]._overlap_reason else "")
        )
    step_cpu = breakdown["plain step"]
    print("    where a synchronous capture's CPU goes (medians of 10, ms of CPU, / a plain step's):")
    for part, ms in breakdown.items():
        print(f"      {part:58s} {1e3 * ms:7.1f} ms  {ms / step_cpu:5.2f}")


def _capture_breakdown(trainer, rec, first_step: int, repeats: int = 10) -> dict[str, float]:
    """CPU seconds of a plain step and of the parts of one capture, measured one after the other (not in place).

    The training thread's parts with ``time.thread_time`` (torch runs them on it, one intra-op thread); the
    writer's with ``time.process_time`` over ``flush()`` minus the training thread's share.
    """
    engine = rec._engine
    parts: dict[str, list[float]] = {
        "plain step": [],
        "K batch gradients + shared gradient + reductions (engine)": [],
        "rest of rec.step (Adam moments, weights, bookkeeping)": [],
        "writer thread (gradient_stats row, scalars)": [],
    }
    capture = engine.capture
    inside: list[float] = []

    def timed_capture(*a, **k):
        t0 = time.thread_time()
        try:
            return capture(*a, **k)
        finally:
            inside.append(time.thread_time() - t0)

    engine.capture = timed_capture
    try:
        step = first_step
        for _ in range(repeats):
            rec.flush()
            t0 = time.thread_time()
            scalars = trainer.train_step()
            parts["plain step"].append(time.thread_time() - t0)
            while not rec._schedule(step):
                step += 1
            p0, t0 = time.process_time(), time.thread_time()
            rec.step(step, **scalars)
            main = time.thread_time() - t0
            rec.flush()
            total = time.process_time() - p0
            parts["K batch gradients + shared gradient + reductions (engine)"].append(inside[-1])
            parts["rest of rec.step (Adam moments, weights, bookkeeping)"].append(main - inside[-1])
            parts["writer thread (gradient_stats row, scalars)"].append(max(0.0, total - main))
            step += 1
    finally:
        engine.capture = capture
    return {part: statistics.median(v) for part, v in parts.items()}


def build_parser() -> argparse.ArgumentParser:
    """The command line this script accepts (tests/test_docs.py parses the documented commands with it)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3000, help="steps of the whole-run comparison (b)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats of (a)")
    parser.add_argument("--quick", action="store_true", help="200 steps and 3 repeats")
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="smoke size for tests: the paper's network on K = 8 batches of 32 points, 2 repeats, (b) 20 steps, (e) 2 blocks of 4",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: a,b,d,e")
    parser.add_argument("--cadence", choices=tuple(CADENCES), default="every100", help="(b): every(100), or the paper's cadence")
    parser.add_argument("--overlap", action="store_true", help="(b): Recorder(overlap=True), captures in the background")
    parser.add_argument("--block", type=int, default=None, help="(b): steps per alternating block (default 1; 50 with --overlap)")
    parser.add_argument("--inplace-every", type=int, default=10, help="(e): steps per block, one capture each")
    parser.add_argument("--inplace-blocks", type=int, default=16, help="(e): timed blocks per variant")
    parser.add_argument(
        "--inplace-config",
        choices=("cpu-small", "paper"),
        default="cpu-small",
        help="(e): benchmarks/pinns configuration trained in place (paper: [128] x 6, 25,600 points, K = 100)",
    )
    parser.add_argument(
        "--engine",
        choices=("both", "loop", "vectorised"),
        default="both",
        help="gradient engine(s): (a) measures each; (b) and (d) the vectorised one when both",
    )
    return parser


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.steps, args.repeats = 200, 3
    if args.tiny:  # every part runs, in seconds (benchmarks/device_check.py --quick runs the GPU check's steps so)
        args.steps, args.repeats, args.inplace_blocks, args.inplace_every = 20, 2, 2, 4
    args.engines = ["loop", "vectorised"] if args.engine == "both" else [args.engine]
    if args.threads:
        torch.set_num_threads(args.threads)
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"cpu, {torch.get_num_threads()} threads"
    print(f"recorder_overhead: torch {torch.__version__}, {device_name}; {' '.join(sys.argv[1:]) or '(defaults)'}")
    problem = AllenCahnProblem(device=args.device, **(dict(n_batches=8, batch_size=32) if args.tiny else {}))
    skip = set(args.skip.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        if "a" not in skip:
            capture_ratio(args, problem, Path(tmp))
        if "b" not in skip:
            whole_run_ratio(args, problem, Path(tmp))
        if "d" not in skip:
            peak_extra_memory(args, problem, Path(tmp))
    if "e" not in skip:
        in_place_ratio(args)


if __name__ == "__main__":
    main()
