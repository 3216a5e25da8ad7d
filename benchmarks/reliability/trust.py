"""Issue 13 campaign: can a user trust what a store says? Prints the figures of docs/reliability.md.

1. bit flips: random single-bit flips in random chunk files of every array of a healthy store; a flip is
   detected when ``verify`` exits 1 *and* ``open_run`` + reading that array raises ``CorruptStoreError``;
2. false alarms: ``verify`` on stores written by the real recorder (Allen-Cahn PINN with a shared
   initial-condition loss, a 3-class classifier; raw snapshots and weights recorded), target 0;
3. live writer: ``--repair`` and ``overwrite=True`` racing a live writer, rows lost (target 0);
4. peak RSS of ``pinnlog info`` on the worst metadata the caps allow (a root zarr.json of
   METADATA_MAX_BYTES holding one long list of small numbers), target <= 200 MB;
5. tracebacks over the hostile corpus x commands, and exits outside the documented set, target 0
   (``benchmarks/reliability/corpus_commands.py``);
6. victim files changed by outputs written through links, target 0 (``benchmarks/reliability/writes_outside.py``).

Run from the repository root::

    python -m benchmarks.reliability.trust --stores 50 --flips 400
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "reliability"))
sys.path.insert(0, str(ROOT / "tests" / "recorder"))


def bit_flips(work: Path, n_flips: int, seed: int) -> tuple[int, int]:
    from corpus_tools import write_healthy_store

    from pinnlog.analyzer.errors import CorruptStoreError
    from pinnlog.analyzer.store import open_run, verify_run

    store = write_healthy_store(work / "flip.zarr")
    chunks = [p for p in store.rglob("*") if p.is_file() and "/c/" in str(p.relative_to(store))]
    rng = random.Random(seed)
    detected = 0
    for _ in range(n_flips):
        chunk = rng.choice(chunks)
        original = chunk.read_bytes()
        data = bytearray(original)
        bit = rng.randrange(len(data) * 8)
        data[bit // 8] ^= 1 << (bit % 8)
        chunk.write_bytes(bytes(data))
        rel = chunk.relative_to(store).parts
        group, var = rel[0], rel[1]
        refused = False
        try:
            run = open_run(store)
            if group in run.children and var in run[group].to_dataset().variables:
                _ = run[group].to_dataset()[var].values
        except CorruptStoreError:
            refused = True
        detected += verify_run(store).exit_code == 1 and refused
        chunk.write_bytes(original)
    return detected, n_flips


def recorder_stores(work: Path, n: int) -> tuple[int, int, list[str]]:
    import torch
    from recorder_problems import AllenCahn, Blobs, TanhMLP, classifier

    from pinnlog.analyzer.store import verify_run
    from pinnlog.recorder import Recorder

    alarms, notes = 0, []
    for seed in range(n):
        torch.manual_seed(seed)
        if seed % 2 == 0:
            problem = AllenCahn(seed=seed)
            model = TanhMLP([2, 16, 16, 1])
            shared = problem.ic_loss
        else:
            problem = Blobs(seed=seed)
            model = classifier(seed)
            shared = None
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        path = work / f"rec{seed}.zarr"
        with Recorder(
            path,
            model,
            optimizer,
            problem.batch_loss,
            problem.n_batches,
            shared_loss=shared,
            schedule=range(0, 30, 1),
            raw_schedule=range(0, 30, 5),
        ) as rec:
            for step in range(30):
                optimizer.zero_grad()
                loss = problem.full_loss(model)
                loss.backward()
                optimizer.step()
                rec.step(step, loss=loss)
        report = verify_run(path)
        if not report.healthy:
            alarms += 1
            notes.append(f"seed {seed}: " + "; ".join(f"{f.where} {f.detail}" for f in report.problems()))
        shutil.rmtree(path)
    return alarms, n, notes


def live_writer(work: Path) -> dict[str, int]:
    from corpus_tools import LAYOUT

    from pinnlog.analyzer.errors import PinnlogError
    from pinnlog.analyzer.store import open_run, repair_run
    from pinnlog.analyzer.store.write import RunWriter

    lost = {}
    for attack in ("repair", "overwrite"):
        path = work / f"live_{attack}.zarr"
        store = RunWriter(path, {"layout": LAYOUT, "n_batches": 4})
        refused = 0
        for i in range(400):
            store.append("scalars", {"step": [i], "wall_time": [float(i)], "loss": [1.0 + i]})
            if i % 40 == 20:
                try:
                    if attack == "repair":
                        repair_run(path)
                    else:
                        RunWriter(path, {}, overwrite=True)
                except PinnlogError:
                    refused += 1
        store.close()
        loss = open_run(path)["scalars"]["loss"].values
        lost[attack] = int(400 - np.isfinite(loss).sum() + (loss != 1.0 + np.arange(400)).sum())
        lost[f"{attack} refused"] = refused
    return lost


def info_rss(work: Path) -> tuple[float, int]:
    from corpus_tools import write_healthy_store

    from pinnlog.analyzer.store.format import METADATA_MAX_BYTES

    store = write_healthy_store(work / "fat.zarr")
    doc = json.loads((store / "zarr.json").read_text())
    doc.pop("consolidated_metadata", None)
    base = len(json.dumps(doc))
    doc["attributes"]["config"] = {"list": [1] * ((METADATA_MAX_BYTES - base - 100) // 2)}
    (store / "zarr.json").write_text(json.dumps(doc, separators=(",", ":")))
    size = (store / "zarr.json").stat().st_size
    code = (
        "import resource, sys; from pinnlog.analyzer.cli import main\n"
        "try:\n    main(['info', sys.argv[1]])\nexcept SystemExit:\n    pass\n"
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork + exec, so a child of a big parent
        # (the test process with torch loaded) would report the parent's peak
        "print('PEAK_RSS_KB', next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(store)], capture_output=True, text=True, check=False)
    rss_kb = int(next(line.split()[1] for line in out.stdout.splitlines() if line.startswith("PEAK_RSS_KB")))
    return rss_kb / 1024, size


def build_parser() -> argparse.ArgumentParser:
    """The command line this script accepts (tests/test_docs.py parses the documented commands with it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", type=int, default=50)
    parser.add_argument("--flips", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        detected, flips = bit_flips(work, args.flips, args.seed)
        print(
            f"bit flips detected (verify exit 1 and analyze refuses): {detected}/{flips} ({100 * detected / flips:.1f} %)",
            flush=True,
        )
        lost = live_writer(work)
        print(
            f"live writer, 400 rows: rows lost {lost['repair']} with --repair racing (refused {lost['repair refused']}/10), "
            f"{lost['overwrite']} with overwrite=True racing (refused {lost['overwrite refused']}/10)",
            flush=True,
        )
        rss, size = info_rss(work)
        print(f"peak RSS of `pinnlog info` on a {size / 2**20:.1f} MiB root zarr.json: {rss:.0f} MB", flush=True)
        alarms, n, notes = recorder_stores(work, args.stores)
        print(f"false alarms on {n} recorder-written stores: {alarms}", flush=True)
        for note in notes[:5]:
            print("  " + note[:300])
    from benchmarks.reliability import corpus_commands, writes_outside

    writes_outside.main([])
    corpus_commands.main([])
    return 0


if __name__ == "__main__":
    sys.exit(main())
