"""benchmarks/device_check.py: the H200 check of issue 14 as one call, run here at smoke size on a CPU.

The whole orchestration runs once (``--quick --device cpu``, every step a real subprocess); the failure,
timeout and budget paths run on a small table of ``python -c`` steps; the wheel list is checked against
pinnlog's requirements followed through importlib.metadata. pip download is never run here (CI has no index).
"""

from __future__ import annotations

import ast
import importlib
import math
import os
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from benchmarks import device_check
from benchmarks.device_check import STEPS, Step

ROOT = Path(__file__).resolve().parents[2]
NUMBER = r"[-+]?(?:\d+\.?\d*|nan|inf)"


#: The steps the default suite runs at smoke size: those the targets table reads (each step is a fresh process
#: that imports torch, ~7 s). The summary's lines of launch_count and engine_routes are checked on their real
#: output in-process (test_launch_count.py, test_engine_routes.py), the CUDA tests' counts by judge() below;
#: every100 and paper-overlap are `paper` with other arguments, which
#: test_each_steps_arguments_parse_with_its_scripts_own_parser checks; -m slow runs all eight.
QUICK_ONLY = ("environment", "overhead-a-d", "paper")


def run_quick(out: Path, *extra: str) -> tuple[int, str]:
    """``device_check.py --quick --device cpu --out out *extra`` in a fresh process: (exit code, console output)."""
    command = [sys.executable, "benchmarks/device_check.py", "--quick", "--device", "cpu", "--out", str(out), *extra]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=400)
    return done.returncode, done.stdout + done.stderr


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One ``--quick --device cpu --only QUICK_ONLY`` run: (exit code, console output, OUT folder)."""
    pytest.importorskip("torch")
    out = tmp_path_factory.mktemp("device-check")
    return (*run_quick(out, "--only", ",".join(QUICK_ONLY)), out)


def sections(summary: str) -> dict[str, str]:
    """The summary's ``### step: status`` sections, by step name."""
    parts = re.split(r"^### ", summary, flags=re.M)[1:]
    return {part.split(":", 1)[0]: part for part in parts}


def step_rows(summary: str) -> dict[str, str]:
    """``{step: status}`` from the summary's table of steps."""
    return dict(re.findall(r"^\| ([\w-]+) \| ([^|]+?) \| [\d.]+ \| `", summary, re.M))


def test_the_quick_run_leaves_two_files_with_every_steps_status(quick_run):
    code, output, out = quick_run
    assert code == 0, output
    assert sorted(p.name for p in out.iterdir()) == ["device_check.log", "summary.md"]  # the run tool returns 8 files at most
    summary, log = (out / "summary.md").read_text(), (out / "device_check.log").read_text()
    rows = step_rows(summary)
    assert list(rows) == [step.name for step in STEPS]
    for step in STEPS:
        assert rows[step.name] == ("ok" if step.name in QUICK_ONLY else "skipped: not in --only")
        assert f"=== {step.name}: {rows[step.name]}" in log
    assert "--quick" in summary and "not issue 14's figures" in summary


@pytest.mark.slow
def test_every_step_passes_at_smoke_size(tmp_path):
    pytest.importorskip("torch")
    code, output = run_quick(tmp_path)
    assert code == 0, output
    rows = step_rows((tmp_path / "summary.md").read_text())
    assert rows == {step.name: "ok" for step in STEPS}
    found = sections((tmp_path / "summary.md").read_text())
    for name in ("every100", "paper", "paper-overlap"):
        assert "final weights bitwise identical: True" in found[name]
    routes = dict(re.findall(rf"^    (\S.*?)\s+{NUMBER} ms\s+ratio\s+({NUMBER})", found["engine-routes"], re.M))
    assert {"plain step (gradient)", "loop", "stacked", "stacked, chunks of 25", "func"} <= set(routes)
    assert all(math.isfinite(float(v)) and float(v) > 0 for v in routes.values())
    assert re.search(rf"\s+every100\s+\d+ steps, +\d+ captures: ({NUMBER})", found["launch-count"])
    # the CUDA tests ran (and skipped, with no GPU here) rather than erroring at collection
    assert re.search(r"(\d+) skipped", found["cuda-tests"]) and "error" not in found["cuda-tests"].lower()


