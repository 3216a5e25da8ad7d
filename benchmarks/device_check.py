"""Issue 14's GPU check in one call: carry what the device image lacks, run every measurement, summarise.

    python benchmarks/device_check.py --fetch-wheels .whl                    # here: the wheels the image lacks
    python3 benchmarks/device_check.py --wheels .whl --out "$OUT"            # there (docs/performance.md)
    python benchmarks/device_check.py --quick --device cpu --out /tmp/check  # every step at smoke size, on a CPU
    python3 benchmarks/device_check.py --wheels .whl --out "$OUT" --only every100,paper   # a rerun of two steps

A session lent the H200 has 15 minutes of device time, at most 10 a call, and must leave room for a rerun,
so issue 14's whole GPU check is one prepared command. There it installs the carried wheels into a folder
(``pip install --no-index --no-deps --target``), makes pinnlog importable from the checkout without
building it (a ``pinnlog`` folder linking ``analyzer/`` and ``recorder/``, first on ``PYTHONPATH``), and
runs :data:`STEPS` one by one as subprocesses, cheapest and most important first, each with its own
timeout cut to what is left of ``--budget`` seconds. A step that fails or times out does not stop the
others; a step that finds less than :data:`MIN_STEP_SECONDS` of the budget left is skipped. Everything
printed goes to the console and to ``OUT/device_check.log``; ``OUT/summary.md`` (rewritten after every
step, so a call cut short still leaves one) gives the machine, each step's status and key lines, and the
figures next to issue 14's targets. Exit code: 0 when every step that ran passed, 1 otherwise, 2 for a
mistake in the command line.

Top-level imports are the standard library only: tests/test_docs.py imports :func:`build_parser` anywhere,
and this process stays free of torch (each step imports it in its own process).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = "benchmarks/device_check.py"

#: The distributions of the device image 'cuda' (kind nvidia-h200): /work/.library/device/KINDS.md, "Python
#: packages already there", as read on a machine running the image on 2026-11-17.
_IMAGE_LIST = """
    absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build certifi
    charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core cuda-pathfinder
    cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock flatbuffers flax fonttools
    formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize hypothesis idna
    imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver
    lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe
    matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals
    networkx ninja numba numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime
    nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13
    nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript
    opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy peft
    pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments
    pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist
    python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core scikit-image
    scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools shellingham simplejson six sortedcontainers
    statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm
    tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope
    triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl
    zipp
