"""RunWriter keeps the last chunk of small-row arrays and writes whole chunks: the rows read back exactly."""

import numpy as np
import zarr

from pinnlog.analyzer.store import write


def test_appends_across_chunk_boundaries_read_back_exactly(tmp_path, monkeypatch):
    monkeypatch.setattr(write, "chunk_shape", lambda group, shape, itemsize: (3, *shape[1:]))  # 3 rows a chunk
    writer = write.RunWriter(tmp_path / "run.zarr", {"layout": [{"name": f"t{i}"} for i in range(4)]})
    rng = np.random.default_rng(0)
    expected: dict[str, list] = {"step": [], "sum_mu2": [], "sum_sigma2": []}
    step = 0
    for n, with_sigma in ((1, True), (2, False), (5, True), (1, True), (4, False)):
        rows = {"step": np.arange(step, step + n), "sum_mu2": rng.random((n, 4))}
        if with_sigma:
            rows["sum_sigma2"] = rng.random((n, 4))
        writer.append("gradient_stats", rows)
        for var in expected:
            expected[var].append(rows[var] if var in rows else np.full((n, 4), np.nan))
        step += n
    assert writer._tails  # the kept-chunk path ran
    writer.close()
    group = zarr.open_group(str(tmp_path / "run.zarr"), mode="r")["gradient_stats"]
    assert group.attrs["n_committed"] == step
    for var, parts in expected.items():
        np.testing.assert_array_equal(group[var][:step], np.concatenate(parts), err_msg=var)