def test_the_quick_run_repeats_each_benchmarks_ratio_lines_as_finite_numbers(quick_run):
    out = quick_run[2]
    summary = (out / "summary.md").read_text()
    found = sections(summary)
    capture = re.findall(
        rf"\[(loop|vectorised)\] capture( \(shared_loss\))? / plain(?: step)?\s+= ({NUMBER})", found["overhead-a-d"]
    )
    assert {(engine, bool(shared)) for engine, shared, _ in capture} == {
        (e, s) for e in ("loop", "vectorised") for s in (True, False)
    }
    memory = re.findall(rf"extra [\d,-]+ B = ({NUMBER}) x target", found["overhead-a-d"])
    assert len(memory) == 2
    for name in ("paper",):
        ratio = re.search(rf"^\(b\) .* ratio ({NUMBER}) ", found[name], re.M)
        share = re.search(rf"^\(c\) .* = ({NUMBER}) % of a plain step", found[name], re.M)
        assert ratio and share, found[name]
        assert "final weights bitwise identical: True" in found[name]
        assert all(math.isfinite(float(m.group(1))) for m in (ratio, share))
    values = [float(v) for _, _, v in capture] + [float(v) for v in memory]
    assert all(math.isfinite(v) and v > 0 for v in values)
    assert "PROBLEM" not in found["environment"] and "import pinnlog.recorder: ok" in found["environment"]


def test_the_targets_table_holds_the_measured_figures_and_the_20000_step_estimate(quick_run):
    torch = pytest.importorskip("torch")
    del torch
    from benchmarks.recorder_overhead import CADENCES

    summary = (quick_run[2] / "summary.md").read_text()
    found = sections(summary)
    shared = float(re.search(rf"\[vectorised\] capture \(shared_loss\) / plain\s+= ({NUMBER})", found["overhead-a-d"]).group(1))
    row = re.search(rf"^\| one capture / plain full-batch step, vectorised, shared_loss \| ({NUMBER}) \| ≤ 3 \|", summary, re.M)
    assert float(row.group(1)) == shared
    paper_20000 = sum(1 for step in range(20_000) if CADENCES["paper"](step))
    for name, label in (("paper", "synchronous"),):
        line = re.search(r"^\(b\) .*\] (\d+) steps, .*\((\d+) captures\).* ratio ([\d.]+) ", found[name], re.M)
        steps, captures, ratio = int(line.group(1)), int(line.group(2)), float(line.group(3))
        assert captures == sum(1 for step in range(steps) if CADENCES["paper"](step))
        expected = 1 + (ratio - 1) * (paper_20000 / captures) * (steps / 20_000)
        row = re.search(
            rf"^\| whole run / plain, paper's cadence, {label}.*\n\| the same over 20,000 steps .*?\| ({NUMBER}) \|",
            summary,
            re.M,
        )
        assert row, summary
        assert float(row.group(1)) == pytest.approx(expected, abs=6e-4)  # the table rounds to 3 decimals, the ratio too
    # the steps --only left out are "not measured", not numbers
    assert re.search(r"^\| whole run / plain, every\(100\), vectorised \(not measured\) \| — \|", summary, re.M)
    assert re.search(r"^\| whole run / plain, paper's cadence, overlap=True \| not measured \|", summary, re.M)