"""
DEVICE_IMAGE_PACKAGES = frozenset(_IMAGE_LIST.split())

#: What the recorder, the benchmarks and the CUDA tests (with their conftests) import there and the image
#: lacks: pinnlog's requirements (pyproject.toml) followed recursively for Python 3.12 until they reach the
#: image's. --fetch-wheels downloads each at the version installed here; tests/benchmarks/test_device_check.py
#: fails when a new requirement is in neither list.
WHEELS = ("zarr", "numcodecs", "donfig", "google-crc32c", "dask", "partd", "locket", "ruptures")

#: pip's platform tags for the device (x86-64, glibc), as /work/.library/device/README.md gives them.
PIP_PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
)

#: A step is skipped when less of the budget than this is left: too little to start torch and measure.
MIN_STEP_SECONDS = 20.0


@dataclass(frozen=True)
class Step:
    """One measurement: its command on the GPU and at smoke size, its timeout, and how its output is read.

    In a command ``{python}`` is this interpreter, ``{device}`` the ``--device``, ``{script}`` this script,
    ``{b_steps}`` the ``--b-steps`` and ``{cuda_tests}`` the test files that ask ``torch.cuda.is_available``
    (found when the step runs).
    """

    name: str
    what: str
    command: tuple[str, ...]
    quick: tuple[str, ...]
    timeout: float
    kind: str  # how the summary reads its output: environment, tests, launches, overhead, routes


_PYTEST = ("{python}", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", "-k", "cuda", "{cuda_tests}")
_OVERHEAD = ("{python}", "benchmarks/recorder_overhead.py", "--device", "{device}")
_B = ("--skip", "a,d,e", "--engine", "vectorised")  # (b) and (c) alone, with the engine issue 14 is about

#: The check, in the order it runs (cheap and most important first). Timeouts are seconds on the H200, well
#: above the estimates of docs/performance.md ("The H200 check in one call") so that only a hung step meets
#: one; what is left of --budget (default 420 s) cuts them for the later steps.
STEPS: tuple[Step, ...] = (
    Step(
        "environment",
        "python, torch, CUDA and the GPU; versions, places and imports of the run-time packages",
        ("{python}", "{script}", "--report-environment", "--device", "{device}"),
        ("{python}", "{script}", "--report-environment", "--device", "{device}"),
        60,
        "environment",
    ),
    Step(
        "cuda-tests",
        "the CUDA tests (-k cuda in every test file that asks for CUDA); none may skip",
        _PYTEST,
        _PYTEST,
        90,
        "tests",
    ),
    Step(
        "launch-count",
        "kernel launches of a capture and of a plain step (profiler on CUDA)",
        ("{python}", "benchmarks/launch_count.py", "--device", "{device}"),
        ("{python}", "benchmarks/launch_count.py", "--device", "{device}", "--quick", "--threads", "1"),
        90,
        "launches",
    ),
    Step(
        "overhead-a-d",
        "recorder_overhead (a) one capture / plain step and (d) memory, loop and vectorised engines",
        (*_OVERHEAD, "--skip", "b,e", "--engine", "both"),
        (*_OVERHEAD, "--skip", "b,e", "--engine", "both", "--tiny", "--threads", "1"),
        120,
        "overhead",
    ),
    Step(
        "every100",
        "recorder_overhead (b) whole run / plain at every(100), --b-steps steps (default 2,000), vectorised",
        (*_OVERHEAD, *_B, "--steps", "{b_steps}"),
        (*_OVERHEAD, *_B, "--tiny", "--threads", "1"),
        120,
        "overhead",
    ),
    Step(
        "paper",
        "recorder_overhead (b) at the paper's cadence, --b-steps steps, synchronous",
        (*_OVERHEAD, *_B, "--cadence", "paper", "--steps", "{b_steps}"),
        (*_OVERHEAD, *_B, "--cadence", "paper", "--tiny", "--threads", "1"),
        150,
        "overhead",
    ),
    Step(
        "paper-overlap",
        "recorder_overhead (b) at the paper's cadence, --b-steps steps, overlap=True",
        (*_OVERHEAD, *_B, "--cadence", "paper", "--steps", "{b_steps}", "--overlap"),
        (*_OVERHEAD, *_B, "--cadence", "paper", "--overlap", "--tiny", "--threads", "1"),
        150,
        "overhead",
    ),
    Step(
        "engine-routes",
        "engine_routes: loop, stacked, func and (CUDA) CUDA-graph routes / one full-batch gradient",
        ("{python}", "benchmarks/engine_routes.py", "--device", "{device}"),
        ("{python}", "benchmarks/engine_routes.py", "--device", "{device}", "--quick", "--threads", "1"),
        90,
        "routes",
    ),
)

#: Issue 14's H200 targets, as the summary sets the measured figures beside them.
TARGETS = {"capture": 3.0, "every100": 1.03, "paper": 1.10}
PAPER_RUN_STEPS = 20_000


# ---------------------------------------------------------------- reading the steps' output


def paper_cadence_captures(n_steps: int) -> int:
    """Captures of recorder_overhead's ``--cadence paper`` (every 2 steps up to 300, then every 100) in ``n_steps``."""
    return len(range(0, min(n_steps, 300), 2)) + len(range(300, n_steps, 100))


def whole_run_estimate(ratio: float, captures: int, steps: int, n_steps: int = PAPER_RUN_STEPS) -> float:
    """Whole run / plain over ``n_steps`` at the paper's cadence, from a ratio measured over ``steps``.

    What the run costs beyond plain is the captures' cost: ``(ratio - 1) x steps`` plain steps for
    ``captures`` captures, so ``n_steps`` steps with ``paper_cadence_captures(n_steps)`` captures cost
    ``1 + (ratio - 1) x (captures_n / captures) x (steps / n_steps)``. An estimate: it assumes every
    capture costs the same (the first one carries the self-check, so it errs high).
    """
    return 1 + (ratio - 1) * (paper_cadence_captures(n_steps) / captures) * (steps / n_steps)


_NUMBER = r"[-+]?(?:\d+\.?\d*(?:e[-+]?\d+)?|nan|inf)"
_CAPTURE = re.compile(rf"\[(?P<engine>\w+)\] capture(?P<shared> \(shared_loss\))? / plain(?: step)?\s+= (?P<ratio>{_NUMBER})")
_WHOLE_RUN = re.compile(rf"^\(b\) .*?\] (?P<steps>\d+) steps, .*?\((?P<captures>\d+) captures\).*? ratio (?P<ratio>{_NUMBER})")
_PYTEST_COUNT = re.compile(r"(\d+) (passed|failed|skipped|deselected|errors?|xfailed|xpassed)\b")


