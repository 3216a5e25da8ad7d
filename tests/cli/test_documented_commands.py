"""Every fenced ``pinnlog ...`` line of README.md and docs/*.md runs, as written, on the sample stores.

The lines run in document order in one scratch folder that holds what the docs name: the shipped
sample stores under the names the docs use (``run.zarr``, ``a.zarr``, ``runs/ac.zarr``, ...), the
authors' logs (the real ones from ``../shared/reference`` when present, else the small excerpt in
``tests/data``), a store a killed run left open (``runs/killed.zarr``) and the digits example's run,
written by ``examples/digits_classifier.py`` itself. A ``$ pinnlog ...`` line followed by output lines
must print them: ``error: ...`` and ``wrote ...`` lines exactly; other lines (ratios from the authors'
logs) only when the real logs are there. Exit status: 2 when the documented output is an error, 0 or 1
for ``verify`` (1: damage found), else 0.

Lines written for a lab's own machines (docs/scaling.md: a dask scheduler at ``tcp://10.0.0.5:8786``,
runs under ``/shared/runs/`` and in an ``s3://`` bucket) run with the site-specific parts replaced as
:data:`SITE` lists: a ``LocalCluster`` in this process, a folder of the workspace, fsspec's in-memory
file system. ``NAME=value`` before ``pinnlog`` and ``export NAME=value`` lines set the environment.
"""

from __future__ import annotations

import re
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SAMPLES = ROOT / "sample_logs"
MINI_LOGS = ROOT / "tests" / "data" / "paper_logs_mini"
REAL_LOGS = ROOT.parent / "shared" / "reference" / "paper_logs"
SCHEDULER = "tcp://10.0.0.5:8786"  # replaced by the address of a LocalCluster
#: site-specific parts of documented lines and what they become here (each must occur in the docs)
SITE = {SCHEDULER: None, "/shared/runs/": "shared/runs/", "s3://lab-runs/": "memory://pinnlog-docs/lab-runs/"}
ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=")


@dataclass
class Documented:
    where: str
    args: list[str]
    output: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


def fenced_blocks(doc: Path) -> list[tuple[str, str]]:
    """``(language, body)`` of every fenced block of ``doc``."""
    text = doc.read_text(encoding="utf-8")
    return re.findall(r"^```([^\n]*)\n(.*?)^```", text, flags=re.S | re.M)


def split_command(command: str) -> tuple[dict[str, str], list[str]]:
    """``NAME=value ... cmd args  # comment`` -> ``({NAME: value}, [cmd, args...])``."""
    words = shlex.split(command, comments=True)
    env = {}
    while words and ASSIGNMENT.match(words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    return env, words


def documented_commands(docs: list[Path] = DOCS) -> list[Documented]:
    """Every ``pinnlog`` command of a fenced block, with the output lines that follow a ``$`` line."""
    found: list[Documented] = []
    for doc in docs:
        for language, block in fenced_blocks(doc):
            if language.strip() == "python":
                continue
            current: Documented | None = None
            exported: dict[str, str] = {}
            for line in block.splitlines():
                prompt = line.startswith("$ ")
                command = line[2:] if prompt else line
                if command.startswith("export ") and ASSIGNMENT.match(command[7:]):
                    exported.update(split_command(command[7:])[0])
                    continue
                parts = [p.strip() for p in command.split("&&")]
                pinnlog = [p for p in parts if re.match(r"^([A-Z_][A-Z0-9_]*=\S+\s+)*pinnlog ", p)]
                if pinnlog:
                    for part in pinnlog:
                        env, words = split_command(part)
                        current = Documented(f"{doc.name}: {part}", words[1:], env={**exported, **env})
                        found.append(current)
                    current = current if prompt else None
                elif prompt:
                    current = None
                elif current is not None and line.strip():
                    current.output.append(line.strip())
    return found


COMMANDS = documented_commands()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, make_store):
    if not (SAMPLES / "ac_rba.zarr").is_dir():
        pytest.skip("sample_logs/ is not in this checkout")
    top = tmp_path_factory.mktemp("docs")
    work = top / "work"
    (work / "runs").mkdir(parents=True)
    rba, vanilla = SAMPLES / "ac_rba.zarr", SAMPLES / "ac_vanilla.zarr"
    for name, source in {
        "sample_logs/ac_rba.zarr": rba,
        "sample_logs/ac_vanilla.zarr": vanilla,
        "sample_logs/helmholtz_rba.zarr": SAMPLES / "helmholtz_rba.zarr",
        "sample_logs/helmholtz_vanilla.zarr": SAMPLES / "helmholtz_vanilla.zarr",
        "run.zarr": rba,
        "a.zarr": vanilla,
        "b.zarr": rba,
        "runs/ac.zarr": rba,
        "runs/ac_rba.zarr": rba,
        "runs/ac_vanilla.zarr": vanilla,
        "runs/ac_rba_paper.zarr": rba,  # docs/reproduction.md: the GPU runs' names
        "runs/ac_vanilla_paper.zarr": vanilla,
        "shared/runs/ac.zarr": vanilla,  # docs/scaling.md: /shared/runs/ (SITE)
        "shared/runs/ac_rba.zarr": rba,
    }.items():
        shutil.copytree(source, work / name)
    # docs/reliability.md: a store a killed run left open (status "recording")
    make_store(work / "runs", n_steps=4, layers=(2, 4, 1), close=False, name="killed.zarr")
    logs = REAL_LOGS if (REAL_LOGS / "allen_cahn" / "v").is_dir() else None
    for run in ("v", "r"):
        shutil.copytree(
            logs / "allen_cahn" / run if logs else MINI_LOGS, top / "shared" / "reference" / "paper_logs" / "allen_cahn" / run
        )
    shutil.copytree(MINI_LOGS, work / "tests" / "data" / "paper_logs_mini")
    shutil.copytree(MINI_LOGS, work / "paper_logs")
    return work, logs is not None