@pytest.mark.parametrize("variant", ["command", "quick"])
@pytest.mark.parametrize("step", STEPS, ids=[step.name for step in STEPS])
def test_each_steps_arguments_parse_with_its_scripts_own_parser(step, variant):
    # the --device cuda commands never run here: a misspelt option must still fail a test
    pytest.importorskip("torch")
    words = device_check.expand(getattr(step, variant), "cuda")
    assert words[0] == sys.executable
    if words[1:3] == ["-m", "pytest"]:
        files = [w for w in words if w.endswith(".py")]
        assert {"tests/recorder/test_recorder_cuda.py", "tests/recorder/test_recorder_engines.py"} <= set(files)
        assert words[words.index("-k") + 1] == "cuda"
        return
    module = importlib.import_module(words[1].removesuffix(".py").replace("/", "."))
    parser = module.build_parser()
    parser.allow_abbrev = False
    arguments = parser.parse_args(words[2:])
    assert arguments.device == "cuda"
    if variant == "command" and step.name in ("every100", "paper", "paper-overlap"):  # --b-steps sets their length
        assert arguments.steps == 2000
        assert device_check.expand(step.command, "cuda", b_steps=500)[words.index("--steps") + 1] == "500"
    assert (
        getattr(arguments, "quick", False)
        or getattr(arguments, "tiny", False)
        or variant == "command"
        or step.kind == "environment"
    )


@pytest.mark.parametrize("n_steps", [0, 1, 2, 3, 20, 299, 300, 301, 400, 401, 2_000, 20_000])
def test_the_capture_count_formula_counts_the_paper_cadence_schedule(n_steps):
    pytest.importorskip("torch")
    from benchmarks.recorder_overhead import CADENCES

    assert device_check.paper_cadence_captures(n_steps) == sum(1 for step in range(n_steps) if CADENCES["paper"](step))


@pytest.mark.parametrize(
    "device, last_line, status",
    [
        ("cuda", "3 passed, 28 deselected in 5.10s", "ok"),
        ("cuda", "2 passed, 1 skipped, 28 deselected in 5.10s", "failed (1 CUDA tests skipped on a CUDA device)"),
        ("cuda", "3 skipped, 28 deselected in 2.36s", "failed (3 CUDA tests skipped on a CUDA device)"),
        ("cuda", "28 deselected in 2.36s", "failed (no test passed)"),
        ("cpu", "3 skipped, 28 deselected in 2.36s", "ok"),  # no GPU here: the CUDA tests skip, as they should
    ],
)
def test_on_a_gpu_a_skipped_cuda_test_fails_the_step(device, last_line, status):
    tests = next(step for step in STEPS if step.kind == "tests")
    lines = ["..s", "SKIPPED [1] tests/recorder/test_recorder_cuda.py:43: needs a CUDA device", last_line]
    assert device_check.judge(tests, 0, lines, device, 90) == status
    assert device_check.judge(tests, 1, lines, device, 90) == "failed (rc 1)"
    assert device_check.judge(tests, None, lines, device, 90) == "timed out after 90 s"


def _steps(*commands: tuple[str, float]) -> tuple[Step, ...]:
    return tuple(
        Step(f"s{i}", "test step", ("{python}", "-c", code), ("{python}", "-c", code), timeout, "routes")
        for i, (code, timeout) in enumerate(commands)
    )


def test_a_failing_step_is_reported_and_the_steps_after_it_still_run(tmp_path, capsys):
    steps = _steps(
        ("print('median of 1; first')", 60),
        ("import sys; print('median of 1; broken'); sys.exit(3)", 60),
        ("print('median of 1; third ran')", 60),
    )
    code = device_check.main(["--quick", "--device", "cpu", "--out", str(tmp_path)], steps=steps)
    summary = (tmp_path / "summary.md").read_text()
    assert code == 1
    assert step_rows(summary) == {"s0": "ok", "s1": "failed (rc 3)", "s2": "ok"}
    assert "median of 1; third ran" in (tmp_path / "device_check.log").read_text()
    assert "### s1: failed (rc 3)" in summary and "[last lines]" in summary.split("### s1")[1]


