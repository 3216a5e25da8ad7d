"""Write ``pinnlog_<name>.npz``: a recorded pinnlog run reduced to what phase detection reads.

From a run store written by ``python -m benchmarks.pinns.run`` (see docs/phases.md for the commands):
``step`` and ``snr`` (Eq. 8, ``metrics.snr``), ``snr_layer`` (per weight matrix), ``test_step`` and
``test_error`` (Eq. 7, where recorded), ``loss``, and ``residual_step``/``residual_homogeneity`` (the ``cv`` of |residual|) where the
run captured residuals. float32, a few kB per run::

    python tests/data/phases/make_pinnlog.py runs/helmholtz_rba.zarr helmholtz_rba
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from pinnlog.analyzer import metrics
from pinnlog.analyzer.io import open_run

HERE = Path(__file__).resolve().parent


def main(store: str, name: str) -> None:
    run = open_run(store)
    snr = metrics.snr(run).compute()
    per_layer = metrics.snr(run, per_layer=True).compute()
    scalars = run["scalars"].to_dataset()
    te = scalars["test_error"].dropna("step")
    te = te.where(te["step"] > 0, drop=True)
    loss = scalars["loss"].sel(step=te["step"])
    out = dict(
        step=snr["step"].values.astype(np.int32),
        snr=snr.values.astype(np.float32),
        snr_layer=per_layer.transpose("layer", "step").values.astype(np.float32),
        test_step=te["step"].values.astype(np.int32),
        test_error=te.values.astype(np.float32),
        loss=loss.values.astype(np.float32),
    )
    try:
        rh = metrics.residual_homogeneity(run)["cv"].compute().dropna("step")
        out.update(residual_step=rh["step"].values.astype(np.int32), residual_homogeneity=rh.values.astype(np.float32))
    except Exception as exc:  # a run without residual captures simply has none
        print(f"{name}: no residual homogeneity ({exc})", file=sys.stderr)
    np.savez_compressed(HERE / f"pinnlog_{name}.npz", **out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