def digits_example(work: Path) -> None:
    """Run ``examples/digits_classifier.py`` end to end (record, then report) into ``work/runs`` (40 steps, not 3000)."""
    pytest.importorskip("torch")
    pytest.importorskip("sklearn", reason="scikit-learn is not installed (it is in the test extra)")
    import importlib.util

    spec = importlib.util.spec_from_file_location("digits_classifier", ROOT / "examples" / "digits_classifier.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    out = work / "runs" / "digits.zarr"
    assert example.main(["--out", str(out), "--steps", "40"]) == 0
    assert (work / "runs" / "digits_report" / "report.html").is_file()


@pytest.fixture
def site_scheduler():
    """The address that stands for the docs' ``tcp://10.0.0.5:8786``: a LocalCluster in this process."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0") as cluster:
        yield cluster.scheduler_address


def on_site(text: str, scheduler: str | None) -> str:
    for documented, here in SITE.items():
        here = scheduler if here is None else here
        if here is not None:
            text = text.replace(documented, here)
    return text


def test_the_docs_name_the_commands_this_test_runs():
    commands = {c.args[0] for c in COMMANDS}
    assert {"info", "analyze", "compare", "watch", "export", "verify", "import-paper-logs"} <= commands
    assert len(COMMANDS) >= 20


def test_every_site_replacement_stands_for_a_documented_line():
    lines = [" ".join([*c.env.values(), *c.args]) for c in COMMANDS]
    assert all(any(documented in line for line in lines) for documented in SITE)


REPORTS = {"analyze", "compare", "watch"}  # commands that build a report: 5-30 s each on 2 busy cores
FIRST = ("README.md", "cli.md")  # the user's first commands: run in the default selection


def other_docs() -> list:
    """One case per other doc with ``pinnlog`` lines; ``slow`` where they build reports (the suite's budget)."""
    cases = []
    for doc in DOCS:
        commands = [c for c in COMMANDS if c.where.startswith(f"{doc.name}: ")]
        if doc.name in FIRST or not commands:
            continue
        reports = any(c.args[0] in REPORTS and not c.output for c in commands)
        cases.append(pytest.param(doc.name, marks=[pytest.mark.slow] if reports else [], id=doc.name))
    return cases


def run_documented(commands: list[Documented], work: Path, real_logs: bool, cli, scheduler: str | None) -> list[str]:
    """Run ``commands`` in order in ``work``; one line per command whose exit status or output differs."""
    failures = []
    for command in commands:
        env = {name: on_site(value, scheduler) for name, value in command.env.items()}
        result = cli(*[on_site(a, scheduler) for a in command.args], env=env or None)
        errors = [line for line in command.output if line.startswith("error:")]
        if errors:
            expected = {2}
        else:  # verify says 1 when it finds damage, a documented outcome
            expected = {0, 1} if command.args[0] == "verify" else {0}
        problems = []
        if result.exit_code not in expected:
            problems.append(f"exit {result.exit_code}, expected {sorted(expected)}: {result.stderr.strip()[-400:]}")
        for line in command.output:
            if line == "...":
                continue
            if line.startswith("error:"):
                if [l for l in result.stderr.splitlines() if l.strip()] != [line]:
                    problems.append(f"stderr {result.stderr.strip()!r} is not {line!r}")
            elif (line.startswith("wrote ") or real_logs) and line not in result.stdout.splitlines():
                problems.append(f"no output line {line!r} in {result.stdout[-400:]!r}")
        if problems:
            failures.append(f"{command.where}: " + "; ".join(problems))
    return failures


def test_every_documented_pinnlog_line_of_readme_and_cli_runs_as_written(workspace, cli, monkeypatch):
    work, real_logs = workspace
    monkeypatch.chdir(work)
    commands = [c for c in COMMANDS if c.where.split(": ")[0] in FIRST]
    failures = run_documented(commands, work, real_logs, cli, None)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("doc", other_docs())
def test_every_documented_pinnlog_line_of_the_other_docs_runs_as_written(doc, workspace, cli, monkeypatch, request):
    work, real_logs = workspace
    monkeypatch.chdir(work)
    commands = [c for c in COMMANDS if c.where.startswith(f"{doc}: ")]
    if doc == "examples.md":  # `python examples/digits_classifier.py`, the line before, writes runs/digits.zarr
        digits_example(work)
    scheduler = None
    if any(SCHEDULER in " ".join([*c.env.values(), *c.args]) for c in commands):
        scheduler = request.getfixturevalue("site_scheduler")
    import fsspec

    memory = fsspec.filesystem("memory")
    bucket = SITE["s3://lab-runs/"].removeprefix("memory://")
    memory.put(str(work / "runs" / "ac.zarr"), bucket + "ac.zarr", recursive=True)
    try:
        failures = run_documented(commands, work, real_logs, cli, scheduler)
    finally:
        memory.rm(bucket.rstrip("/"), recursive=True)
    assert not failures, "\n".join(failures)
