"""Issue 15: ten kinds of training, each recorded and not recorded from the same seed.

For every kind: (1) the recorded run ends bitwise equal to the unrecorded one (weights, buffers,
optimizer state); (2) at the last capture the stored per-tensor sums equal those of an independent
loop: ``.backward()`` per batch on a deep copy of the model, from the same RNG state, float64 numpy
two-pass mean and variance, matched by tensor name. Models are small; each kind runs in seconds.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn

from pinnlog.analyzer import open_run
from pinnlog.recorder import Recorder, every

K = 4
N_STEPS = 9  # captures at 0, 4, 8: the last capture sees the final weights


@dataclass
class Kind:
    model: nn.Module
    optimizer: Any
    batch_loss: Any
    train_step: Any  # train_step(step, kind) -> loss
    shared_loss: Any = None
    options: dict = field(default_factory=dict)
    scheduler: Any = None


def _seeded(seed=0):
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed + 1)


class Regression(NamedTuple):
    x: torch.Tensor
    y: torch.Tensor
    batch_loss: Any
    mse: Any


def _regression(g, *input_shape) -> Regression:
    """16 random (x, y) pairs from ``g``, batch b being rows 4b to 4b + 3: x, y, the batch MSE and the full MSE."""
    x, y = torch.randn(16, *input_shape, generator=g), torch.randn(16, 1, generator=g)

    def batch_loss(m, b):
        return ((m(x[4 * b : 4 * b + 4]) - y[4 * b : 4 * b + 4]) ** 2).mean()

    def mse(m):
        return ((m(x) - y) ** 2).mean()

    return Regression(x, y, batch_loss, mse)


def _plain_step(loss_fn):
    def step(i, kind):
        kind.optimizer.zero_grad()
        loss = loss_fn(kind.model)
        loss.backward()
        kind.optimizer.step()
        if kind.scheduler is not None:
            kind.scheduler.step()
        return loss

    return step


def cnn_batchnorm_dropout():
    g = _seeded()
    model = nn.Sequential(
        nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Dropout(0.2), nn.Flatten(), nn.Linear(3 * 4 * 4, 2)
    )
    x, y = torch.randn(16, 1, 6, 6, generator=g), torch.randint(0, 2, (16,), generator=g)

    def batch_loss(m, b):
        return nn.functional.cross_entropy(m(x[4 * b : 4 * b + 4]), y[4 * b : 4 * b + 4])

    def minibatch(m):
        idx = torch.randint(0, 16, (8,))
        return nn.functional.cross_entropy(m(x[idx]), y[idx])

    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    return Kind(model, opt, batch_loss, _plain_step(minibatch), options={"probe": x, "layers": ["0"], "raw_schedule": [8]})


def _recurrent(cell):
    def build():
        g = _seeded()

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.rnn = cell(3, 6, num_layers=2, dropout=0.1)
                self.head = nn.Linear(6, 1)

            def forward(self, x):
                return self.head(self.rnn(x)[0][-1])

        model = Net()
        x, y = torch.randn(5, 16, 3, generator=g), torch.randn(16, 1, generator=g)

        def batch_loss(m, b):
            return ((m(x[:, 4 * b : 4 * b + 4]) - y[4 * b : 4 * b + 4]) ** 2).mean()

        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        return Kind(
            model, opt, batch_loss, _plain_step(lambda m: ((m(x) - y) ** 2).mean()), options={"probe": x, "layers": ["rnn"]}
        )

    return build


def transformer_adamw_scheduler():
    g = _seeded()
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.1, batch_first=True)
    model = nn.Sequential(
        nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False), nn.Flatten(), nn.Linear(5 * 8, 1)
    )
    data = _regression(g, 5, 8)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    kind = Kind(model, opt, data.batch_loss, _plain_step(data.mse), options={"probe": data.x, "layers": ["0.layers.0"]})
    kind.scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
    return kind


def frozen_and_tied():
    g = _seeded()

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(10, 4)
            self.frozen = nn.Linear(4, 4)
            self.out = nn.Linear(4, 10, bias=False)
            self.out.weight = self.embed.weight  # tied
            self.frozen.requires_grad_(False)

        def forward(self, t):
            return self.out(torch.tanh(self.frozen(self.embed(t))))

    model = Net()
    t = torch.randint(0, 10, (16,), generator=g)

    def batch_loss(m, b):
        return nn.functional.cross_entropy(m(t[4 * b : 4 * b + 4]), t[4 * b : 4 * b + 4])

    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    return Kind(model, opt, batch_loss, _plain_step(lambda m: nn.functional.cross_entropy(m(t), t)))


def param_groups():
    g = _seeded()
    model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
    data = _regression(g, 3)
    opt = torch.optim.Adam(
        [{"params": model[0].parameters(), "lr": 1e-3}, {"params": model[2].parameters(), "lr": 1e-2, "betas": (0.8, 0.99)}]
    )
    return Kind(model, opt, data.batch_loss, _plain_step(data.mse))


def pinn_lbfgs_then_rmsprop():
    _seeded()
    g = torch.Generator().manual_seed(3)
    pts = torch.rand(16, 2, generator=g)
    ic = torch.cat([torch.zeros(6, 1), torch.linspace(-1, 1, 6)[:, None]], 1)
    u0 = ic[:, 1] ** 2 * torch.cos(math.pi * ic[:, 1])
    model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))

    def residual(m, p):
        p = p.clone().requires_grad_(True)
        u = m(p).squeeze(-1)
        du = torch.autograd.grad(u.sum(), p, create_graph=True)[0]
        uxx = torch.autograd.grad(du[:, 1].sum(), p, create_graph=True)[0][:, 1]
        return du[:, 0] - 1e-4 * uxx + 5 * u**3 - 5 * u

    def batch_loss(m, b):
        return (residual(m, pts[4 * b : 4 * b + 4]) ** 2).mean()

    def ic_loss(m):
        return ((m(ic).squeeze(-1) - u0) ** 2).mean()

    def full(m):
        return (residual(m, pts) ** 2).mean() + ic_loss(m)

    lbfgs = torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=3)

    def step(i, kind):
        if i < 4:

            def closure():
                kind.optimizer.zero_grad()
                loss = full(kind.model)
                loss.backward()
                return loss

            return kind.optimizer.step(closure)
        if i == 4:  # switch optimizers, as PINN practice does (the recorder is told)
            kind.optimizer = torch.optim.RMSprop(kind.model.parameters(), lr=1e-3)
            if kind.recorder is not None:
                kind.recorder.optimizer = kind.optimizer
        return _plain_step(full)(i, kind)

    return Kind(
        model,
        lbfgs,
        batch_loss,
        step,
        shared_loss=ic_loss,
        options={"residuals": lambda m: residual(m, pts).detach(), "residual_schedule": every(4)},
    )


def bf16_autocast():
    g = _seeded()
    model = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.Linear(8, 1))
    x, y = torch.randn(16, 4, generator=g), torch.randn(16, 1, generator=g)

    def batch_loss(m, b):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = m(x[4 * b : 4 * b + 4])
        return ((out.float() - y[4 * b : 4 * b + 4]) ** 2).mean()

    def full(m):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = m(x)
        return ((out.float() - y) ** 2).mean()

    return Kind(model, torch.optim.Adam(model.parameters(), lr=1e-2), batch_loss, _plain_step(full))


def compiled():
    g = _seeded()
    model = torch.compile(nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 1)), backend="aot_eager")
    data = _regression(g, 3)
    return Kind(model, torch.optim.Adam(model.parameters(), lr=1e-2), data.batch_loss, _plain_step(data.mse))


def accumulation_and_clipping():
    g = _seeded()
    model = nn.Sequential(nn.Linear(3, 6), nn.ReLU(), nn.Linear(6, 1))
    x, y, batch_loss, _ = _regression(g, 3)

    def step(i, kind):
        kind.optimizer.zero_grad()
        total = 0.0
        for half in (slice(0, 8), slice(8, 16)):  # two micro-batches accumulate into .grad
            loss = ((kind.model(x[half]) - y[half]) ** 2).mean() / 2
            loss.backward()
            total += loss.detach()
        nn.utils.clip_grad_norm_(kind.model.parameters(), 0.1)
        kind.optimizer.step()
        return total

    return Kind(model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.5), batch_loss, step)


def weight_and_spectral_norm():
    from torch.nn.utils import parametrizations

    g = _seeded()
    model = nn.Sequential(
        parametrizations.weight_norm(nn.Linear(3, 6)), nn.Tanh(), parametrizations.spectral_norm(nn.Linear(6, 1))
    )
    data = _regression(g, 3)
    return Kind(model, torch.optim.SGD(model.parameters(), lr=0.05), data.batch_loss, _plain_step(data.mse))


KINDS = {
    "cnn-batchnorm-dropout": cnn_batchnorm_dropout,
    "lstm": _recurrent(nn.LSTM),
    "gru": _recurrent(nn.GRU),
    "transformer-adamw-scheduler": transformer_adamw_scheduler,
    "frozen-and-tied": frozen_and_tied,
    "param-groups": param_groups,
    "pinn-lbfgs-rmsprop": pinn_lbfgs_then_rmsprop,
    "bf16-autocast": bf16_autocast,
    "torch-compile": compiled,
    "accumulation-clipping": accumulation_and_clipping,
    "weight-spectral-norm": weight_and_spectral_norm,
}


def _reference_sums(model, batch_loss, shared_loss, names) -> dict[str, np.ndarray]:
    """Per named tensor, sum mu^2 and sum sigma^2 (ddof=0) of the K batch gradients: ``.backward()`` on a copy."""
    twin = copy.deepcopy(model)
    params = dict(twin.named_parameters())

    def gradient(loss):
        twin.zero_grad(set_to_none=True)
        loss.backward()
        return {
            n: (params[n].grad if params[n].grad is not None else torch.zeros_like(params[n])).double().numpy().ravel()
            for n in names
        }

    rows = [gradient(batch_loss(twin, b)) for b in range(K)]
    shared = gradient(shared_loss(twin)) if shared_loss is not None else None
    out = {"sum_mu2": [], "sum_sigma2": []}
    for n in names:
        g = np.stack([r[n] for r in rows])
        mu = g.mean(0) + (shared[n] if shared is not None else 0.0)
        out["sum_mu2"].append(np.sum(mu**2))
        out["sum_sigma2"].append(np.sum(g.var(0)))
    return {k: np.array(v) for k, v in out.items()}


def _train(build, path):
    kind = build()
    kind.recorder = None
    reference = None
    rec = None
    if path is not None:
        rec = Recorder(
            path, kind.model, kind.optimizer, kind.batch_loss, K, schedule=every(4), shared_loss=kind.shared_loss, **kind.options
        )
        kind.recorder = rec
    for i in range(N_STEPS):
        loss = kind.train_step(i, kind)
        if rec is not None:
            if i == N_STEPS - 1:  # the reference, from the RNG state the capture starts from
                rng = torch.get_rng_state()
                names = [t["name"] for t in rec._layout.tensors]
                reference = _reference_sums(kind.model, kind.batch_loss, kind.shared_loss, names)
                torch.set_rng_state(rng)
            rec.step(i, loss=loss.detach())
    if rec is not None:
        rec.close()
    state = {k: v.clone() for k, v in kind.model.state_dict().items()}
    return state, copy.deepcopy(kind.optimizer.state_dict()), torch.get_rng_state(), reference


def _equal(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.parametrize("name", list(KINDS))
def test_recording_leaves_training_bitwise_unchanged_and_sums_exact(tmp_path, name):
    build = KINDS[name]
    if name == "torch-compile":
        try:
            build().model(torch.randn(2, 3)).sum().backward()
        except Exception as exc:  # no compiler backend here: the other kinds still run
            pytest.skip(f"torch.compile cannot compile here: {type(exc).__name__}")
    path = tmp_path / "run.zarr"
    recorded = _train(build, path)
    plain = _train(build, None)
    assert _equal(recorded[0], plain[0]), "weights or buffers differ"
    assert _equal(recorded[1], plain[1]), "optimizer state differs"
    assert torch.equal(recorded[2], plain[2]), "the global RNG stream differs"
    stats = open_run(path)["gradient_stats"]
    assert stats["step"].values.tolist() == [0, 4, 8]
    reference = recorded[3]
    for var in ("sum_mu2", "sum_sigma2"):
        np.testing.assert_allclose(stats[var].values[-1], reference[var], rtol=2e-5, atol=1e-12, err_msg=var)
