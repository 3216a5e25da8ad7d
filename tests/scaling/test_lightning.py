"""``PinnlogCallback`` records a LightningModule run exactly as the plain-loop Recorder would.

A tiny regression module trains on CPU for a few optimizer steps. The store's reductions are checked
against a backward-per-batch loop with numpy statistics at the recorded weights; the recorded loss
against the losses Lightning reported; and recording must leave training and its logs unchanged.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
L = pytest.importorskip("lightning.pytorch", reason="Lightning is not installed (pip install 'pinnlog[lightning]')")

import itertools

from pinnlog.analyzer import open_run
from pinnlog.analyzer.errors import RecorderError
from pinnlog.recorder import every
from pinnlog.recorder.lightning import PinnlogCallback

X = torch.randn(32, 2, generator=torch.Generator().manual_seed(3))
Y = torch.sin(2 * X[:, :1]) * X[:, 1:]


class Regressor(L.LightningModule):
    def __init__(self, fail_at: int | None = None):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(2, 6), torch.nn.Tanh(), torch.nn.Linear(6, 1))
        self.fail_at = fail_at
        self.reported: list[float] = []  # the loss of every training batch, as Lightning hands it on

    def on_train_batch_start(self, batch, batch_idx):
        if self.fail_at is not None and self.global_step == self.fail_at:
            raise RuntimeError("diverged")

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = ((self.net(x) - y) ** 2).mean()
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        return {"loss": loss}

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.reported.append(float(outputs["loss"]))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def loader():
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, Y), batch_size=8, shuffle=False)


def fit(module, callbacks=(), max_steps=12, **options):
    trainer = L.Trainer(
        max_steps=max_steps,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=list(callbacks),
        **options,
    )
    trainer.fit(module, loader())
    return trainer


def autograd_reductions(weights: np.ndarray, batches) -> tuple[np.ndarray, np.ndarray]:
    """Per-tensor sum mu^2, sum sigma^2 (ddof=0) over the fixed batches at ``weights``: backward() per batch."""
    model = Regressor().net
    params = list(model.parameters())
    with torch.no_grad():
        torch.nn.utils.vector_to_parameters(torch.from_numpy(weights.copy()), params)
    rows = []
    for x, y in batches:
        model.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        rows.append(torch.cat([p.grad.reshape(-1) for p in params]).numpy().astype(np.float64))
    g = np.stack(rows)
    ends = np.cumsum([0] + [p.numel() for p in params])
    spans = [slice(a, b) for a, b in itertools.pairwise(ends)]
    return np.array([(g.mean(0)[s] ** 2).sum() for s in spans]), np.array([g.var(0)[s].sum() for s in spans])


def test_fixed_batches_are_recorded_without_changing_training_or_its_logs(tmp_path):
    fixed = list(loader())  # the K = 4 batches an epoch has, fixed for the run
    plain_module = Regressor()
    plain = fit(plain_module)
    module = Regressor()
    recorded = fit(module, [PinnlogCallback(tmp_path / "run.zarr", batches=fixed, schedule=every(3), raw_schedule=every(3))])
    for a, b in zip(plain_module.parameters(), module.parameters()):
        assert torch.equal(a, b)  # bit for bit: the capture's training_step calls left no trace
    assert float(recorded.callback_metrics["train_loss"]) == float(plain.callback_metrics["train_loss"])
    run = open_run(tmp_path / "run.zarr")
    assert run.attrs["status"] == "complete" and run.attrs["n_batches"] == 4
    np.testing.assert_array_equal(run["scalars"]["step"].values, np.arange(12))
    np.testing.assert_allclose(run["scalars"]["loss"].values, module.reported, rtol=1e-7)
    stats = run["gradient_stats"]
    assert list(stats["step"].values) == [0, 3, 6, 9]
    for row, weights in enumerate(run["weights"]["weights"].values):
        mu2, sigma2 = autograd_reductions(weights, fixed)
        np.testing.assert_allclose(stats["sum_mu2"].values[row], mu2, rtol=1e-6)
        np.testing.assert_allclose(stats["sum_sigma2"].values[row], sigma2, rtol=1e-6)


def test_batch_loss_and_gradient_accumulation_record_one_row_per_optimizer_step(tmp_path):
    fixed = [(X[i : i + 16], Y[i : i + 16]) for i in (0, 16)]

    def batch_loss(module, b):
        x, y = fixed[b]
        return ((module.net(x) - y) ** 2).mean()

    def test_error(trainer, module):
        return {"test_error": 0.5} if trainer.global_step % 2 == 0 else {}

    callback = PinnlogCallback(
        tmp_path / "acc.zarr", batch_loss=batch_loss, n_batches=2, schedule=every(2), raw_schedule=every(2), scalars=test_error
    )
    module = Regressor()
    fit(module, [callback], max_steps=5, accumulate_grad_batches=2)
    run = open_run(tmp_path / "acc.zarr")
    np.testing.assert_array_equal(run["scalars"]["step"].values, np.arange(5))  # 10 batches, 5 optimizer steps
    np.testing.assert_array_equal(np.isnan(run["scalars"]["test_error"].values), [True, False, True, False, True])
    np.testing.assert_allclose(run["scalars"]["loss"].values, module.reported[1::2], rtol=1e-7)
    stats = run["gradient_stats"]
    for row, weights in enumerate(run["weights"]["weights"].values):
        mu2, sigma2 = autograd_reductions(weights, fixed)
        np.testing.assert_allclose(stats["sum_mu2"].values[row], mu2, rtol=1e-6)
        np.testing.assert_allclose(stats["sum_sigma2"].values[row], sigma2, rtol=1e-6)


def test_a_failing_fit_leaves_an_interrupted_store_with_the_steps_before_it(tmp_path):
    callback = PinnlogCallback(tmp_path / "fail.zarr", batches=list(loader()), schedule=every(2))
    with pytest.raises(RuntimeError, match="diverged"):
        fit(Regressor(fail_at=5), [callback])
    run = open_run(tmp_path / "fail.zarr")
    assert run.attrs["status"] == "interrupted"
    np.testing.assert_array_equal(run["scalars"]["step"].values, np.arange(5))
    assert list(run["gradient_stats"]["step"].values) == [0, 2, 4]


@pytest.mark.parametrize(
    "kwargs,fragment",
    [
        ({}, "exactly one of batches="),
        (
            {
                "batches": [1],
            },
            "K >= 2 fixed batches",
        ),
        ({"batch_loss": lambda m, b: 0}, "needs n_batches=K"),
        ({"batches": [1, 2], "batch_loss": lambda m, b: 0}, "exactly one of"),
        ({"batches": [1, 2], "n_batches": 3}, "n_batches=3 but 2 batches"),
    ],
)
def test_argument_mistakes_are_one_line_errors(tmp_path, kwargs, fragment):
    with pytest.raises(RecorderError, match=fragment) as info:
        PinnlogCallback(tmp_path / "x.zarr", **kwargs)
    assert "\n" not in str(info.value)


def test_fixed_batches_with_manual_optimization_are_refused(tmp_path):
    module = Regressor()
    module.automatic_optimization = False  # its training_step would step the optimizer during a capture
    with pytest.raises(RecorderError, match=r"manual optimization.*pass batch_loss=fn"):
        fit(module, [PinnlogCallback(tmp_path / "m.zarr", batches=list(loader()))], max_steps=2)
    assert not (tmp_path / "m.zarr").exists()
