"""examples/digits_classifier.py records what it says: checked at the last step from the stored weights."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn", reason="scikit-learn is not installed (it is in the test extra)")

import itertools

from pinnlog.analyzer import open_run


def test_the_digits_example_records_its_test_error_and_batch_statistics(tmp_path, load_example):
    example = load_example("digits_classifier")
    path = example.train(tmp_path / "digits.zarr", steps=40)
    run = open_run(path)
    assert run.attrs["status"] == "complete" and run.attrs["n_batches"] == example.K
    last = 39
    assert last in run["weights"]["step"].values and last in run["gradient_stats"]["step"].values
    model = example.make_model()
    params = list(model.parameters())
    with torch.no_grad():
        torch.nn.utils.vector_to_parameters(torch.from_numpy(run["weights"]["weights"].sel(step=last).values.copy()), params)
    x_train, y_train, x_test, y_test = example.load()
    # the recorded test error: the share of wrong argmax on the 397 held-out images
    logits = model(x_test).detach().numpy()
    wrong = np.mean(logits.argmax(axis=1) != y_test.numpy())
    assert float(run["scalars"]["test_error"].sel(step=last)) == pytest.approx(wrong, abs=1e-6)  # float32; 1 image = 2.5e-3
    # the reductions: 10 fixed batches of 140 training images, cross-entropy, one backward each
    rows = []
    for b in range(example.K):
        part = slice(140 * b, 140 * (b + 1))
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(x_train[part]), y_train[part]).backward()
        rows.append(torch.cat([p.grad.reshape(-1) for p in params]).numpy().astype(np.float64))
    g = np.stack(rows)
    ends = np.cumsum([0] + [p.numel() for p in params])
    stats = run["gradient_stats"].sel(step=last)
    np.testing.assert_allclose(
        stats["sum_mu2"].values, [(g.mean(0)[a:b] ** 2).sum() for a, b in itertools.pairwise(ends)], rtol=1e-6
    )
    np.testing.assert_allclose(stats["sum_sigma2"].values, [g.var(0)[a:b].sum() for a, b in itertools.pairwise(ends)], rtol=1e-6)
    assert run["residuals"]["residual"].shape[1] == example.N_TRAIN
    assert set(run["activations"].data_vars) == {"layer_0", "layer_1", "layer_2"}
