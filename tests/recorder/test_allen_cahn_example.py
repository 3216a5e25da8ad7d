"""examples/allen_cahn.py records with the vectorised engine what an independent loop computes."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from recorder_problems import reference_reductions, tensor_slices

from pinnlog.analyzer import open_run
from pinnlog.recorder.engines import ENGINE_CODES


def test_the_allen_cahn_example_records_vectorised_captures_that_match_a_backward_loop(tmp_path, load_example):
    example = load_example("allen_cahn")
    path = tmp_path / "ac.zarr"
    example.main(["--out", str(path), "--steps", "21"])  # the command docs/examples.md shows, shortened
    run = open_run(path)
    stats = run["gradient_stats"]
    assert run.attrs["status"] == "complete" and run.attrs["engine"]["engine"] == "vectorised"
    assert stats["engine"].values.tolist() == [ENGINE_CODES["vectorised"]] * 3  # steps 0, 10, 20
    # at the last step's stored weights: K batch gradients by .backward(), plus the shared IC gradient
    model = example.MLP((2, 32, 32, 32, 1))
    with torch.no_grad():
        torch.nn.utils.vector_to_parameters(
            torch.from_numpy(run["weights"]["weights"].sel(step=20).values.copy()), list(model.parameters())
        )
    problem = example.AllenCahn(10, 64)
    rows = []
    for b in range(10):
        model.zero_grad()
        (problem.batch_loss(model, b) + problem.ic_loss(model)).backward()
        rows.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]).double().numpy())
    rows = np.stack(rows)
    ref = reference_reductions(rows, tensor_slices(model))
    last = int(np.flatnonzero(stats["step"].values == 20)[0])
    for name in ("sum_mu2", "sum_sigma2"):
        np.testing.assert_allclose(stats[name].values[last], ref[name], rtol=1e-6)
    raw = run["batch_gradients"]["batch_gradients"].sel(step=20).values.astype(np.float64)
    assert (np.linalg.norm(raw - rows, axis=1) / np.linalg.norm(rows, axis=1)).max() <= 1e-5
