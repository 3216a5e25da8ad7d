"""Small torch problems with known structure, and an independent batch-gradient reference.

The reference uses ``loss.backward()`` on a deep copy of the model (the recorder uses
``torch.autograd.grad`` and never touches ``.grad``), and numpy float64 two-pass sums.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import itertools

from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # benchmarks/ is not installed: the checkout's
from benchmarks.pinns.allen_cahn import PaperBatches, TanhMLP


class AllenCahn(PaperBatches):
    """The paper's Allen-Cahn set-up (``benchmarks.pinns.allen_cahn.PaperBatches``) at a tiny size."""

    def __init__(self, n_batches: int = 4, batch_size: int = 8, n_ic: int = 6, seed: int = 0):
        super().__init__(n_batches, batch_size, n_ic, seed)

    @property
    def losses(self) -> dict:
        """The recorder's loss options for the vectorised engine: the batch residual loss (one batch and
        stacked batches) and the initial-condition loss shared by every batch."""
        return {"batch_loss": self.residual_loss, "batch_losses": self.residual_losses, "shared_loss": self.ic_loss}

    def recorder(self, path, model, optimizer, **options):
        """The paper's recording of this problem: batch residual losses, the IC loss shared, residuals and
        activations on the collocation points (``options`` add or override schedules)."""
        from pinnlog.recorder import Recorder

        defaults = {"residuals": self.residuals, "probe": self.points, "shared_loss": self.ic_loss}
        return Recorder(path, model, optimizer, self.residual_loss, self.n_batches, **(defaults | options))


class Blobs:
    """Three Gaussian blobs in 5-D, K equal batches; the full loss is the mean of the batch losses."""

    def __init__(self, n_batches: int = 5, batch_size: int = 12, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        n = n_batches * batch_size
        self.n_batches, self.batch_size = n_batches, batch_size
        self.labels = torch.arange(n) % 3
        centers = torch.randn(3, 5, generator=g) * 2
        self.inputs = centers[self.labels] + torch.randn(n, 5, generator=g)

    def batch_loss(self, model, b):
        s = slice(b * self.batch_size, (b + 1) * self.batch_size)
        return nn.functional.cross_entropy(model(self.inputs[s]), self.labels[s])

    def batch_losses(self, model, batches):
        """``batch_loss`` of the batches in the slice ``batches`` at once, on (k, n, 5) stacked inputs."""
        inputs = self.inputs.view(self.n_batches, self.batch_size, -1)[batches]
        labels = self.labels.view(self.n_batches, self.batch_size)[batches]
        log_p = model(inputs).log_softmax(dim=-1)
        return -log_p.gather(-1, labels.unsqueeze(-1)).squeeze(-1).mean(dim=-1)

    def full_loss(self, model):
        return nn.functional.cross_entropy(model(self.inputs), self.labels)

    def recorder(self, path, model, optimizer, **options):
        """A Recorder on this problem's K batch losses (``options`` add schedules, probe, ...)."""
        from pinnlog.recorder import Recorder

        return Recorder(path, model, optimizer, self.batch_loss, self.n_batches, **options)

    train_step = PaperBatches.train_step  # one plain optimizer step on the full loss


def pinn(widths=(2, 12, 12, 1), n_batches: int = 7, batch_size: int = 8, seed: int = 0, dropout: float = 0.0):
    """A tiny :class:`AllenCahn` problem and a :class:`TanhMLP` on it, both drawn from ``seed``."""
    problem = AllenCahn(n_batches=n_batches, batch_size=batch_size, seed=seed)
    torch.manual_seed(seed)
    return problem, TanhMLP(list(widths), dropout=dropout)


def classifier(seed: int = 0, dropout: float = 0.0, batchnorm: bool = False) -> nn.Module:
    torch.manual_seed(seed)
    layers = [nn.Linear(5, 16)]
    if batchnorm:
        layers.append(nn.BatchNorm1d(16))
    layers += [nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 3)]
    return nn.Sequential(*layers)


