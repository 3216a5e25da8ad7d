"""pinnlog on a network that is not a PINN: an MLP that classifies scikit-learn's 8x8 digits.

A plain PyTorch loop (mini-batches of 64, Adam, cross-entropy) records with pinnlog, then the run is
analysed like any other. The K = 10 fixed batches whose gradients pinnlog compares are 10 slices of 140
training images, kept for the whole run; the per-sample "residual" is each training image's
cross-entropy; the probe whose activations give the mutual information is the training set.

    python examples/digits_classifier.py                       # runs/digits.zarr + runs/digits_report/
    python examples/digits_classifier.py --steps 600 --out /tmp/digits.zarr

Needs ``pip install 'pinnlog[recorder]' scikit-learn``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn

from pinnlog.recorder import Recorder, logspaced

N_TRAIN, K, MINIBATCH = 1400, 10, 64


def load(seed: int = 0):
    """Digits as float tensors in [0, 1]: (train x, train y, test x, test y), split by a fixed permutation."""
    digits = load_digits()
    order = np.random.default_rng(seed).permutation(len(digits.target))
    x = torch.tensor(digits.data[order] / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target[order], dtype=torch.long)
    return x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:]


def make_model() -> nn.Module:
    return nn.Sequential(
        nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10)
    )


def test_error(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Share of misclassified test images."""
    with torch.no_grad():
        return float((model(x).argmax(dim=1) != y).float().mean())


def train(out: str | Path, steps: int = 3000, seed: int = 0, overwrite: bool = True) -> Path:
    """Train and record; returns the run store's path."""
    torch.manual_seed(seed)
    x_train, y_train, x_test, y_test = load(seed)
    model = make_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    per_batch = N_TRAIN // K
    loss_fn = nn.functional.cross_entropy

    def batch_loss(model, b):  # fixed batch b: training images b*140 .. b*140+139, as training weighs them
        part = slice(b * per_batch, (b + 1) * per_batch)
        return loss_fn(model(x_train[part]), y_train[part])

    def residuals(model):  # one number per training image
        return loss_fn(model(x_train), y_train, reduction="none")

    captures = logspaced(steps - 1, 150)
    snapshots = logspaced(steps - 1, 12)
    generator = torch.Generator().manual_seed(seed)
    with Recorder(
        out,
        model,
        optimizer,
        batch_loss,
        n_batches=K,
        schedule=captures,
        raw_schedule=snapshots,
        residuals=residuals,
        probe=x_train,
        probe_schedule=logspaced(steps - 1, 40),
        overwrite=overwrite,
        config={
            "example": "digits_classifier",
            "dataset": "sklearn load_digits",
            "minibatch": MINIBATCH,
            "n_train": N_TRAIN,
            "lr": 1e-3,
        },
    ) as rec:
        order = torch.randperm(N_TRAIN, generator=generator)
        cursor = 0
        for step in range(steps):
            if cursor + MINIBATCH > N_TRAIN:  # a new epoch: reshuffle the mini-batches (not the K fixed batches)
                order, cursor = torch.randperm(N_TRAIN, generator=generator), 0
            index = order[cursor : cursor + MINIBATCH]
            cursor += MINIBATCH
            optimizer.zero_grad()
            loss = loss_fn(model(x_train[index]), y_train[index])
            loss.backward()
            optimizer.step()
            scalars = {"loss": loss}
            if step % 10 == 0 or step == steps - 1:
                scalars["test_error"] = test_error(model, x_test, y_test)
            rec.step(step, **scalars)
    return Path(out) if "://" not in str(out) else out


def build_parser() -> argparse.ArgumentParser:
    """The command line this script accepts (tests/test_docs.py parses the documented commands with it)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/digits.zarr", help="run store to write (replaced if it exists)")
    parser.add_argument("--steps", type=int, default=3000, help="optimizer steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-report", action="store_true", help="record only; do not run pinnlog analyze")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(1)  # a 64-wide MLP: more threads only add synchronisation
    path = train(args.out, args.steps, args.seed)
    print(f"recorded {path}")
    if not args.no_report:
        from pinnlog.analyzer.report import analyze_run

        report = analyze_run(path)
        for run in report.summary["runs"]:
            for phase in run["phases"] or []:
                print(
                    f"{phase['label']:>16}: steps {phase['first_step']:>5} to {phase['last_step']:>5}, "
                    f"median SNR {phase['median_snr']:.3g}"
                )
            print("final:", {k: v for k, v in run["final"].items() if v is not None})
        print(f"wrote {report.html}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
