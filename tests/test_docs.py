"""Every fenced shell line and every ``python`` snippet of README.md and docs/*.md is checked by a test.

Shell lines (``pinnlog`` lines run in tests/cli/test_documented_commands.py, which this module reuses):

- ``python <script> ...`` / ``python -m <module> ...``: the script's own parser (``build_parser()``, or
  ``parse_args(argv)`` for the typer app ``benchmarks.pinns.run``) must accept the documented arguments
  as written, so a misspelt or removed option fails. Benchmarks and training runs take minutes to hours,
  so each documented script runs once end to end in its quickest mode (:data:`QUICK_RUNS` says where);
  ``--device cuda`` lines are parsed only.
- ``pip install ...``, ``python -m pytest ...`` and ``export NAME=...`` lines are installation, the test
  suite itself and environment set-up: collected and named, not run.

``python`` snippets run in order, one fresh namespace per doc, in a scratch folder holding the sample
stores under the names the snippets use. A snippet that is a piece of the user's own training script
(``model``, ``optimizer``, ``train_loader`` undefined) runs after a small harness (:func:`harness`)
defines those names with a tiny model and data. Sizes that would train for hours are shrunk by the
replacements :data:`SHRINK` lists, each of which must occur in its doc; the lab-specific scheduler,
``/shared`` path and buckets of docs/scaling.md become a LocalCluster, a folder and ``memory://``.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "cli"))
from test_documented_commands import DOCS, ROOT, SAMPLES, SCHEDULER, fenced_blocks, split_command

SHELL_LANGUAGES = {"", "bash", "sh", "shell", "console"}
COMMAND_WORDS = ("pinnlog", "python", "pip", "export")


def shell_lines() -> list[tuple[str, str]]:
    """``(doc name, command)`` for every command line of a fenced shell block (``&&`` splits a line)."""
    found = []
    for doc in DOCS:
        for language, block in fenced_blocks(doc):
            if language.strip() not in SHELL_LANGUAGES:
                continue
            for line in block.splitlines():
                command = line[2:] if line.startswith("$ ") else line
                for part in (p.strip() for p in command.split("&&")):
                    words = part.split()
                    first = next((w for w in words if "=" not in w or w.startswith("-")), "")
                    if first in COMMAND_WORDS:
                        found.append((doc.name, part))
    return found


SHELL = shell_lines()
PYTHON = [(doc, line) for doc, line in SHELL if line.startswith("python ") and not line.startswith("python -m pytest")]


def script_of(line: str) -> tuple[str, list[str]]:
    """``python [-W x] script.py args`` or ``python -m module args`` -> ``(module name or path, args)``."""
    _, words = split_command(line)
    words = words[1:]
    while words and words[0] in ("-W", "-X"):
        words = words[2:]
    if words[0] == "-m":
        return words[1], words[2:]
    return words[0], words[1:]


def load_script(name: str):
    """The module of a documented script: ``benchmarks/x.py`` and ``-m benchmarks.x`` import, examples load by path."""
    if name.endswith(".py") and name.startswith("benchmarks/"):
        name = name.removesuffix(".py").replace("/", ".")
    if not name.endswith(".py"):
        return importlib.import_module(name)
    spec = importlib.util.spec_from_file_location(Path(name).stem, ROOT / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: where each documented script runs end to end in its quickest mode
QUICK_RUNS = {
    "benchmarks/analyzer_throughput.py": "test_analyzer_throughput_runs_on_a_small_store (here)",
    "benchmarks/phase_speed.py": "test_phase_speed_runs_on_a_short_signal (here)",
    "benchmarks/recorder_overhead.py": "test_recorder_overhead_quick (here, slow: the paper's network, minutes)",
    "benchmarks/engine_routes.py": "tests/benchmarks/test_engine_routes.py (--quick --threads 1)",
    "benchmarks/launch_count.py": "tests/benchmarks/test_launch_count.py (--quick --threads 1)",
    "benchmarks/device_check.py": "tests/benchmarks/test_device_check.py (--quick --device cpu: every step, smoke size)",
    "benchmarks.pinns.run": "tests/benchmarks/test_run_cli.py (burgers and helmholtz, 3 and 12 steps)",
    "benchmarks.pinns.step_times": "test_step_times_reads_the_sample_stores (here)",
    "benchmarks.reliability.trust": "tests/reliability/test_trust_subset.py (main's four parts at small sizes)",
    "examples/allen_cahn.py": "tests/recorder/test_allen_cahn_example.py (main --steps 21)",
    "examples/digits_classifier.py": "tests/cli/test_documented_commands.py[examples.md] (main --steps 40, slow)",
}


def test_every_fenced_shell_line_is_collected_and_classified():
    kinds = {}
    for doc, line in SHELL:
        kind = "run" if "pinnlog " in line and not line.startswith("python") else line.split()[0]
        if line.startswith("python -m pytest"):
            kind = "suite"
        kinds.setdefault(kind, []).append(f"{doc}: {line}")
    assert set(kinds) <= {"run", "python", "pip", "export", "suite"}, kinds
    assert len(kinds["python"]) >= 20 and len(kinds["run"]) >= 30
    documented = {script_of(line)[0] for _, line in PYTHON}
    assert documented == set(QUICK_RUNS), "a documented script without a quick run, or a stale QUICK_RUNS entry"
    for place in QUICK_RUNS.values():  # the cited tests exist
        cited = place.split(" ")[0]
        if cited.startswith("tests/"):
            assert (ROOT / cited.split("[")[0]).is_file(), cited
        else:
            assert cited in globals(), cited


@pytest.mark.parametrize("doc, line", PYTHON, ids=[f"{d}: {line[:70]}" for d, line in PYTHON])
def test_every_documented_python_command_parses_with_the_scripts_own_parser(doc, line):
    parse_documented(*script_of(line))


def parse_documented(name: str, args: list[str]):
    """Parse ``args`` as the script ``name`` would; a prefix of an option is not taken for it (a typo)."""
    module = load_script(name)
    if not hasattr(module, "build_parser"):
        return module.parse_args(args)  # typer/click: raises UsageError
    parser = module.build_parser()
    parser.allow_abbrev = False  # `--gigabyte` must not pass as `--gigabytes`
    return parser.parse_args(args)  # argparse exits 2 on an unknown or misspelt option


@pytest.mark.parametrize("bad", [["--gigabyte", "1"], ["--scheduler", "thread"], ["--distribute"]])
def test_a_misspelt_option_fails_the_parse(bad, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_documented("benchmarks/analyzer_throughput.py", bad)
    assert exit_info.value.code == 2


@pytest.mark.parametrize("bad", [["--config", "cpu_small"], ["--step", "3"], ["--rba", "--vanila"]])
def test_a_misspelt_option_of_the_typer_script_fails_the_parse(bad):
    with pytest.raises(Exception) as info:
        parse_documented("benchmarks.pinns.run", ["allen_cahn", *bad])
    assert "UsageError" in {c.__name__ for c in type(info.value).__mro__}  # typer vendors click


def test_analyzer_throughput_runs_on_a_small_store(tmp_path):
    # exits 0 only when its SNR agrees with its own numpy computation and the memory limit held; in a fresh
    # process, as documented: its peak RSS would otherwise be this pytest process's
    script = ROOT / "benchmarks" / "analyzer_throughput.py"
    arguments = ["--gigabytes", "0.01", "--entropy-repeats", "1", "--workdir", str(tmp_path)]
    done = subprocess.run([sys.executable, "-W", "ignore", str(script), *arguments], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not list(tmp_path.iterdir())  # the store is deleted after


def test_phase_speed_runs_on_a_short_signal(capsys):
    load_script("benchmarks/phase_speed.py").main(["--points", "1000", "--repeat", "1", "--pelt-timeout", "20"])
    out = capsys.readouterr().out
    truth = re.search(r"true boundaries (\[[\d, ]*\])", out).group(1)
    assert f"boundaries {truth}" in out.split("detect_phases:")[1].splitlines()[0]  # found on the noisy signal
    assert "ruptures KernelCPD" in out and "ruptures Pelt" in out


def test_step_times_reads_the_sample_stores(capsys):
    import xarray as xr

    stores = [SAMPLES / "ac_vanilla.zarr", SAMPLES / "ac_rba.zarr"]
    if not stores[0].is_dir():
        pytest.skip("sample_logs/ is not in this checkout")
    load_script("benchmarks.pinns.step_times").main([str(s) for s in stores])
    lines = capsys.readouterr().out.splitlines()
    for store, line in zip(stores, lines, strict=True):
        captures = xr.open_zarr(store, group="gradient_stats")["step"].size  # plain xarray: dim "capture"
        wall = float(xr.open_zarr(store, group="scalars")["wall_time"][-1])
        assert line.startswith(f"{store}: ") and f"{captures} captures, run {wall:.0f} s" in line


@pytest.mark.slow
def test_recorder_overhead_quick(capsys):
    load_script("benchmarks/recorder_overhead.py").main(["--quick", "--threads", "1"])
    out = capsys.readouterr().out
    assert "final weights bitwise identical: True" in out


# ---------------------------------------------------------------- python snippets

SNIPPETS = {doc.name: [b for lang, b in fenced_blocks(doc) if lang.strip() == "python"] for doc in DOCS}
SNIPPETS = {name: blocks for name, blocks in SNIPPETS.items() if blocks}
#: (documented, run here): sizes that would train for hours, and the lab's machines of docs/scaling.md
SHRINK = {
    "recording.md": [("range(300_000)", "range(4)")],
    "phases.md": [("every=1000", "every=2")],
    "scaling.md": [
        ("max_steps=20_000", "max_steps=12"),
        ("/shared/runs/", "shared/runs/"),
        ('"s3://lab-runs/', '"memory://pinnlog-snippets/s3/'),
        ('"gs://lab-runs/', '"memory://pinnlog-snippets/gs/'),  # holds a copy of a sample run
    ],
}
#: sample stores copied into each doc's scratch folder under the names its snippets use
STORES = {
    "README.md": {"run.zarr": "ac_rba.zarr"},
    "metrics.md": {"runs/ac_rba.zarr": "ac_rba.zarr", "runs/live.zarr": "ac_rba.zarr"},
    "phases.md": {"sample_logs/helmholtz_rba.zarr": "helmholtz_rba.zarr"},
    "report.md": {"runs/ac_rba.zarr": "ac_rba.zarr", "runs/ac.zarr": "ac_vanilla.zarr"},
    "scaling.md": {"shared/runs/ac.zarr": "ac_vanilla.zarr"},
}
# report.md: two whole reports (analyze_run, compare_runs), 20-60 s on 2 busy cores. scaling.md: its Lightning
# fit, DDP group and unclosed bucket Recorder leave the training side running in this process (pinnlog never
# runs recorder and analyzer in one process); a report drawn later by the same pytest process then hangs in its
# forked drawing workers, so it runs only under -m slow, where nothing draws after it.
SLOW_SNIPPETS = {"report.md", "scaling.md"}


def harness(doc: str, monkeypatch, request) -> dict:
    """The names a doc's snippets take from the user's own script: a tiny tanh MLP, its data and losses."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    names = {"torch": torch, "model": model, "optimizer": torch.optim.Adam(model.parameters(), lr=1e-3)}
    points = torch.rand(25_600, 2)  # the docs' Allen-Cahn set: K = 100 batches of 256

    def pde_residual(model, pts=points):
        return model(pts).squeeze(-1) - pts[..., 0]

    def full_loss(model):
        return (pde_residual(model) ** 2).mean()

    names.update(points=points, pde_residual=pde_residual, full_loss=full_loss)
    if doc == "format.md":  # a store of the current format (1.1+: names as coordinates) of a model with `layers`
        from pinnlog.recorder import Recorder

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.layers = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))

            def forward(self, x):
                return self.layers(x)

        net = Net()
        with Recorder(
            "run.zarr", net, torch.optim.SGD(net.parameters(), lr=0.1), lambda m, b: (m(points[:8]) ** 2).mean(), 2, schedule=1
        ) as rec:
            rec.step(0, loss=1.0)
    if doc == "README.md":
        small = points[:800]  # 100 batches of 8: the snippet's K = 100, kept cheap
        names.update(
            batches=small.view(100, 8, 2),
            residual_loss=lambda model, batch: (pde_residual(model, batch) ** 2).mean(),
            boundary_loss=lambda model: (model(torch.zeros(4, 2)) ** 2).mean(),
            pde_residual=lambda model: pde_residual(model, small),
            rba_weights=torch.ones(800),
            x_collocation=small,
            n_steps=4,
            rel_l2=0.5,
        )
    if doc == "recording.md":
        names.update(x_ic=torch.rand(16, 2), u_ic=torch.rand(16), l2_error=0.5)
    if doc == "phases.md":
        from pinnlog.recorder import Recorder

        rec = Recorder(
            "runs/ac.zarr", model, names["optimizer"], lambda m, b: full_loss(m), n_batches=2, schedule=1, on_error="raise"
        )
        for step in range(2):  # the run is under way when the snippet looks
            rec.step(step, loss=1.0)
        rec.flush()
        names.update(rec=rec, steps=4, fixed=[points[:64], points[64:128]])
    if doc == "scaling.md":
        distributed = pytest.importorskip("distributed")
        pytest.importorskip("lightning")
        cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0")
        request.addfinalizer(cluster.close)
        request.addfinalizer(_end_the_training_side)
        SHRINK_HERE.append((f'"{SCHEDULER}"', f'"{cluster.scheduler_address}"'))
        import fsspec

        fsspec.filesystem("memory").put(str(SAMPLES / "ac_rba.zarr"), "/pinnlog-snippets/gs/ac.zarr", recursive=True)
        import lightning.pytorch as L

        class Module(L.LightningModule):
            def __init__(self):
                super().__init__()
                self.net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))

            def training_step(self, batch, batch_idx):
                x, y = batch
                return torch.nn.functional.mse_loss(self.net(x).squeeze(-1), y)

            def configure_optimizers(self):
                return torch.optim.Adam(self.parameters(), lr=1e-3)

        data = torch.utils.data.TensorDataset(points[:640], points[:640, 0])
        net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
        for name, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "RANK": "0", "WORLD_SIZE": "1"}.items():
            monkeypatch.setenv(name, value)
        names.update(
            batch_loss=lambda m, b: full_loss(m),
            train_loader=torch.utils.data.DataLoader(data, batch_size=64),
            module=Module(),
            net=net,
            optimizer=torch.optim.Adam(net.parameters(), lr=1e-3),
            loss_of=lambda m, batch: (m(batch).squeeze(-1) ** 2).mean(),
            my_batches=[points[:64], points[64:128]],
            my_shard=points[:256],
            n_steps=3,
        )
    return names


