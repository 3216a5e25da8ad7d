"""Every fenced ``pinnlog ...`` line of README.md and docs/cli.md runs, as written, on the sample stores.

The lines run in document order in one scratch folder that holds what the docs name: the shipped
sample stores under the names the docs use (``run.zarr``, ``a.zarr``, ``runs/ac.zarr``, ...) and the
authors' logs (the real ones from ``../shared/reference`` when present, else the small excerpt in
``tests/data``). A ``$ pinnlog ...`` line followed by output lines must print them: ``error: ...`` and
``wrote ...`` lines exactly; other lines (ratios from the authors' logs) only when the real logs are
there. Exit status: 2 when the documented output is an error, 0 or 1 for ``verify`` (1: damage found),
else 0.
"""

from __future__ import annotations

import re
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", ROOT / "docs" / "cli.md"]
SAMPLES = ROOT / "sample_logs"
MINI_LOGS = ROOT / "tests" / "data" / "paper_logs_mini"
REAL_LOGS = ROOT.parent / "shared" / "reference" / "paper_logs"


@dataclass
class Documented:
    where: str
    args: list[str]
    output: list[str] = field(default_factory=list)


def documented_commands() -> list[Documented]:
    """Every ``pinnlog`` command of a fenced block, with the output lines that follow a ``$`` line."""
    found: list[Documented] = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for block in re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M):
            current: Documented | None = None
            for line in block.splitlines():
                prompt = line.startswith("$ ")
                command = line[2:] if prompt else line
                parts = [p.strip() for p in command.split("&&")]
                pinnlog = [p for p in parts if p.startswith("pinnlog ")]
                if pinnlog:
                    for part in pinnlog:
                        current = Documented(f"{doc.name}: {part}", shlex.split(part, comments=True)[1:])
                        found.append(current)
                    current = current if prompt else None
                elif prompt:
                    current = None
                elif current is not None and line.strip():
                    current.output.append(line.strip())
    return found


COMMANDS = documented_commands()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
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
    }.items():
        shutil.copytree(source, work / name)
    logs = REAL_LOGS if (REAL_LOGS / "allen_cahn" / "v").is_dir() else None
    for run in ("v", "r"):
        shutil.copytree(
            logs / "allen_cahn" / run if logs else MINI_LOGS, top / "shared" / "reference" / "paper_logs" / "allen_cahn" / run
        )
    shutil.copytree(MINI_LOGS, work / "tests" / "data" / "paper_logs_mini")
    shutil.copytree(MINI_LOGS, work / "paper_logs")
    return work, logs is not None


def test_the_docs_name_the_commands_this_test_runs():
    commands = {c.args[0] for c in COMMANDS}
    assert {"info", "analyze", "compare", "watch", "export", "verify", "import-paper-logs"} <= commands
    assert len(COMMANDS) >= 20


def test_every_documented_pinnlog_line_runs_as_written(workspace, cli, monkeypatch):
    work, real_logs = workspace
    monkeypatch.chdir(work)
    failures = []
    for command in COMMANDS:
        result = cli(*command.args)
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
    assert not failures, "\n".join(failures)
