"""Building blocks of the hostile corpus: a healthy format-1 store with known truth, and tools to damage one.

``write_healthy_store`` writes every group through the real commit protocol (``RunWriter``) from random
batch gradients, so its reductions and its raw snapshots agree exactly; the ``edit_*`` helpers change
one node's ``zarr.json`` (and its copy in the consolidated metadata) in place.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np

from pinnlog.analyzer.store.write import RunWriter

__all__ = [
    "IMG",
    "LAYERS",
    "LAYOUT",
    "SCRIPT",
    "batch_reductions",
    "edit_node",
    "evil_pickle",
    "first_chunk",
    "set_group_attr",
    "set_root_attr",
    "shard_of",
    "write_healthy_store",
]

#: A two-layer MLP [2] -> [3] -> [1]: weight, bias, weight, bias (P = 13 parameters).
LAYOUT = [
    {"name": "0.weight", "module": "0", "shape": [3, 2], "numel": 6, "offset": 0, "layer": 0, "is_bias": False},
    {"name": "0.bias", "module": "0", "shape": [3], "numel": 3, "offset": 6, "layer": 0, "is_bias": True},
    {"name": "2.weight", "module": "2", "shape": [1, 3], "numel": 3, "offset": 9, "layer": 1, "is_bias": False},
    {"name": "2.bias", "module": "2", "shape": [1], "numel": 1, "offset": 12, "layer": 1, "is_bias": True},
]
LAYERS = [
    {"index": 0, "name": "layer_0", "module": "0", "width": 3},
    {"index": 1, "name": "layer_1", "module": "2", "width": 1},
]
N_PARAMS = 13
N_SAMPLES = 16
N_PROBE = 8
SCRIPT = "<script>alert('pinnlog')</script>"
IMG = "<img src=x onerror=alert(1)>"


def batch_reductions(grads: np.ndarray, layout=LAYOUT) -> dict[str, np.ndarray]:
    """Per-tensor ``sum_mu2``, ``sum_sigma2``, ``sum_rms2`` of a (K, P) float32 batch-gradient matrix."""
    g = grads.astype(np.float64)
    mu = g.mean(axis=0)
    sigma2 = ((g - mu) ** 2).mean(axis=0)
    rms2 = (g**2).mean(axis=0)
    out = {"sum_mu2": [], "sum_sigma2": [], "sum_rms2": []}
    for t in layout:
        sl = slice(t["offset"], t["offset"] + t["numel"])
        out["sum_mu2"].append((mu[sl] ** 2).sum())
        out["sum_sigma2"].append(sigma2[sl].sum())
        out["sum_rms2"].append(rms2[sl].sum())
    return {k: np.asarray(v) for k, v in out.items()}


def write_healthy_store(
    path: Path, *, n_steps: int = 12, n_batches: int = 4, seed: int = 0, attrs: dict | None = None, close: bool = True
) -> Path:
    """A small but complete format-1 store: every group, reductions that match the raw snapshots."""
    rng = np.random.default_rng(seed)
    root_attrs = {
        "pinnlog_version": "0.1.0",
        "torch_version": "2.13.0",
        "device": "cpu",
        "model": "Sequential(Linear(2, 3), Tanh(), Linear(3, 1))",
        "optimizer": {"name": "Adam", "hyperparameters": {"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8}},
        "n_batches": n_batches,
        "schedule": "every(1)",
        "raw_schedule": "every(3)",
        "shared_loss": False,
        "config": {"pde": "synthetic"},
        "layout": LAYOUT,
        "layers": LAYERS,
        "activation_layers": ["layer_0"],
    }
    root_attrs.update(attrs or {})
    store = RunWriter(path, root_attrs)
    store.set_static(
        "gradient_stats",
        {
            "numel": np.array([t["numel"] for t in LAYOUT], dtype=np.int64),
            "layer": np.array([t["layer"] for t in LAYOUT], dtype=np.int32),
            "is_bias": np.array([t["is_bias"] for t in LAYOUT], dtype=bool),
        },
    )
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for i in range(n_steps):
        step = 10 * i
        grads = (rng.normal(size=(n_batches, N_PARAMS)) + rng.normal(size=N_PARAMS)).astype(np.float32)
        weights = rng.normal(size=N_PARAMS).astype(np.float32)
        exp_avg = rng.normal(size=N_PARAMS).astype(np.float32) * 1e-2
        exp_avg_sq = rng.random(N_PARAMS).astype(np.float32) * 1e-4
        t = step + 1
        m_hat = exp_avg.astype(np.float64) / (1 - beta1**t)
        denom = np.sqrt(exp_avg_sq.astype(np.float64) / (1 - beta2**t)) + eps
        red = batch_reductions(grads)
        per_tensor = lambda x: np.array([(x[a["offset"] : a["offset"] + a["numel"]] ** 2).sum() for a in LAYOUT])  # noqa: E731
        store.append("scalars", {"step": [step], "wall_time": [0.5 * i], "loss": [1.0 / (i + 1)], "test_error": [0.5 / (i + 1)]})
        store.append(
            "gradient_stats",
            {
                "step": [step],
                **{k: v[None] for k, v in red.items()},
                "sum_w2": per_tensor(weights.astype(np.float64))[None],
                "sum_m_hat2": per_tensor(m_hat)[None],
                "sum_adam_denom2": per_tensor(denom)[None],
            },
        )
        if i % 3 == 0:
            store.append("batch_gradients", {"step": [step], "batch_gradients": grads[None]})
            store.append("weights", {"step": [step], "weights": weights[None]})
            store.append(
                "optimizer_state",
                {"step": [step], "optimizer_step": [t], "exp_avg": exp_avg[None], "exp_avg_sq": exp_avg_sq[None]},
            )
            residual = rng.normal(size=N_SAMPLES).astype(np.float32)
            store.append("residuals", {"step": [step], "residual": residual[None], "rba_weight": np.abs(residual)[None]})
            store.append(
                "activations",
                {"step": [step], "layer_0": np.tanh(rng.normal(size=(1, N_PROBE, 3))).astype(np.float32)},
                dims={"layer_0": ("acapture", "probe", "unit_layer_0")},
            )
    if close:
        store.close("complete")
    else:
        store.abandon()  # left open as a kill leaves it: the lease stays behind, stale
    return path


# -- low-level editing of a store on disk ------------------------------------------------------------
def _read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def _write_json(path: Path, doc: dict) -> None:
    path.write_text(json.dumps(doc, indent=2))


def edit_node(store: Path, node: str, edit) -> None:
    """Apply ``edit(doc)`` to ``node``'s zarr.json and to its copy in the consolidated metadata."""
    node_json = store / node / "zarr.json" if node else store / "zarr.json"
    doc = _read_json(node_json)
    edit(doc)
    _write_json(node_json, doc)
    root = _read_json(store / "zarr.json")
    consolidated = (root.get("consolidated_metadata") or {}).get("metadata") or {}
    if node and node in consolidated:
        edit(consolidated[node])
        _write_json(store / "zarr.json", root)


