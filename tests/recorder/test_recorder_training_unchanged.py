"""Recording must not change training: bitwise-identical weights, buffers, optimizer state and .grad."""

from __future__ import annotations

import numpy as np
import pytest
from recorder_problems import AllenCahn, Blobs, TanhMLP, classifier

torch = pytest.importorskip("torch")
from pinnlog.analyzer import open_run
from pinnlog.recorder import Recorder, every


def _pinn_run(path, n_steps=50):
    """Adam on a PINN whose training loop and model both draw from the torch RNG every step."""
    problem = AllenCahn(n_batches=4, batch_size=8)
    torch.manual_seed(0)
    model = TanhMLP([2, 10, 10, 1], dropout=0.1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    rec = None
    if path is not None:
        rec = Recorder(
            path,
            model,
            optimizer,
            problem.residual_loss,
            problem.n_batches,
            schedule=every(5),
            raw_schedule=every(15),
            residuals=problem.residuals,
            probe=problem.points,
            shared_loss=problem.ic_loss,
        )
    return _train(model, optimizer, lambda: problem.full_loss(model), rec, n_steps)


def _classifier_run(path, n_steps=50):
    """SGD + momentum on a classifier with dropout and batch norm, minibatches drawn from the RNG."""
    problem = Blobs(n_batches=5, batch_size=12)
    model = classifier(seed=0, dropout=0.2, batchnorm=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    rec = None
    if path is not None:
        rec = Recorder(
            path,
            model,
            optimizer,
            problem.batch_loss,
            problem.n_batches,
            schedule=every(3),
            raw_schedule=every(20),
            probe=problem.inputs,
            layers=["2", "5"],
        )

    def minibatch_loss():
        idx = torch.randint(0, problem.inputs.shape[0], (24,))
        return torch.nn.functional.cross_entropy(model(problem.inputs[idx]), problem.labels[idx])

    return _train(model, optimizer, minibatch_loss, rec, n_steps)


def _train(model, optimizer, loss_fn, rec, n_steps):
    grads_untouched = True
    for step in range(n_steps):
        optimizer.zero_grad()
        loss = loss_fn()
        loss.backward()
        optimizer.step()
        if rec is not None:
            before = [p.grad.clone() for p in model.parameters()]
            rec.step(step, loss=loss)
            grads_untouched &= all(torch.equal(a, p.grad) for a, p in zip(before, model.parameters()))
    if rec is not None:
        rec.close()
    return model.state_dict(), optimizer.state_dict(), torch.get_rng_state(), grads_untouched


@pytest.mark.parametrize("run", [_pinn_run, _classifier_run], ids=["pinn-adam", "classifier-sgd-momentum"])
def test_recorded_run_is_bitwise_identical_to_unrecorded(run_path, run):
    plain_weights, plain_opt, plain_rng, _ = run(None)
    weights, opt, rng, grads_untouched = run(run_path)

    assert open_run(run_path)["gradient_stats"].sizes["step"] >= 10  # captures really happened
    assert grads_untouched
    assert weights.keys() == plain_weights.keys()
    for name in weights:  # parameters and buffers (batch-norm running statistics)
        assert torch.equal(weights[name], plain_weights[name]), name
    for i, state in plain_opt["state"].items():
        for key, value in state.items():
            assert torch.equal(torch.as_tensor(opt["state"][i][key]), torch.as_tensor(value)), (i, key)
    assert torch.equal(rng, plain_rng)


def test_train_eval_modes_are_restored(run_path):
    problem = Blobs(n_batches=3, batch_size=8)
    model = classifier(seed=1, dropout=0.5)
    model[3].eval()  # a mixed state: the dropout module alone in eval mode

    def batch_loss(m, b):
        m.eval()  # a user function that changes modes must not leak into training
        return problem.batch_loss(m, b)

    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    modes = [m.training for m in model.modules()]
    with Recorder(run_path, model, optimizer, batch_loss, problem.n_batches, schedule=[0]) as rec:
        rec.step(0)
    assert [m.training for m in model.modules()] == modes
    assert np.isfinite(open_run(run_path)["gradient_stats"]["sum_mu2"].values).all()
