"""Train a PINN the way the paper does, optionally recording it with pinnlog.

The set-up of §3 and Appendix B: an MLP of tanh layers with Xavier-normal weights, Adam with a step
decay of the learning rate, full-batch training on a fixed collocation set; for the recorder that set is
split into K fixed batches and the full boundary/initial loss is added to every batch (passed as the
recorder's ``shared_loss``, so its gradient is computed once per capture). With RBA (Eq. 27-28) each
collocation point carries a weight λ ← γλ + η|r|/max|r| (γ = 0.999, η = 0.001, λ₀ = 0), updated once per
training step from the current residuals (detached), that multiplies its PDE residual in the loss.

The trainer runs without the recorder (``out=None``), so it needs only torch and numpy.
"""

from __future__ import annotations

import contextlib
import itertools
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import qmc
from torch import nn

from pinnlog.recorder.schedules import Schedule, every, logspaced

__all__ = ["MLP", "PINNProblem", "PINNTrainer", "TrainingConfig", "gradient", "relative_l2"]


def gradient(outputs: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """d(outputs)/d(inputs) for pointwise outputs, keeping the graph for higher derivatives and the loss."""
    return torch.autograd.grad(outputs, inputs, torch.ones_like(outputs), create_graph=True)[0]


def relative_l2(prediction: np.ndarray, exact: np.ndarray) -> float:
    """‖f − u‖₂ / ‖u‖₂ over the test grid (Eq. 7); vector fields are compared as flattened arrays."""
    prediction, exact = np.asarray(prediction, dtype=np.float64), np.asarray(exact, dtype=np.float64)
    return float(np.linalg.norm(prediction - exact) / np.linalg.norm(exact))


class MLP(nn.Module):
    """Fully connected tanh network named like the authors' (``layers.layer_i``, ``layers.activation_i``).

    Weights are Xavier-normal (the paper); biases keep PyTorch's default U(−1/√fan_in, 1/√fan_in), as in
    the authors' code. Zero biases put every first-layer hyperplane through the origin, and the
    paper-size Allen–Cahn network then collapsed to a trivial state (docs/reproduction.md).
    """

    def __init__(self, widths: Sequence[int]):
        super().__init__()
        if len(widths) < 2:
            raise ValueError(f"an MLP needs at least input and output widths, got {list(widths)}")
        modules: list[tuple[str, nn.Module]] = []
        for i, (fan_in, fan_out) in enumerate(itertools.pairwise(widths)):
            linear = nn.Linear(fan_in, fan_out)
            nn.init.xavier_normal_(linear.weight)
            modules.append((f"layer_{i}", linear))
            if i < len(widths) - 2:
                modules.append((f"activation_{i}", nn.Tanh()))
        self.layers = nn.Sequential(OrderedDict(modules))
        self.widths = tuple(int(w) for w in widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class PINNProblem(ABC):
    """A PDE benchmark: domain, residual, boundary/initial loss and reference solution.

    Subclasses set ``name``, ``input_dim``, ``output_dim``, ``lower`` and ``upper`` (the box the
    collocation points are drawn from) and implement the abstract methods. Inputs are ``(n, input_dim)``
    float tensors; the model maps them to ``(n, output_dim)``.
    """

    name: str = "pde"
    input_dim: int = 2
    output_dim: int = 1
    lower: tuple[float, ...] = (-1.0, 0.0)
    upper: tuple[float, ...] = (1.0, 1.0)
    #: ``residual`` also works on stacked ``(k, n, input_dim)`` inputs (it indexes with ``...``), so the
    #: trainer can hand the recorder ``batch_losses`` and captures use the vectorised engine.
    stacked_residual: bool = False

    def sample_collocation(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` Latin-hypercube points in the box (the authors' sampling)."""
        unit = qmc.LatinHypercube(d=self.input_dim, seed=rng).random(n)
        return qmc.scale(unit, self.lower, self.upper)

    @abstractmethod
    def residual(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """PDE residuals at ``x``, shape ``(n, n_equations)``, differentiable in the model's parameters."""

    @abstractmethod
    def boundary_data(self, n_boundary: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Fixed boundary/initial points (and targets) for ``boundary_loss``; drawn once per run."""

    @abstractmethod
    def boundary_loss(self, model: nn.Module, data: dict[str, torch.Tensor]) -> torch.Tensor:
        """The batch-independent loss terms (initial and boundary conditions), a scalar."""

    @abstractmethod
    def test_set(self, size: str) -> tuple[np.ndarray, np.ndarray]:
        """``(inputs (m, input_dim), exact (m, ...))`` on the fixed test grid; ``size`` is "paper" or "small"."""

    def prediction(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """The quantity compared with ``exact`` (default: the first output)."""
        return model(x)[:, 0]

    def describe(self) -> dict[str, Any]:
        """Problem parameters written into the run's ``config``."""
        return {"pde": self.name}


@dataclass(frozen=True)
class TrainingConfig:
    """Everything that defines a training run besides the problem, the RBA switch and the seed."""

    config_name: str = "custom"  # the name ``make_config`` knows it by (``--config``), stored with the run
    hidden: tuple[int, ...] = (128,) * 6
    n_collocation: int = 25_600
    n_batches: int = 100
    n_boundary: int = 512
    steps: int = 300_000
    lr: float = 1e-3
    lr_decay: float = 0.9
    lr_decay_every: int = 5_000
    rba_gamma: float = 0.999
    rba_eta: float = 0.001
    test_every: int = 100
    test_size: str = "paper"
    n_probe: int = 1_024
    schedule: Schedule = field(default_factory=lambda: every(2, stop=300) | every(100, start=300))
    raw_schedule: Schedule = field(default_factory=lambda: logspaced(300_000, 12))
    residual_schedule: Schedule = field(default_factory=lambda: every(1_000))
    probe_schedule: Schedule = field(default_factory=lambda: logspaced(300_000, 200))

    def __post_init__(self):
        if self.n_collocation % self.n_batches:
            raise ValueError(
                f"n_collocation={self.n_collocation} must be a multiple of n_batches={self.n_batches} "
                "(equal batches make the mean batch loss equal the full-batch loss)"
            )


class PINNTrainer:
    """One PINN training run (vanilla or RBA) of ``problem`` under ``config``.

    Parameters
    ----------
    problem : PINNProblem
    config : TrainingConfig
    rba : bool
        Weight the PDE residuals with residual-based attention (Eq. 27-28).
    device : str
        ``"cpu"``, ``"cuda"``, ...
    seed : int
        Seeds the collocation/boundary sampling and the initial weights.
    """

    def __init__(self, problem: PINNProblem, config: TrainingConfig, *, rba: bool, device: str = "cpu", seed: int = 0):
        self.problem, self.config, self.rba, self.seed = problem, config, bool(rba), int(seed)
        self.device = torch.device(device)
        rng = np.random.default_rng(seed)
        torch.manual_seed(seed)
        self.model = MLP((problem.input_dim, *config.hidden, problem.output_dim)).to(self.device)
        as_tensor = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32, device=self.device)  # noqa: E731
        # points are i.i.d., so contiguous slices of the collocation set are random fixed batches
        self.collocation = as_tensor(problem.sample_collocation(config.n_collocation, rng))
        self.batch_size = config.n_collocation // config.n_batches
        self.boundary = {k: as_tensor(v) for k, v in problem.boundary_data(config.n_boundary, rng).items()}
        self.rba_weight = torch.zeros(config.n_collocation, device=self.device) if self.rba else None
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, config.lr_decay_every, config.lr_decay)
        test_inputs, self.test_exact = problem.test_set(config.test_size)
        self.test_inputs = as_tensor(test_inputs)
        self.probe = self.collocation[: config.n_probe]
        self.history: dict[str, list[float]] = {"step": [], "test_error": []}

    # ---- the loss, exactly as training weighs it -------------------------------------------------
    def pde_loss(self, model: nn.Module, batch: int | None = None) -> torch.Tensor:
        """Mean over points of Σ_equations (λ r)² (Eq. 27; λ ≡ 1 without RBA) on one batch or all points."""
        rows = slice(None) if batch is None else slice(batch * self.batch_size, (batch + 1) * self.batch_size)
        x = self.collocation[rows].detach().requires_grad_(True)
        r = self.problem.residual(model, x)
        if self.rba_weight is not None:
            r = self.rba_weight[rows, None] * r
        return r.pow(2).sum(dim=1).mean()

    def batch_loss(self, model: nn.Module, batch: int) -> torch.Tensor:
        """PDE loss of fixed batch ``batch`` (the recorder adds ``shared_loss`` to it)."""
        return self.pde_loss(model, batch)

    def batch_losses(self, model: nn.Module, batches: slice) -> torch.Tensor:
        """``batch_loss`` of every batch in the slice ``batches`` at once, on stacked ``(k, n, d)`` points.

        The recorder's vectorised engine calls it with its stacked model (docs/recording.md); only for
        problems whose ``residual`` handles stacked inputs (``stacked_residual``).
        """
        k, n = self.config.n_batches, self.batch_size
        x = self.collocation[: k * n].view(k, n, -1)[batches].detach().requires_grad_(True)
        r = self.problem.residual(model, x)
        if self.rba_weight is not None:
            r = self.rba_weight[: k * n].view(k, n)[batches][..., None] * r
        return r.pow(2).sum(dim=-1).mean(dim=-1)

    def shared_loss(self, model: nn.Module) -> torch.Tensor:
        """The boundary/initial loss, the same for every batch."""
        return self.problem.boundary_loss(model, self.boundary)

    def residuals(self, model: nn.Module):
        """Per-point residual (signed; Euclidean norm over equations for systems) and, with RBA, λ."""
        with torch.enable_grad():
            x = self.collocation.detach().requires_grad_(True)
            r = self.problem.residual(model, x).detach()
        r = r[:, 0] if r.shape[1] == 1 else r.norm(dim=1)
        return r if self.rba_weight is None else (r, self.rba_weight.clone())

    def update_rba(self, r: torch.Tensor) -> None:
        """λ ← γλ + η |r| / max|r| (Eq. 28), from the current residuals, detached."""
        magnitude = r.detach().norm(dim=1)
        # all-zero residuals (an exact solution) give no relative size: λ only decays then
        scale = magnitude.max().clamp_min(torch.finfo(magnitude.dtype).tiny)
        self.rba_weight.mul_(self.config.rba_gamma).add_(self.config.rba_eta * magnitude / scale)

    # ---- training ---------------------------------------------------------------------------------
    def train_step(self) -> dict[str, float]:
        """One full-batch Adam step; returns the loss terms it minimised."""
        self.optimizer.zero_grad(set_to_none=True)
        x = self.collocation.detach().requires_grad_(True)
        r = self.problem.residual(self.model, x)
        if self.rba_weight is not None:
            self.update_rba(r)
            r = self.rba_weight[:, None] * r
        loss_pde = r.pow(2).sum(dim=1).mean()
        loss_boundary = self.shared_loss(self.model)
        loss = loss_pde + loss_boundary
        loss.backward()
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.scheduler.step()
        return {"loss": loss.item(), "loss_pde": loss_pde.item(), "loss_boundary": loss_boundary.item(), "lr": lr}

    def test_error(self, chunk: int = 16_384) -> float:
        """Relative L2 error (Eq. 7) of the model on the fixed test grid."""
        parts = []
        for start in range(0, self.test_inputs.shape[0], chunk):
            x = self.test_inputs[start : start + chunk].detach().requires_grad_(True)
            with torch.enable_grad():  # the cavity's velocities are derivatives of ψ
                parts.append(self.problem.prediction(self.model, x).detach().cpu().numpy())
        return relative_l2(np.concatenate(parts), self.test_exact)

    def recorder_config(self) -> dict[str, Any]:
        """The ``config`` written into the store: enough to rerun the exact run."""
        cfg = {f.name: getattr(self.config, f.name) for f in fields(self.config)}
        cfg = {k: repr(v) if isinstance(v, Schedule) else v for k, v in cfg.items()}
        cfg["hidden"] = list(cfg["hidden"])
        return {**self.problem.describe(), "rba": self.rba, "seed": self.seed, "device": str(self.device), **cfg}

    def make_recorder(self, out: str | Path, overwrite: bool = False, engine: str = "auto", overlap: bool = False):
        """A pinnlog ``Recorder`` for this run, on the config's schedules (``engine``: the gradient engine;
        ``overlap``: captures in a background thread, vanilla runs only)."""
        from pinnlog.recorder import Recorder

        if overlap and self.rba:
            # the batch losses read RBA's λ, which every training step updates in place: a background
            # capture would read it while it changes (docs/recording.md#overlapped-captures)
            raise ValueError("overlap needs a vanilla run: RBA updates its weights λ in place at every step")
        c = self.config
        return Recorder(
            out,
            self.model,
            self.optimizer,
            batch_loss=self.batch_loss,
            n_batches=c.n_batches,
            shared_loss=self.shared_loss,
            batch_losses=self.batch_losses if self.problem.stacked_residual else None,
            engine=engine,
            schedule=c.schedule,
            raw_schedule=c.raw_schedule,
            residuals=self.residuals,
            residual_schedule=c.residual_schedule,
            probe=self.probe,
            probe_schedule=c.probe_schedule,
            config=self.recorder_config(),
            overwrite=overwrite,
            overlap=overlap,
        )

    def train(
        self,
        steps: int | None = None,
        *,
        out: str | Path | None = None,
        overwrite: bool = False,
        on_step: Callable[[int, dict[str, float]], None] | None = None,
        engine: str = "auto",
        overlap: bool = False,
    ) -> dict[str, list[float]]:
        """Train for ``steps`` (default: the config's), recording into ``out`` when given.

        The test error is computed every ``config.test_every`` steps and at the last step, and handed to
        ``rec.step(..., test_error=...)``; ``on_step(step, scalars)`` is called after every step (the
        command line's progress bar). Returns ``{"step": [...], "test_error": [...]}``.
        """
        steps = self.config.steps if steps is None else int(steps)
        recording = self.make_recorder(out, overwrite, engine, overlap) if out is not None else contextlib.nullcontext()
        with recording as recorder:
            for step in range(steps):
                scalars = self.train_step()
                if step % self.config.test_every == 0 or step == steps - 1:
                    scalars["test_error"] = self.test_error()
                    self.history["step"].append(step)
                    self.history["test_error"].append(scalars["test_error"])
                if recorder is not None:
                    recorder.step(step, **scalars)
                if on_step is not None:
                    on_step(step, scalars)
        return self.history
