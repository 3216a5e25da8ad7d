"""Recording must not change training: bitwise-identical weights, buffers, optimizer state and .grad."""

from __future__ import annotations

import numpy as np
import pytest
from recorder_problems import Blobs, assert_bitwise_identical, classifier, pinn, train

torch = pytest.importorskip("torch")
from pinnlog.analyzer import open_run
from pinnlog.recorder import Recorder, every


def _pinn_run(path, n_steps=50):
    """Adam on a PINN whose training loop and model both draw from the torch RNG every step."""
    problem, model = pinn(widths=(2, 10, 10, 1), n_batches=4, batch_size=8, dropout=0.1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    # the paper's recording: residual batch losses, IC loss shared, residuals and activations on the points
    rec = problem.recorder(path, model, optimizer, schedule=every(5), raw_schedule=every(15)) if path else None
    return train(model, optimizer, lambda: problem.full_loss(model), n_steps, rec)


def _classifier_run(path, n_steps=50):
    """SGD + momentum on a classifier with dropout and batch norm, minibatches drawn from the RNG."""
    problem = Blobs(n_batches=5, batch_size=12)
    model = classifier(seed=0, dropout=0.2, batchnorm=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

    def minibatch_loss():
        idx = torch.randint(0, problem.inputs.shape[0], (24,))
        return torch.nn.functional.cross_entropy(model(problem.inputs[idx]), problem.labels[idx])

    options = {"schedule": every(3), "raw_schedule": every(20), "probe": problem.inputs, "layers": ["2", "5"]}
    rec = problem.recorder(path, model, optimizer, **options) if path else None
    return train(model, optimizer, minibatch_loss, n_steps, rec)


@pytest.mark.parametrize("run", [_pinn_run, _classifier_run], ids=["pinn-adam", "classifier-sgd-momentum"])
def test_recorded_run_is_bitwise_identical_to_unrecorded(run_path, run):
    plain = run(None)
    recorded = run(run_path)

    assert open_run(run_path)["gradient_stats"].sizes["step"] >= 10  # captures really happened
    assert recorded.grads_untouched
    assert_bitwise_identical(recorded, plain)


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
