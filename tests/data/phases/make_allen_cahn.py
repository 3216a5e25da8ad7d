"""Write ``allen_cahn_{v,r}.npz``: the authors' Allen–Cahn curves, reduced to what phase detection reads.

From ``../shared/reference/paper_logs/allen_cahn/{v,r}`` (MIT licence, the paper's repository; see its
README): ``step`` and the whole-net ``snr`` = ‖μ‖/‖σ‖ (``grad_stats.txt``, Eq. 8), ``snr_layer`` (7 weight
matrices, ``grad_stats2.txt``), and ``test_step``/``test_error``/``loss`` (``losses.txt``, step 0 dropped).
float32, so each file is ~100 kB and the tests run without ``shared/``::

    python tests/data/phases/make_allen_cahn.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
# shared/ sits beside the main checkout (/work/main -> /work/shared) or beside a worktree's parent
SOURCE = (
    next((p for p in (REPO.parent / "shared", REPO.parent.parent / "shared") if p.is_dir()), REPO.parent / "shared")
    / "reference/paper_logs/allen_cahn"
)
N_LAYERS = 7


def _stats(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = np.genfromtxt(path, delimiter=",", skip_header=1, usecols=(0, 2, 3))
    steps = rows[::N_LAYERS, 0].astype(np.int64)
    return steps, rows[:, 1].reshape(-1, N_LAYERS), rows[:, 2].reshape(-1, N_LAYERS)


def main() -> None:
    for name in ("v", "r"):
        steps, mean, std = _stats(SOURCE / name / "grad_stats.txt")
        steps2, mean_l, std_l = _stats(SOURCE / name / "grad_stats2.txt")
        assert np.array_equal(steps, steps2)
        losses = np.loadtxt(SOURCE / name / "losses.txt")
        losses = losses[losses[:, 0] > 0]
        np.savez_compressed(
            HERE / f"allen_cahn_{name}.npz",
            step=steps.astype(np.int32),
            snr=(mean[:, 0] / std[:, 0]).astype(np.float32),
            snr_layer=(mean_l / std_l).T.astype(np.float32),
            test_step=losses[:, 0].astype(np.int32),
            test_error=losses[:, 1].astype(np.float32),
            loss=losses[:, 2].astype(np.float32),
        )


if __name__ == "__main__":
    main()