def _backward_gradient(twin, loss) -> np.ndarray:
    twin.zero_grad(set_to_none=True)
    loss.backward()
    return np.concatenate(
        [(p.grad if p.grad is not None else torch.zeros_like(p)).detach().cpu().numpy().ravel() for p in twin.parameters()]
    ).astype(np.float64)


def reference_batch_gradients(model, batch_loss, n_batches, shared_loss=None) -> np.ndarray:
    """K x P float64 batch gradients by ``.backward()`` on a copy of the model (RNG state left alone).

    With ``shared_loss``, its gradient is computed once and added to every row in float64.
    """
    rng = torch.get_rng_state()
    twin = copy.deepcopy(model)
    rows = np.stack([_backward_gradient(twin, batch_loss(twin, b)) for b in range(n_batches)])
    if shared_loss is not None:
        rows += _backward_gradient(twin, shared_loss(twin))
    torch.set_rng_state(rng)
    return rows


def tensor_slices(model) -> list[slice]:
    """Where each parameter tensor sits on the flat axis, from ``model.parameters()`` alone."""
    bounds = np.cumsum([0] + [p.numel() for p in model.parameters()])
    return [slice(a, b) for a, b in itertools.pairwise(bounds)]


def reference_reductions(grads: np.ndarray, slices) -> dict[str, np.ndarray]:
    """Eq 8's ingredients per tensor, two-pass in float64: sum mu^2, sum sigma^2 (ddof=0), sum rms^2."""
    mu = grads.mean(axis=0)
    var = ((grads - mu) ** 2).mean(axis=0)
    rms2 = (grads**2).mean(axis=0)
    return {
        "sum_mu2": np.array([np.sum(mu[s] ** 2) for s in slices]),
        "sum_sigma2": np.array([np.sum(var[s]) for s in slices]),
        "sum_rms2": np.array([np.sum(rms2[s]) for s in slices]),
    }


class Trained(NamedTuple):
    """What a training run leaves: weights and buffers, optimizer state, torch RNG state, and whether
    every ``rec.step`` left ``.grad`` as it found it."""

    weights: dict
    optimizer: dict
    rng: torch.Tensor
    grads_untouched: bool


def train(model, optimizer, loss_fn, n_steps: int, rec=None) -> Trained:
    """``n_steps`` plain optimizer steps on ``loss_fn()``, each handed to the recorder ``rec`` (if any), closed at the end."""
    grads_untouched = True
    for step in range(n_steps):
        optimizer.zero_grad()
        loss = loss_fn()
        loss.backward()
        optimizer.step()
        if rec is not None:
            before = [p.grad.clone() for p in model.parameters()]
            rec.step(step, loss=loss)
            grads_untouched &= all(torch.equal(a, p.grad) for a, p in zip(before, model.parameters(), strict=True))
    if rec is not None:
        rec.close()
    return Trained(model.state_dict(), optimizer.state_dict(), torch.get_rng_state(), grads_untouched)


def assert_bitwise_identical(recorded: Trained, plain: Trained) -> None:
    """Recording changed nothing: every parameter and buffer, the optimizer state and the RNG state are equal bit for bit."""
    assert recorded.weights.keys() == plain.weights.keys()
    for name in recorded.weights:  # parameters and buffers (batch-norm running statistics)
        assert torch.equal(recorded.weights[name], plain.weights[name]), name
    for i, state in plain.optimizer["state"].items():
        for key, value in state.items():
            assert torch.equal(torch.as_tensor(recorded.optimizer["state"][i][key]), torch.as_tensor(value)), (i, key)
    assert torch.equal(recorded.rng, plain.rng)


def disk_fills_after(monkeypatch, n_ok: int) -> None:
    """Make every ``RunWriter.append`` after the first ``n_ok`` fail as a full disk does (ENOSPC)."""
    import errno

    from pinnlog.analyzer.store.write import RunWriter

    real = RunWriter.append
    calls = {"n": 0}

    def append(self, group, rows, dims=None):
        calls["n"] += 1
        if calls["n"] > n_ok:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, group, rows, dims)

    monkeypatch.setattr(RunWriter, "append", append)