def capture_ratios(lines: list[str]) -> dict[tuple[str, bool], float]:
    """recorder_overhead (a): ``{(engine, with shared_loss): capture / plain step}``."""
    found = {}
    for line in lines:
        if match := _CAPTURE.search(line):
            found[(match["engine"], bool(match["shared"]))] = float(match["ratio"])
    return found


def whole_run(lines: list[str]) -> tuple[int, int, float] | None:
    """recorder_overhead (b): ``(steps, captures, recorded / plain)``, or None when it printed none."""
    for line in lines:
        if match := _WHOLE_RUN.search(line):
            return int(match["steps"]), int(match["captures"]), float(match["ratio"])
    return None


def pytest_counts(lines: list[str]) -> dict[str, int]:
    """The counts of pytest's last summary line (``error`` and ``errors`` both as ``errors``)."""
    for line in reversed(lines):
        counts = {("errors" if kind.startswith("error") else kind): int(n) for n, kind in _PYTEST_COUNT.findall(line)}
        if counts and " in " in line:
            return counts
    return {}


def key_lines(kind: str, lines: list[str]) -> list[str]:
    """The lines of a step's output that the summary repeats: results, notes, warnings, the table."""
    key = _key_lines(kind, lines)
    warnings = [line for line in lines if "Warning" in line][:10]  # e.g. the vectorised engine falling back to the loop
    return key + [line for line in warnings if line not in key]


def _key_lines(kind: str, lines: list[str]) -> list[str]:
    if kind == "environment":
        return lines[:60]
    if kind == "tests":
        return [line for line in lines if line.startswith(("SKIPPED", "FAILED", "ERROR")) or _PYTEST_COUNT.search(line)][-20:]
    if kind == "overhead":
        return [line for line in lines if line.startswith(("(a)", "(b)", "(c)", "(d)", "    ")) or "NOTE" in line][:40]
    start = next((i for i, line in enumerate(lines) if line.startswith(("median of", "kernel launches"))), len(lines))
    notes = [line for line in lines[:start] if "failed" in line or "NOTE" in line]
    return notes + lines[start : start + 40]


# ---------------------------------------------------------------- running the steps


@dataclass
class Result:
    """What became of one step."""

    name: str
    command: str
    status: str  # "ok", "failed (rc N)", "timed out after N s", "skipped: ..."
    seconds: float = 0.0
    lines: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.status == "ok" or self.status.startswith("skipped: not")


