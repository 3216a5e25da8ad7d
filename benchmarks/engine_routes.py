"""Which way of computing the K batch gradients of the paper's PINN is fastest: the routes compared.

    python benchmarks/engine_routes.py --threads 1            # the paper's size, CPU
    python benchmarks/engine_routes.py --device cuda          # on a GPU (adds the CUDA-graph route)
    python benchmarks/engine_routes.py --quick                # K = 8 batches of 32 points, 2 repeats

Set-up (benchmarks/paper_problem.py): MLP [2] + [128] x 6 + [1] tanh, K = 100 batches of 256 collocation
points, the residual loss u_t - 1e-4 u_xx + 5u^3 - 5u (second input derivatives). Every route returns
the K x P matrix of batch gradients at the same weights; each is timed (median of the interleaved
repeats) against one plain full-batch training step, and its rows are compared with the loop's
(max over batches of ||g_route - g_loop|| / ||g_loop||). Routes:

loop            K calls of batch_loss + torch.autograd.grad (the recorder's loop engine)
stacked         parameters stacked K times, torch.func.vmap of functional_call over (parameters, (K, n, 2)
                points), input derivatives by torch.autograd.grad outside the vmap, one backward
                (the recorder's vectorised engine, engines.vectorised_rows); also in chunks of 25
func            torch.func.vmap(torch.func.grad(loss)) over batches, the input derivatives written in
                torch.func (jacrev, jacfwd(jacrev)) per point
cuda-graph      the loop captured once in a CUDA graph and replayed (CUDA only)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.func import functional_call, grad, jacfwd, jacrev, vmap

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paper_problem import AllenCahnProblem, make_run, plain_step

from pinnlog.recorder.captures import build_layout
from pinnlog.recorder.engines import _loop_rows, vectorised_rows


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def func_route(model, problem, layout):
    """torch.func throughout: per-point derivatives with jacrev / jacfwd(jacrev), vmap(grad) over batches."""
    names = [t["name"] for t in layout.tensors]
    params = {n: p.detach() for n, p in zip(names, layout.params)}

    def u(p, pt):
        return functional_call(model, p, (pt.unsqueeze(0),)).squeeze()

    def residual(p, pt):
        value = u(p, pt)
        du = jacrev(u, argnums=1)(p, pt)
        u_xx = jacfwd(jacrev(u, argnums=1), argnums=1)(p, pt)[0, 0]  # points are (x, t)
        return du[1] - 1e-4 * u_xx + 5 * value**3 - 5 * value

    def loss(p, pts):
        return (vmap(residual, in_dims=(None, 0))(p, pts) ** 2).mean()

    grads = vmap(grad(loss), in_dims=(None, 0))(params, problem.batches)
    k = problem.n_batches
    return torch.cat([grads[n].reshape(k, -1) for n in names], dim=1)


def cuda_graph_route(model, problem, layout):
    """The loop, captured once in a CUDA graph; returns a function that replays it into a static K x P buffer."""
    static = torch.empty((problem.n_batches, layout.n_params), device=problem.points.device)

    def loop():
        static.copy_(_loop_rows(model, layout, problem.residual_loss, 0, problem.n_batches))

    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(2):  # warm-up on a side stream, as torch.cuda.graph asks
            loop()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        loop()

    def replay():
        graph.replay()
        return static

    return replay


def build_parser() -> argparse.ArgumentParser:
    """The command line this script accepts (tests/test_docs.py parses the documented commands with it)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--quick", action="store_true", help="K = 8 batches of 32 points, 2 repeats")
    parser.add_argument("--skip", default="", help="comma-separated routes to skip, e.g. func")
    return parser


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = dict(n_batches=8, batch_size=32) if args.quick else {}
    if args.quick:
        args.repeats = 2
    problem = AllenCahnProblem(device=args.device, **sizes)
    model, optimizer = make_run(args.device)
    plain_step(model, optimizer, problem)
    layout = build_layout(model)
    k = problem.n_batches
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"cpu, {torch.get_num_threads()} threads"
    print(f"engine_routes: torch {torch.__version__}, {device_name}; K = {k}, P = {layout.n_params}")

    def plain():  # a full-batch step's work without moving the weights: forward, backward, no optimizer step
        torch.autograd.grad(problem.full_loss(model), layout.params)

    routes = {
        "loop": lambda: _loop_rows(model, layout, problem.residual_loss, 0, k),
        "stacked": lambda: vectorised_rows(model, layout, problem.residual_losses, 0, k),
        "stacked, chunks of 25": lambda: torch.cat(
            [vectorised_rows(model, layout, problem.residual_losses, s, min(s + 25, k)) for s in range(0, k, 25)]
        ),
        "func": lambda: func_route(model, problem, layout),
    }
    if args.device.startswith("cuda"):
        try:
            routes["cuda-graph"] = cuda_graph_route(model, problem, layout)
        except Exception as error:  # report, do not hide: the route is then "failed"
            print(f"    cuda-graph: capture failed: {type(error).__name__}: {str(error).splitlines()[0][:200]}")
    for name in [r for r in args.skip.split(",") if r]:
        routes.pop(name, None)
    reference = routes["loop"]().detach().double()
    errors = dict.fromkeys(routes, 0.0)
    for name, route in routes.items():
        rows = route().detach().double()
        errors[name] = ((rows - reference).norm(dim=1) / reference.norm(dim=1)).max().item()
    times: dict[str, list[float]] = {name: [] for name in ["plain step (gradient)", *routes]}
    for _ in range(args.repeats):
        for name, fn in [("plain step (gradient)", plain), *routes.items()]:
            _sync(args.device)
            t0 = time.perf_counter()
            fn()
            _sync(args.device)
            times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["plain step (gradient)"])
    print(f"median of {args.repeats}; ratio = route / one full-batch gradient ({base * 1e3:.1f} ms)")
    for name, values in times.items():
        med = statistics.median(values)
        error = f"   max row rel. diff vs loop {errors[name]:.1e}" if name in errors else ""
        print(f"    {name:24s} {med * 1e3:9.1f} ms   ratio {med / base:6.2f}{error}")
    if torch.device(args.device).type == "cuda":
        print(f"    CUDA peak allocated: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
