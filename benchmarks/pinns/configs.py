"""The named set-ups: ``paper`` (Appendix B, for a GPU) and ``cpu-small`` (minutes on a 2-core CPU).

``paper`` follows the authors: [2] + [128]×6 + [out] tanh MLP, 25,600 Latin-hypercube collocation points in
K = 100 fixed batches of 256, Adam (lr 1e-3, ×0.9 every 5,000 steps), 300,000 steps (Burgers: 10,000 points
and 100,000 steps), gradient statistics on the authors' cadence ``every(2, stop=300) | every(100, start=300)``.
``cpu-small`` keeps the schedule and shrinks the rest: [2] + [64]×4 + [out], 2,048 points in K = 16
batches of 128, 8,000 steps, lr ×0.9 every 2,000 steps.
``cpu-helmholtz`` (Helmholtz only) is the sample pair in ``sample_logs/``: the ``cpu-small`` network and
points on an easier Helmholtz problem (a₁ = 1, a₂ = 4 instead of 6, 6), 10,000 steps, residuals with the RBA
weights every 100 steps, so that on a 2-core CPU a run goes through fitting → diffusion → total diffusion
(docs/reproduction.md).
"""

from __future__ import annotations

import dataclasses

from benchmarks.pinns.allen_cahn import AllenCahn
from benchmarks.pinns.burgers import Burgers
from benchmarks.pinns.cavity import Cavity
from benchmarks.pinns.helmholtz import Helmholtz
from benchmarks.pinns.trainer import PINNProblem, TrainingConfig
from pinnlog.recorder.schedules import every, logspaced
from pinnlog.recorder.schedules import steps as steps_at

__all__ = ["CONFIG_NAMES", "PROBLEMS", "make_config", "make_problem"]

PROBLEMS = {"allen_cahn": AllenCahn, "helmholtz": Helmholtz, "burgers": Burgers, "cavity": Cavity}
CONFIG_NAMES = ("paper", "cpu-small", "cpu-helmholtz")

# problem parameters a config fixes, per benchmark; a config absent here runs the paper's problems
CONFIG_PROBLEMS = {"cpu-helmholtz": {"helmholtz": {"a1": 1.0, "a2": 4.0}}}

PAPER_SCHEDULE = every(2, stop=300) | every(100, start=300)


def make_problem(name: str, config: str = "cpu-small", *, reynolds: float | None = None) -> PINNProblem:
    """The benchmark ``name`` (a key of ``PROBLEMS``) as ``config`` sets it up; ``reynolds`` applies to the
    cavity only."""
    if name not in PROBLEMS:
        raise ValueError(f"unknown benchmark {name!r}; choose one of {', '.join(PROBLEMS)}")
    if config in CONFIG_PROBLEMS and name not in CONFIG_PROBLEMS[config]:
        raise ValueError(f"config {config!r} is for {', '.join(CONFIG_PROBLEMS[config])} only, not {name}")
    if reynolds is not None:
        if name != "cavity":
            raise ValueError(f"--reynolds applies to the cavity only, not to {name}")
        return Cavity(reynolds=reynolds)
    return PROBLEMS[name](**CONFIG_PROBLEMS.get(config, {}).get(name, {}))


def _paper(name: str, steps: int | None) -> TrainingConfig:
    default_steps, n_points = (100_000, 10_000) if name == "burgers" else (300_000, 25_600)
    steps = steps or default_steps
    return TrainingConfig(
        config_name="paper",
        hidden=(128,) * 6,
        n_collocation=n_points,
        n_batches=100,
        n_boundary=512,
        steps=steps,
        test_every=100,
        test_size="paper",
        n_probe=1_024,
        schedule=PAPER_SCHEDULE,
        raw_schedule=logspaced(max(steps - 1, 1), 12),
        residual_schedule=every(1_000),
        probe_schedule=logspaced(max(steps - 1, 1), 200),
    )


def _cpu_small(name: str, steps: int | None) -> TrainingConfig:
    steps = steps or 8_000
    return TrainingConfig(
        config_name="cpu-small",
        hidden=(64,) * 4,
        n_collocation=2_048,
        n_batches=16,
        n_boundary=256,
        steps=steps,
        lr_decay_every=2_000,
        test_every=50,
        test_size="small",
        n_probe=256,
        schedule=PAPER_SCHEDULE,
        raw_schedule=steps_at(sorted({0, min(200, steps - 1), min(2_000, steps - 1), steps // 2, steps - 1})),
        residual_schedule=every(200),
        probe_schedule=logspaced(max(steps - 1, 1), 20),
    )


def _cpu_helmholtz(name: str, steps: int | None) -> TrainingConfig:
    """cpu-small for 10,000 steps with residuals every 100 (the Helmholtz sample pair)."""
    return dataclasses.replace(_cpu_small(name, steps or 10_000), config_name="cpu-helmholtz", residual_schedule=every(100))


_MAKERS = {"paper": _paper, "cpu-small": _cpu_small, "cpu-helmholtz": _cpu_helmholtz}


def make_config(name: str, config: str = "cpu-small", *, steps: int | None = None) -> TrainingConfig:
    """The ``config`` set-up of benchmark ``name``; ``steps`` overrides the length (the log-spaced raw and
    probe schedules are spread over the run's length, so they end at its last step)."""
    if config not in CONFIG_NAMES:
        raise ValueError(f"unknown config {config!r}; choose one of {', '.join(CONFIG_NAMES)}")
    if config in CONFIG_PROBLEMS and name not in CONFIG_PROBLEMS[config]:
        raise ValueError(f"config {config!r} is for {', '.join(CONFIG_PROBLEMS[config])} only, not {name}")
    return _MAKERS[config](name, None if steps is None else int(steps))