def _end_the_training_side() -> None:
    """Close what the scaling.md snippets leave running (its Recorder on a bucket is never closed; its
    process group is never destroyed). The recorder and the analyzer never share a process in pinnlog's
    design; left running here, their threads are copied into the report's forked drawing workers by later
    tests of this process, which then hang."""
    import torch.distributed as dist

    from pinnlog.recorder import recorder as recorder_module

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        recorder_module._close_forgotten_recorders()
    if dist.is_initialized():
        dist.destroy_process_group()


SHRINK_HERE: list[tuple[str, str]] = []


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_every_shrink_replaces_documented_text():
    for doc, pairs in SHRINK.items():
        text = "".join(SNIPPETS[doc])
        for documented, _ in pairs:
            assert documented in text, f"{doc}: {documented!r} is no longer documented; update SHRINK"
    assert any(SCHEDULER in block for block in SNIPPETS["scaling.md"])


@pytest.mark.parametrize("doc", [pytest.param(d, marks=[pytest.mark.slow] if d in SLOW_SNIPPETS else [], id=d) for d in SNIPPETS])
def test_the_python_snippets_of_a_doc_run_in_order(doc, tmp_path, monkeypatch, request):
    if not (SAMPLES / "ac_rba.zarr").is_dir():
        pytest.skip("sample_logs/ is not in this checkout")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    for name, sample in STORES.get(doc, {}).items():
        shutil.copytree(SAMPLES / sample, tmp_path / name)
    SHRINK_HERE.clear()
    namespace = harness(doc, monkeypatch, request)
    replacements = SHRINK.get(doc, []) + SHRINK_HERE
    try:
        for number, snippet in enumerate(SNIPPETS[doc], start=1):
            for documented, here in replacements:
                snippet = snippet.replace(documented, here)
            code = compile(snippet, f"{doc} snippet {number}", "exec")
            exec(code, namespace)  # the docs' own code
    finally:
        rec = namespace.get("rec")
        if rec is not None and hasattr(rec, "close"):
            rec.close()
        import matplotlib.pyplot as plt

        plt.close("all")
        if doc == "scaling.md":
            import fsspec
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
            memory = fsspec.filesystem("memory")
            if memory.exists("/pinnlog-snippets"):
                memory.rm("/pinnlog-snippets", recursive=True)
