"""Small torch problems with known structure, and an independent batch-gradient reference.

The reference uses ``loss.backward()`` on a deep copy of the model (the recorder uses
``torch.autograd.grad`` and never touches ``.grad``), and numpy float64 two-pass sums.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import itertools

from torch import nn


class TanhMLP(nn.Module):
    """The paper's network shape: Linear layers with ``torch.tanh`` applied inside ``forward``."""

    def __init__(self, widths, dropout: float = 0.0):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(widths))
        self.dropout = nn.Dropout(dropout) if dropout else None

    def forward(self, x):
        for layer in self.layers[:-1]:
            x = torch.tanh(layer(x))
            if self.dropout is not None:
                x = self.dropout(x)
        return self.layers[-1](x)


class AllenCahn:
    """1-D Allen-Cahn PINN (paper Appendix B.1): K fixed collocation batches + an initial-condition term."""

    def __init__(self, n_batches: int = 4, batch_size: int = 8, n_ic: int = 6, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.n_batches, self.batch_size = n_batches, batch_size
        t = torch.rand(n_batches * batch_size, 1, generator=g)
        x = torch.rand(n_batches * batch_size, 1, generator=g) * 2 - 1
        self.points = torch.cat([t, x], dim=1)
        x0 = torch.linspace(-1, 1, n_ic).unsqueeze(1)
        self.ic_points = torch.cat([torch.zeros_like(x0), x0], dim=1)
        self.ic_values = (x0**2 * torch.cos(math.pi * x0)).squeeze(1)

    def to(self, device) -> AllenCahn:
        for name in ("points", "ic_points", "ic_values"):
            setattr(self, name, getattr(self, name).to(device))
        return self

    def batch(self, b):
        return self.points[b * self.batch_size : (b + 1) * self.batch_size]

    def residual_at(self, model, pts):
        pts = pts.clone().requires_grad_(True)
        u = model(pts).squeeze(-1)
        du = torch.autograd.grad(u.sum(), pts, create_graph=True)[0]
        u_xx = torch.autograd.grad(du[:, 1].sum(), pts, create_graph=True)[0][:, 1]
        return du[:, 0] - 1e-4 * u_xx + 5 * u**3 - 5 * u

    def ic_loss(self, model):
        return ((model(self.ic_points).squeeze(-1) - self.ic_values) ** 2).mean()

    def residual_loss(self, model, b):
        return (self.residual_at(model, self.batch(b)) ** 2).mean()

    def batch_loss(self, model, b):
        """The paper's batch loss: the batch's residual loss plus the whole initial-condition loss."""
        return self.residual_loss(model, b) + self.ic_loss(model)

    def full_loss(self, model):
        return (self.residual_at(model, self.points) ** 2).mean() + self.ic_loss(model)

    def residuals(self, model):
        return self.residual_at(model, self.points).detach()

    def train_step(self, model, optimizer):
        """One plain optimizer step on the full loss; returns the loss."""
        optimizer.zero_grad()
        loss = self.full_loss(model)
        loss.backward()
        optimizer.step()
        return loss

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

    def full_loss(self, model):
        return nn.functional.cross_entropy(model(self.inputs), self.labels)


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
