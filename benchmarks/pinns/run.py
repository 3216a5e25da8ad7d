"""Train one of the paper's PINN benchmarks, vanilla or RBA, and record it with pinnlog.

    python -m benchmarks.pinns.run allen_cahn --rba --steps 6000 --out runs/ac_rba.zarr
    python -m benchmarks.pinns.run cavity --config paper --device cuda --out runs/cv_rba.zarr --rba

Run from the repository root (``benchmarks`` is not installed). Without ``--out`` it trains without
recording (the test error is still printed).
"""

from __future__ import annotations

import time
from enum import Enum, StrEnum
from pathlib import Path
from typing import Annotated

import torch
import typer
import xarray as xr
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from benchmarks.pinns.configs import PROBLEMS, make_config, make_problem
from benchmarks.pinns.trainer import PINNTrainer
from pinnlog.analyzer.errors import PinnlogError
from pinnlog.analyzer.metrics import steps_to_error

Benchmark = Enum("Benchmark", {name: name for name in PROBLEMS}, type=str)


class GradientEngine(StrEnum):
    auto = "auto"
    loop = "loop"
    vectorised = "vectorised"


class ConfigName(StrEnum):
    paper = "paper"
    cpu_small = "cpu-small"
    cpu_helmholtz = "cpu-helmholtz"


console = Console(stderr=True)
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    benchmark: Annotated[Benchmark, typer.Argument(help="Which PDE: allen_cahn, helmholtz, burgers or cavity.")],
    rba: Annotated[bool, typer.Option("--rba/--vanilla", help="Weight the PDE residuals with RBA (Eq. 27-28).")] = False,
    steps: Annotated[int | None, typer.Option(min=1, help="Training steps (default: the config's).")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Run store to record into (a *.zarr directory); omit to train unrecorded.")
    ] = None,
    device: Annotated[str, typer.Option(help="torch device: cpu, cuda, cuda:1, ...")] = "cpu",
    config: Annotated[
        ConfigName,
        typer.Option(help="paper: the full set-up (GPU); cpu-small: minutes on a laptop; cpu-helmholtz: the sample pair."),
    ] = ConfigName.cpu_small,
    seed: Annotated[int, typer.Option(help="Seed of the collocation points and the initial weights.")] = 0,
    reynolds: Annotated[
        float | None, typer.Option(help="Cavity only: Reynolds number (default 1000; 100 is the Ghia-checked case).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing store at --out.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads for torch (1 is fastest on a busy machine).")] = None,
    engine: Annotated[
        GradientEngine, typer.Option(help="Gradient engine of the captures: auto (vectorised for allen_cahn), loop, vectorised.")
    ] = GradientEngine.auto,
    overlap: Annotated[
        bool,
        typer.Option(help="Vanilla runs: gradient captures in a background thread while training goes on (same numbers)."),
    ] = False,
) -> None:
    """Train one benchmark PINN the way the paper does and record its gradient statistics.

    Prints the final test error (relative L2, Eq. 7), the first step at which it reached 10 %, and the
    wall time. The store holds gradient statistics on the paper's schedule, a few raw snapshots,
    residuals (with RBA weights) and activations on a probe set of collocation points.
    """
    name = benchmark.value
    try:
        problem = make_problem(name, config.value, reynolds=reynolds)
        cfg = make_config(name, config.value, steps=steps)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if overlap and rba:
        raise typer.BadParameter("--overlap needs --vanilla: RBA updates its weights λ in place at every step")
    if out is not None and out.exists() and not overwrite:
        raise typer.BadParameter(f"{out} already exists; pass --overwrite or choose another --out")
    if threads is not None:
        torch.set_num_threads(threads)
    kind = "RBA" if rba else "vanilla"
    console.print(f"{name} ({kind}), config {config.value}, {cfg.steps} steps, seed {seed}, {device}")
    trainer = PINNTrainer(problem, cfg, rba=rba, device=device, seed=seed)
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.3e}  L2 {task.fields[l2]:.4f}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    start = time.perf_counter()
    with Progress(*columns, console=console, disable=not progress) as bar:
        task = bar.add_task("training", total=cfg.steps, loss=float("nan"), l2=float("nan"))

        def on_step(step: int, scalars: dict) -> None:
            fields = {"loss": scalars["loss"]}
            if "test_error" in scalars:
                fields["l2"] = scalars["test_error"]
            bar.update(task, advance=1, **fields)

        try:
            history = trainer.train(out=out, overwrite=overwrite, on_step=on_step, engine=engine.value, overlap=overlap)
        except PinnlogError as exc:  # a user mistake reported by the recorder: one line, exit 2
            console.print(f"error: {exc}", markup=False, highlight=False)
            raise typer.Exit(2) from None
    wall = time.perf_counter() - start
    curve = xr.DataArray(history["test_error"], coords={"step": history["step"]}, dims="step")
    reached = steps_to_error(curve, 0.1)
    console.print(
        f"final L2 {history['test_error'][-1]:.4f}, best {min(history['test_error']):.4f}, "
        f"10% reached at step {reached if reached is not None else 'never'}, wall time {wall:.0f} s"
        + (f", store {out}" if out is not None else "")
    )


def parse_args(argv: list[str]) -> dict:
    """The parameters ``main`` would get from the command line ``argv`` (click's parser; a mistake raises click.UsageError)."""
    command = typer.main.get_command(app)
    with command.make_context("python -m benchmarks.pinns.run", list(argv)) as context:
        return dict(context.params)


if __name__ == "__main__":
    app()  # typer's standalone mode: a bad option prints usage and exits 2