class Log:
    """Prints to the console and appends to ``OUT/device_check.log``, line by line."""

    def __init__(self, path: Path):
        self.file = path.open("a", encoding="utf-8")

    def __call__(self, line: str = "") -> None:
        print(line, flush=True)
        self.file.write(line + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def run_command(argv: list[str], timeout: float, env: dict[str, str], log: Log) -> tuple[int | None, list[str], float]:
    """Run ``argv`` in the checkout, teeing its output; ``(exit code or None when it timed out, lines, seconds)``."""
    start = time.monotonic()
    process = subprocess.Popen(
        argv,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    timed_out = threading.Event()

    def kill() -> None:  # the whole process group: pytest or a benchmark may have children
        timed_out.set()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    timer = threading.Timer(timeout, kill)
    timer.start()
    lines = []
    try:
        with process:  # closes the pipe, waits for the exit
            assert process.stdout is not None
            for line in process.stdout:
                lines.append(line.rstrip("\n"))
                log("    " + lines[-1])
    finally:
        timer.cancel()
    code = process.wait()
    return (None if timed_out.is_set() else code), lines, time.monotonic() - start


def cuda_test_files() -> list[str]:
    """Test files (relative to the checkout) that ask ``torch.cuda.is_available``: where the CUDA tests are."""
    found = (
        p for p in (ROOT / "tests").rglob("test_*.py") if "cuda.is_available" in p.read_text(encoding="utf-8", errors="replace")
    )
    return sorted(p.relative_to(ROOT).as_posix() for p in found)


def expand(command: tuple[str, ...], device: str, b_steps: int = 2000) -> list[str]:
    """A step's command as run: placeholders filled, ``{cuda_tests}`` spread into the files it names."""
    words = []
    for word in command:
        if word == "{cuda_tests}":
            words += cuda_test_files()
        else:
            words.append(word.format(python=sys.executable, device=device, script=SCRIPT, b_steps=b_steps))
    return words


def judge(step: Step, code: int | None, lines: list[str], device: str, limit: float) -> str:
    """A step's status from its exit code and, for the tests, its counts: a skipped CUDA test on a GPU fails."""
    if code is None:
        return f"timed out after {limit:.0f} s"
    if code != 0:
        return f"failed (rc {code})"
    if step.kind == "tests" and device.startswith("cuda"):
        counts = pytest_counts(lines)
        if counts.get("skipped"):
            return f"failed ({counts['skipped']} CUDA tests skipped on a CUDA device)"
        if not counts.get("passed"):
            return "failed (no test passed)"
    return "ok"


def run_steps(
    steps, args, env: dict[str, str], log: Log, deadline: float, results: list[Result], on_result: Callable[[], None]
) -> None:
    """Each selected step in turn, within what is left of the budget: appended to ``results``, then ``on_result()``."""
    only = {name for name in args.only.split(",") if name}
    for number, step in enumerate(steps, start=1):
        command = expand(step.quick if args.quick else step.command, args.device, args.b_steps)
        shown = " ".join(w.replace(sys.executable, "python") for w in command)
        result = Result(step.name, shown, "ok")
        missing = [w for w in command if w.endswith(".py") and w.startswith("benchmarks/") and not (ROOT / w).is_file()]
        left = max(0.0, deadline - time.monotonic())
        if only and step.name not in only:
            result.status = "skipped: not in --only"
        elif missing:
            result.status = f"skipped: not in this checkout ({missing[0]})"
        elif left < MIN_STEP_SECONDS:
            result.status = f"skipped: budget ({left:.0f} s left)"
        else:
            limit = min(step.timeout, left)
            log(f"=== [{number}/{len(steps)}] {step.name}: {step.what}")
            log(f"=== {shown}   (timeout {limit:.0f} s, {left:.0f} s of the budget left)")
            code, result.lines, result.seconds = run_command(command, limit, env, log)
            result.status = judge(step, code, result.lines, args.device, limit)
        log(f"=== {step.name}: {result.status}" + (f" in {result.seconds:.1f} s" if result.seconds else ""))
        results.append(result)
        on_result()


def pinnlog_path(folder: Path) -> Path:
    """A folder that makes ``pinnlog.analyzer`` and ``pinnlog.recorder`` the checkout's, with nothing built.

    pyproject.toml maps the two packages onto the folders ``analyzer/`` and ``recorder/``; a ``pinnlog``
    namespace folder linking both does the same with no pip, setuptools or network (the device has none).
    """
    package = folder / "pinnlog"
    package.mkdir(parents=True, exist_ok=True)
    for name in ("analyzer", "recorder"):
        link = package / name
        if not link.exists():
            link.symlink_to(ROOT / name, target_is_directory=True)
    return folder


def install_wheels(wheels: Path, site: Path, env: dict[str, str], log: Log) -> Result:
    """``pip install --no-index --no-deps --target site`` of every wheel in ``wheels`` (offline)."""
    files = sorted(str(p) for p in wheels.glob("*.whl"))
    command = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile", "--no-cache-dir"]
    command += ["--upgrade", "--target", str(site), *files]
    log(f"=== install: {len(files)} wheels from {wheels} into {site}")
    code, lines, seconds = run_command(command, 180, env, log)
    status = "ok" if code == 0 else ("timed out after 180 s" if code is None else f"failed (rc {code})")
    log(f"=== install: {status} in {seconds:.1f} s")
    return Result("install", f"pip install --no-index --no-deps --target {site} {wheels}/*.whl", status, seconds, lines)


# ---------------------------------------------------------------- the summary


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _met(value: float | None, target: float) -> str:
    return "—" if value is None else ("yes" if value <= target else "**no**")


def target_rows(results: dict[str, Result]) -> list[str]:
    """Issue 14's H200 targets, with the figures the steps measured (Markdown table rows)."""
    rows = []
    capture = capture_ratios(results["overhead-a-d"].lines) if "overhead-a-d" in results else {}
    for engine in ("vectorised", "loop"):
        for shared in (True, False):
            label = f"one capture / plain full-batch step, {engine}{', shared_loss' if shared else ''}"
            value = capture.get((engine, shared))
            rows.append(f"| {label} | {_fmt(value, 2)} | ≤ {TARGETS['capture']:g} | {_met(value, TARGETS['capture'])} |")
    measured = whole_run(results["every100"].lines) if "every100" in results else None
    value = measured[2] if measured else None
    steps = f"{measured[0]:,} steps, {measured[1]} captures" if measured else "not measured"
    rows.append(
        f"| whole run / plain, every(100), vectorised ({steps}) | {_fmt(value)} | ≤ {TARGETS['every100']:.2f} | {_met(value, TARGETS['every100'])} |"
    )
    for name, label in (("paper", "synchronous"), ("paper-overlap", "overlap=True")):
        measured = whole_run(results[name].lines) if name in results else None
        if measured is None:
            rows.append(f"| whole run / plain, paper's cadence, {label} | not measured | ≤ {TARGETS['paper']:.2f} | — |")
            continue
        steps, captures, ratio = measured
        estimate = whole_run_estimate(ratio, captures, steps)
        rows.append(
            f"| whole run / plain, paper's cadence, {label}, measured over {steps:,} steps ({captures} captures) | {ratio:.3f} | — | — |"
        )
        rows.append(
            f"| the same over {PAPER_RUN_STEPS:,} steps ({paper_cadence_captures(PAPER_RUN_STEPS)} captures), **estimate** "
            f"1 + (r − 1) × {paper_cadence_captures(PAPER_RUN_STEPS)}/{captures} × {steps}/{PAPER_RUN_STEPS} | {estimate:.3f} "
            f"| ≤ {TARGETS['paper']:.2f} | {_met(estimate, TARGETS['paper'])} |"
        )
    tests = results.get("cuda-tests")
    if tests is not None:
        counts = ", ".join(f"{n} {kind}" for kind, n in pytest_counts(tests.lines).items()) or tests.status
        met = "—" if tests.status.startswith("skipped") else ("yes" if tests.status == "ok" else "**no**")
        rows.append(f"| the existing CUDA tests pass | {counts} | all pass, none skipped | {met} |")
    return rows


def write_summary(
    path: Path, args, started: datetime.datetime, machine: list[str], results: list[Result], budget_used: float
) -> None:
    by_name = {r.name: r for r in results}
    environment = by_name["environment"].lines if "environment" in by_name else []
    text = [
        f"# Issue 14 device check, {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"- command: `{' '.join(['python', SCRIPT, *(args.argv or [])])}`",
        *[f"- {line}" for line in machine],
        *[f"- {line}" for line in environment if line.startswith(("torch:", "gpu:"))],
        f"- budget {args.budget:.0f} s, {budget_used:.0f} s used so far",
    ]
    if args.quick:
        text += ["", "**`--quick`: every step at smoke size; not issue 14's figures.**"]
    text += [
        "",
        "## Issue 14's targets (H200)",
        "",
        "| what | measured | target | met |",
        "|---|---|---|---|",
        *target_rows(by_name),
    ]
    text += ["", "## Steps", "", "| step | status | seconds | command |", "|---|---|---|---|"]
    text += [f"| {r.name} | {r.status} | {r.seconds:.1f} | `{r.command}` |" for r in results]
    for result in results:
        if not result.lines:
            continue
        step = next((s for s in STEPS if s.name == result.name), None)
        lines = key_lines(step.kind, result.lines) if step else result.lines[-20:]
        if result.status != "ok":
            lines = lines + ["[last lines]"] + result.lines[-12:]
        what = f"{step.what}." if step else "the carried wheels, installed offline."
        text += ["", f"### {result.name}: {result.status}", "", what, "", "```", *lines, "```"]
    path.write_text("\n".join(text) + "\n", encoding="utf-8")


def machine_lines(device: str) -> list[str]:
    """``nvidia-smi -L`` and the host, for the summary's header."""
    lines = [f"host: {os.uname().nodename}, {os.cpu_count()} CPUs, python {sys.version.split()[0]}"]
    if shutil.which("nvidia-smi"):
        try:
            done = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
            lines += [f"nvidia-smi -L: {line}" for line in done.stdout.splitlines() if line.strip()]
        except subprocess.TimeoutExpired:
            lines.append("nvidia-smi -L: timed out")
    else:
        lines.append(f"nvidia-smi: not found (device {device})")
    return lines


# ---------------------------------------------------------------- here: the wheels; there: the environment


def fetch_wheels(folder: Path) -> int:
    """Download :data:`WHEELS` for CPython 3.12 on x86-64 Linux, each at the version installed here."""
    from importlib import metadata

    pins = [f"{name}=={metadata.version(name)}" for name in WHEELS]
    folder.mkdir(parents=True, exist_ok=True)
    platforms = [word for tag in PIP_PLATFORMS for word in ("--platform", tag)]
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12"]
    command += ["--implementation", "cp", *platforms, "-d", str(folder), *pins]
    print(" ".join(command), flush=True)
    if subprocess.run(command).returncode != 0:
        print(f"error: pip download failed; see above (pins: {' '.join(pins)})", file=sys.stderr)
        return 1
    wanted = {_normal(pin.split("==")[0]): pin.split("==")[1] for pin in pins}
    for wheel in sorted(folder.glob("*.whl")):  # one version of each: two stop the whole install there
        name, version = wheel.name.split("-")[:2]
        if _normal(name) in wanted and version != wanted[_normal(name)]:
            print(f"removed {wheel.name}: not the pinned {wanted[_normal(name)]}")
            wheel.unlink()
    total = sum(p.stat().st_size for p in folder.glob("*.whl"))
    print(f"{len(list(folder.glob('*.whl')))} wheels, {total / 2**20:.1f} MiB in {folder}")
    travelling = checkout_bytes()
    if travelling is not None:  # the device tool sends the working tree and the carried paths, 64 MiB at most
        print(
            f"the device call sends about {(travelling + total) / 2**20:.1f} MiB of its 64 (checkout {travelling / 2**20:.1f} + wheels)"
        )
    inside = folder.resolve().is_relative_to(ROOT)
    ignored = inside and subprocess.run(["git", "check-ignore", "-q", str(folder)], cwd=ROOT, capture_output=True).returncode == 0
    if not ignored:  # the device tool sends the checkout: ignored paths only by carry, the rest always
        where = f"inside the checkout, {folder.resolve().relative_to(ROOT)}" if inside else "in the checkout"
        print(f"note: the device run needs the wheels {where}, ignored by git and named in carry")
    return 0


def checkout_bytes() -> int | None:
    """Bytes of the files the device tool sends: tracked and untracked-but-not-ignored (None without git)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    files = (ROOT / name for name in listed.decode(errors="replace").split("\0") if name)
    return sum(f.stat().st_size for f in files if f.is_file())


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def report_environment(device: str) -> int:
    """Print python, torch, the GPU, every run-time distribution's version and place, and check imports."""
    import importlib
    import platform
    import tomllib
    from importlib import metadata

    problems = []
    print(f"python: {platform.python_version()} at {sys.executable}")
    requirements = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    names = [re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0] for r in requirements]
    for name in [*names, *(w for w in WHEELS if w not in names), "torch", "pytest"]:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            problems.append(f"{name} is not installed")
            continue
        print(f"    {name:16s} {dist.version:18s} {dist.locate_file('')}")
    problems += unmet_requirements(requirements)
    for module in (
        "zarr",
        "numcodecs",
        "dask.array",
        "xarray",
        "ruptures",
        "pinnlog.analyzer.store",
        "pinnlog.recorder",
        "torch",
    ):
        try:
            loaded = importlib.import_module(module)
            print(f"import {module}: ok ({Path(loaded.__file__ or '?').parent})")
        except Exception as error:
            problems.append(f"import {module}: {type(error).__name__}: {error}")
    torch = sys.modules.get("torch")  # imported above, or its failure is among the problems
    if torch is not None:
        print(f"torch: {torch.__version__} (CUDA {torch.version.cuda}), {torch.get_num_threads()} threads")
    if torch is not None and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        print(
            f"gpu: {torch.cuda.get_device_name()}, {props.multi_processor_count} SMs, {props.total_memory / 2**30:.1f} GiB, capability {props.major}.{props.minor}"
        )
    elif device.startswith("cuda"):
        problems.append("torch.cuda.is_available() is False on a --device cuda run")
    elif torch is not None:
        print("gpu: none (a CPU run)")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    return 1 if problems else 0


def unmet_requirements(requirements: list[str]) -> list[str]:
    """Of ``requirements`` (pinnlog's) and the carried wheels' own, those that the installed versions do not meet."""
    from importlib import metadata

    try:
        from packaging.markers import default_environment
        from packaging.requirements import Requirement
    except ImportError:
        return []  # packaging is in the image; without it this check is only not made
    unmet, environment = [], {**default_environment(), "extra": ""}
    wheel_requirements = []
    for name in WHEELS:
        with contextlib.suppress(metadata.PackageNotFoundError):
            wheel_requirements += metadata.requires(name) or []
    for text in requirements + wheel_requirements:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            continue
        try:
            version = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            unmet.append(f"{text}: not installed")
            continue
        if not requirement.specifier.contains(version, prereleases=True):
            unmet.append(f"{text}: {requirement.name} {version} is installed")
    return unmet


# ---------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    """The command line this script accepts (tests/test_docs.py parses the documented commands with it)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--fetch-wheels", type=Path, metavar="DIR", help="here: download the wheels the device image lacks into DIR"
    )
    parser.add_argument("--wheels", type=Path, metavar="DIR", help="there: install DIR/*.whl (offline) before the steps")
    parser.add_argument("--out", type=Path, help="folder for summary.md and device_check.log (there: $OUT)")
    parser.add_argument("--device", default="cuda", help="torch device of the steps (default cuda)")
    parser.add_argument("--quick", action="store_true", help="every step at smoke size (a test runs it on a CPU)")
    parser.add_argument("--budget", type=float, default=420.0, help="seconds for the whole check (default 420)")
    parser.add_argument("--b-steps", type=int, default=2000, help="steps of the (b) whole runs on the GPU (default 2000)")
    parser.add_argument(
        "--only", default="", help="comma-separated step names to run (default all): " + ",".join(s.name for s in STEPS)
    )
    parser.add_argument("--report-environment", action="store_true", help=argparse.SUPPRESS)  # the first step, in its own process
    return parser


