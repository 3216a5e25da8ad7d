"""Write the tiny stand-in for the authors' logs in this folder, from batch gradients drawn from a seed.

The files have the authors' text format (``Epoch,Layer,Mean,Std,L2`` CSV, numbers printed as float32
values, ``losses.txt`` with whitespace columns) for the paper's network [2] + [128] x 6 + [1], at the
steps in ``STEPS``. ``grad_rms.txt`` stops early, in the middle of a row, as ``r/grad_rms.txt`` of the
real logs stops before the others. ``truth.json`` holds, in float64, the reductions of the batch
gradients the files were printed from (Σμ², Σσ² with ddof=0, Σ mean_b g², Σw² per weight matrix and
step) and the losses, so a test checks the importer against the truth rather than against the files:

    python tests/data/paper_logs_mini/generate.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WIDTHS = (2, 128, 128, 128, 128, 128, 128, 1)
K = 8  # batches (the paper has 100; the format does not say)
STEPS = (2, 4, 6, 400, 500)
RMS_FULL_STEPS = (2, 4)  # grad_rms.txt holds these steps in full, then a cut-off row of step 6
LOSS_STEPS = (0, 100, 200, 300, 400, 500)
SEED = 20240611


def tensor_names() -> list[str]:
    return [f"layers.layer_{i}.weight" for i in range(len(WIDTHS) - 1)]


def batch_gradients(step: int) -> list[np.ndarray]:
    """Per weight matrix, the (K, numel) batch gradients at ``step``: a shared mean plus batch noise."""
    rng = np.random.default_rng([SEED, step])
    out = []
    for i in range(len(WIDTHS) - 1):
        numel = WIDTHS[i] * WIDTHS[i + 1]
        mean = rng.normal(0.0, 10.0 ** rng.uniform(-3, 1), numel)
        noise = rng.normal(0.0, 10.0 ** rng.uniform(-4, 0), (K, numel))
        out.append(mean + noise)
    return out


def weights(step: int) -> list[np.ndarray]:
    rng = np.random.default_rng([SEED, step, 1])
    return [rng.normal(0.0, 1.0 / np.sqrt(WIDTHS[i]), WIDTHS[i] * WIDTHS[i + 1]) for i in range(len(WIDTHS) - 1)]


def truth(step: int) -> dict[str, np.ndarray]:
    """Per weight matrix at ``step``: Σμ², Σσ² (population, ddof=0), Σ mean_b g_b², Σw², in float64."""
    grads, w = batch_gradients(step), weights(step)
    return {
        "sum_mu2": np.array([np.sum(g.mean(axis=0) ** 2) for g in grads]),
        "sum_sigma2": np.array([np.sum(g.var(axis=0, ddof=0)) for g in grads]),
        "sum_rms2": np.array([np.sum(np.mean(g**2, axis=0)) for g in grads]),
        "sum_w2": np.array([np.sum(v**2) for v in w]),
    }


def losses() -> np.ndarray:
    """(step, relative L2 test error, loss) rows of ``losses.txt``."""
    steps = np.array(LOSS_STEPS, dtype=float)
    return np.column_stack([steps, 1.04 * np.exp(-steps / 300.0), 0.57 * np.exp(-steps / 100.0)])


def _f32(value: float) -> str:
    return repr(float(np.float32(value)))  # the authors print float32 tensors' .item()


def write(folder: Path = HERE) -> None:
    names = tensor_names()
    per_layer, whole, rms = ["Epoch,Layer,Mean,Std,L2"], ["Epoch,Layer,Mean,Std,L2"], ["Epoch,Layer,Mean,Std,L2"]
    for step in STEPS:
        t = truth(step)
        net_mu, net_sigma, net_rms = (np.sqrt(t[k].sum()) for k in ("sum_mu2", "sum_sigma2", "sum_rms2"))
        for i, name in enumerate(names):
            l2 = _f32(np.sqrt(t["sum_w2"][i]))
            per_layer.append(f"{step},{name},{_f32(np.sqrt(t['sum_mu2'][i]))},{_f32(np.sqrt(t['sum_sigma2'][i]))},{l2}")
            whole.append(f"{step},{name},{_f32(net_mu)},{_f32(net_sigma)},{l2}")
            if step in RMS_FULL_STEPS or (step == 6 and i < 3):
                rms.append(f"{step},{name},{_f32(net_mu)},{_f32(net_rms)},{l2}")
    rms.append("6,layers.layer_3.wei")  # the log was cut in the middle of a row
    (folder / "grad_stats2.txt").write_text("\n".join(per_layer) + "\n")
    (folder / "grad_stats.txt").write_text("\n".join(whole) + "\n")
    (folder / "grad_rms.txt").write_text("\n".join(rms))
    (folder / "losses.txt").write_text("".join(f"{s:.10f} {e:.10f} {l:.10f}\n" for s, e, l in losses()))
    table = {k: [truth(step)[k].tolist() for step in STEPS] for k in ("sum_mu2", "sum_sigma2", "sum_rms2", "sum_w2")}
    doc = {"steps": list(STEPS), "tensors": names, "n_batches": K, **table, "losses": losses().tolist()}
    (folder / "truth.json").write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    write()