def test_a_step_past_its_timeout_is_killed_and_a_spent_budget_skips_the_rest(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(device_check, "MIN_STEP_SECONDS", 0.5)
    steps = _steps(
        ("import time; print('median of 1; started', flush=True); time.sleep(120)", 120),  # cut to the budget
        ("print('never')", 60),
        ("print('never')", 60),
    )
    code = device_check.main(["--quick", "--device", "cpu", "--out", str(tmp_path), "--budget", "2"], steps=steps)
    rows = step_rows((tmp_path / "summary.md").read_text())
    assert code == 1
    assert rows["s0"] == "timed out after 2 s"
    assert rows["s1"].startswith("skipped: budget") and rows["s2"].startswith("skipped: budget")
    log = (tmp_path / "device_check.log").read_text()
    assert "    median of 1; started" in log and "    never" not in log  # output before the kill is kept


def test_only_runs_the_named_steps(tmp_path, capsys):
    steps = _steps(("print('a')", 60), ("print('b')", 60))
    assert device_check.main(["--quick", "--device", "cpu", "--out", str(tmp_path), "--only", "s1"], steps=steps) == 0
    assert step_rows((tmp_path / "summary.md").read_text()) == {"s0": "skipped: not in --only", "s1": "ok"}


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--only", "nosuch"], "--only: unknown step nosuch"),
        (["--wheels", "{tmp}"], "no .whl files there"),
        ([], "--out is required"),
    ],
)
def test_command_line_mistakes_exit_2_with_one_line(arguments, message, tmp_path, capsys):
    arguments = [a.replace("{tmp}", str(tmp_path)) for a in arguments]
    if "--out" not in arguments and message != "--out is required":
        arguments += ["--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exit_info:
        device_check.main(arguments)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert message in error and ": error: " in error


# ---------------------------------------------------------------- the wheels the device image lacks

#: Files whose imports run on the device: the recorder, the store it writes with, the steps' benchmarks, the
#: CUDA tests with their conftests and helpers.
DEVICE_SOURCES = [
    "recorder",
    "analyzer/__init__.py",
    "analyzer/errors.py",
    "analyzer/datasets.py",
    "analyzer/store",
    "benchmarks/paper_problem.py",
    "benchmarks/recorder_overhead.py",
    "benchmarks/engine_routes.py",
    "benchmarks/launch_count.py",
    "benchmarks/pinns",
    "tests/conftest.py",
    "tests/benchmarks/conftest.py",
    "tests/recorder/conftest.py",
    "tests/recorder/recorder_problems.py",
    "tests/reliability/corpus_tools.py",
    *device_check.cuda_test_files(),
]


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_distributions() -> set[str]:
    """The installed distributions that the device's source files import at the top or inside functions."""
    files = []
    for source in DEVICE_SOURCES:
        path = ROOT / source
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path] if path.is_file() else []
    modules = set()
    for file in files:
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    owners = metadata.packages_distributions()
    # a module no distribution here provides is the checkout's own (benchmarks, recorder_problems) or an optional import
    return {_normal(dist) for module in modules - set(sys.stdlib_module_names) for dist in owners.get(module, [])} - {"pinnlog"}


def requirement_closure(roots: list[str]) -> set[str]:
    """Distributions needed by ``roots`` (requirement strings) on CPython 3.12 / Linux, followed through the
    metadata installed here; the walk stops at the device image's distributions, whose own needs the image meets."""
    from packaging.markers import default_environment
    from packaging.requirements import Requirement

    environment = {**default_environment(), "python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux"}
    needed: set[str] = set()
    todo = [Requirement(text) for text in roots]
    while todo:
        requirement = todo.pop()
        name = _normal(requirement.name)
        if name in needed:
            continue
        needed.add(name)
        if name in device_check.DEVICE_IMAGE_PACKAGES:
            continue
        for text in metadata.requires(requirement.name) or []:
            child = Requirement(text)
            extras = requirement.extras or {""}
            if child.marker is None or any(child.marker.evaluate({**environment, "extra": extra}) for extra in extras):
                todo.append(child)
    return needed