def main(argv: list[str] | None = None, steps: tuple[Step, ...] = STEPS) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    if args.report_environment:
        return report_environment(args.device)
    if args.fetch_wheels is not None:
        return fetch_wheels(args.fetch_wheels)
    if args.out is None:
        parser.error("--out is required: the folder for summary.md and device_check.log")
    unknown = sorted({name for name in args.only.split(",") if name} - {s.name for s in steps})
    if unknown:
        parser.error(f"--only: unknown step {', '.join(unknown)}; the steps: {', '.join(s.name for s in steps)}")
    if args.wheels is not None and not list(args.wheels.glob("*.whl")):
        parser.error(f"--wheels {args.wheels}: no .whl files there; run --fetch-wheels {args.wheels} where pip reaches an index")
    started, clock0 = datetime.datetime.now(datetime.UTC), time.monotonic()
    deadline = clock0 + args.budget
    args.out.mkdir(parents=True, exist_ok=True)
    log = Log(args.out / "device_check.log")
    work = Path(tempfile.mkdtemp(prefix="pinnlog-device-check-"))
    results: list[Result] = []
    try:
        log(f"device_check {started:%Y-%m-%d %H:%M:%S} UTC: {' '.join(args.argv)}")
        machine = machine_lines(args.device)
        for line in machine:
            log(line)
        paths = [str(pinnlog_path(work / "pinnlog-path"))]
        env = dict(os.environ, PYTHONUNBUFFERED="1", MPLBACKEND="Agg")
        if args.quick and args.device == "cpu":  # smoke-sized problems: a second thread only spin-waits (3x slower here)
            env["OMP_NUM_THREADS"] = "1"
        if args.wheels is not None:
            results.append(install_wheels(args.wheels, work / "site", env, log))
            paths.append(str(work / "site"))
        env["PYTHONPATH"] = os.pathsep.join([*paths, str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])

        def summarise() -> None:
            try:
                write_summary(args.out / "summary.md", args, started, machine, results, time.monotonic() - clock0)
            except Exception as error:  # a summary bug must not cost the remaining steps; the log has everything
                log(f"=== summary.md not written: {type(error).__name__}: {error}")

        run_steps(steps, args, env, log, deadline, results, summarise)
        if (args.out / "summary.md").is_file():  # its tables on the console too: the run tool's output_tail shows them
            log("=== summary.md, up to the key lines:")
            for line in (args.out / "summary.md").read_text(encoding="utf-8").split("\n### ")[0].splitlines():
                log(line)
        log(f"device_check: done in {time.monotonic() - clock0:.0f} s; {args.out / 'summary.md'}")
    finally:
        log.close()
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