def set_root_attr(store: Path, key: str, value=None, *, delete: bool = False) -> None:
    def edit(doc):
        if delete:
            doc["attributes"].pop(key, None)
        else:
            doc["attributes"][key] = value

    edit_node(store, "", edit)


def set_group_attr(store: Path, group: str, key: str, value) -> None:
    edit_node(store, group, lambda doc: doc["attributes"].__setitem__(key, value))


def first_chunk(store: Path, array: str) -> Path:
    chunks = sorted(p for p in (store / array / "c").rglob("*") if p.is_file())
    return chunks[0]


def evil_pickle(marker: Path) -> bytes:
    """Bytes that create ``marker`` when unpickled (what a pickle codec would do on decode)."""

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    return pickle.dumps(Evil(), protocol=2)


def shard_of(payload: bytes) -> bytes:
    """A one-inner-chunk shard: payload + index (offset, nbytes) + crc32c, as sharding_indexed lays it out."""
    from numcodecs import CRC32C

    index = np.array([0, len(payload)], dtype="<u8").tobytes()
    return payload + bytes(CRC32C().encode(index))


def drop_manifest(path: str | os.PathLike) -> Path:
    """The store as a killed-then-repaired run leaves it: no chunk manifest, no ``committed`` list.

    Tests that edit arrays through plain zarr use it, so that a check other than the manifest is what
    they exercise (with the manifest, any such edit is refused as a chunk pinnlog did not write).
    """
    path = Path(path)
    (path / ".pinnlog-digests.json").unlink()
    meta = json.loads((path / "zarr.json").read_text())
    meta["attributes"].pop("committed", None)
    meta.pop("consolidated_metadata", None)
    (path / "zarr.json").write_text(json.dumps(meta))
    return path