def test_the_wheel_list_is_exactly_what_the_image_lacks():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    needed = requirement_closure([*declared, *sorted(imported_distributions())])
    missing = needed - device_check.DEVICE_IMAGE_PACKAGES
    assert missing == {_normal(name) for name in device_check.WHEELS}, "update WHEELS in benchmarks/device_check.py"
    for name in device_check.WHEELS:  # --fetch-wheels pins each to the version installed here
        assert metadata.version(name)


def test_the_image_list_is_normalised_and_the_wheels_are_not_in_it():
    assert all(name == _normal(name) for name in device_check.DEVICE_IMAGE_PACKAGES)
    assert {"torch", "numpy", "xarray", "pytest", "pytest-timeout", "click"} <= device_check.DEVICE_IMAGE_PACKAGES
    assert not set(device_check.WHEELS) & device_check.DEVICE_IMAGE_PACKAGES  # a second version stops pip there


KINDS = Path("/work/.library/device/KINDS.md")


@pytest.mark.skipif(not KINDS.is_file(), reason="the device notes (KINDS.md) are not on this machine")
def test_the_image_list_is_the_one_the_device_notes_give():
    listed = re.search(r"^nvidia-h200: .*? Packages: (.*)\.\s*$", KINDS.read_text(encoding="utf-8"), re.M).group(1)
    assert {_normal(name.strip()) for name in listed.split(",")} == device_check.DEVICE_IMAGE_PACKAGES


def test_the_pinnlog_folder_makes_the_checkouts_packages_importable_without_pip(tmp_path):
    folder = device_check.pinnlog_path(tmp_path / "path")
    code = "import pinnlog.recorder, pinnlog.analyzer.store as s; print(pinnlog.recorder.__file__); print(s.__file__)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(folder)}
    )
    assert done.returncode == 0, done.stderr
    files = [Path(line) for line in done.stdout.splitlines()]
    assert [f.relative_to(folder / "pinnlog") for f in files] == [
        Path("recorder/__init__.py"),
        Path("analyzer/store/__init__.py"),
    ]
    assert [f.resolve() for f in files] == [ROOT / "recorder/__init__.py", ROOT / "analyzer/store/__init__.py"]


def test_fetch_wheels_pins_the_versions_installed_here_and_keeps_one_version_of_each(tmp_path, monkeypatch, capsys):
    # pip download is not run here (CI has no index): a stand-in saves one wheel per pin, as pip would
    commands = []

    def fake_run(command, **options):
        commands.append(command)
        if "download" in command:
            folder = Path(command[command.index("-d") + 1])
            for pin in (w for w in command if "==" in w):
                name, version = pin.split("==")
                (folder / f"{name.replace('-', '_')}-{version}-py3-none-any.whl").write_bytes(b"wheel")
        return subprocess.CompletedProcess(command, 0, stdout=b"")  # git ls-files, git check-ignore: nothing

    monkeypatch.setattr(device_check.subprocess, "run", fake_run)
    (tmp_path / "zarr-3.0.0-py3-none-any.whl").write_bytes(b"an older fetch")  # two versions would stop pip there
    (tmp_path / "other-1.0-py3-none-any.whl").write_bytes(b"not ours")
    assert device_check.main(["--fetch-wheels", str(tmp_path)]) == 0
    download = commands[0]
    assert download[:4] == [sys.executable, "-m", "pip", "download"]
    assert {"--no-deps", "--only-binary=:all:"} <= set(download)
    assert download[download.index("--python-version") + 1] == "3.12"
    assert download[download.index("--implementation") + 1] == "cp"
    assert [download[i + 1] for i, w in enumerate(download) if w == "--platform"] == list(device_check.PIP_PLATFORMS)
    assert [w for w in download if "==" in w] == [f"{name}=={metadata.version(name)}" for name in device_check.WHEELS]
    kept = sorted(p.name for p in tmp_path.iterdir())
    assert "zarr-3.0.0-py3-none-any.whl" not in kept and "other-1.0-py3-none-any.whl" in kept
    assert len(kept) == len(device_check.WHEELS) + 1
