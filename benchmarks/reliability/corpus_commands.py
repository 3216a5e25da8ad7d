"""Issue 13 campaign: every command of ``pinnlog`` over the hostile corpus; count tracebacks and stray exit codes.

The hostile corpus (``tests/reliability/hostile_corpus.py``: 57 stores, each one thing broken) runs
against ``info``, ``verify``, ``verify --repair`` (on a copy), ``analyze``, ``compare`` (the case against
the healthy store), ``watch --once``; ``import-paper-logs`` runs on the paper-log cases below (binary,
empty, cut, huge numbers, a pipe, a link loop ...) and on every corpus store (a folder that holds no logs).
The output attacks run ``analyze -o`` into a full disk, through a link loop, a dangling link, and
``verify --repair`` on a full disk. Every command runs in-process through the real entry point
(``pinnlog.analyzer.cli.main``) under click's ``CliRunner``.

An outcome is bad when the output holds a traceback, when the exit status is outside the documented set
for a damaged or wrong input (0, 1, 2 of docs/cli.md; 3 is a bug and 130 an interrupt: neither may
happen here), or when an error is not one line starting with ``error:``.

Run from the repository root (as root the full disk is a real 1 MiB tmpfs, else writes are made to
fail with ENOSPC)::

    python -m benchmarks.reliability.corpus_commands
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "reliability"))

#: Exit statuses a corpus case may give (docs/cli.md): 0 success, 1 a damaged store, 2 not a store / a user mistake.
DOCUMENTED_EXITS = frozenset({0, 1, 2})
STORE_COMMANDS = ("info", "verify", "verify --repair", "analyze", "compare", "watch --once")
MAX_MESSAGE = 400


@dataclass(frozen=True)
class Outcome:
    """One command on one case."""

    case: str
    command: str
    exit_code: int
    traceback: bool
    stderr: str
    seconds: float = 0.0

    @property
    def one_line(self) -> bool:
        """An error (exit 1 from a command other than verify, or 2) is one line ``error: ...``."""
        text = self.stderr.strip()
        if self.exit_code == 0 or (self.exit_code == 1 and self.command.startswith("verify")):
            return True
        return text.startswith("error: ") and "\n" not in text and len(text) < MAX_MESSAGE

    @property
    def bad(self) -> bool:
        return self.traceback or self.exit_code not in DOCUMENTED_EXITS or not self.one_line


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def _entry(args):
    from pinnlog.analyzer.cli import main

    main(list(args))


def invoke(*args) -> tuple[int, str, str, BaseException | None]:
    """``pinnlog ARGS`` in this process: (exit status, stdout, stderr, the exception that ended it)."""
    result = CliRunner().invoke(_entry, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr, result.exception


def outcome(case: str, command: str, *args) -> Outcome:
    started = time.perf_counter()
    code, out, err, exc = invoke(*args)
    crashed = exc is not None and not isinstance(exc, SystemExit)
    return Outcome(case, command, code, "Traceback" in out + err or crashed, err, time.perf_counter() - started)


def copy_case(src: Path, dst: Path) -> Path:
    """A copy for ``--repair``: links stay links, pipes are made anew (reading one would block)."""
    if src.is_symlink() or not src.is_dir():
        if src.is_symlink():
            os.symlink(os.readlink(src), dst)
        else:
            shutil.copy2(src, dst)
        return dst

    def copy_entry(s, d, *, follow_symlinks=True):
        if stat.S_ISFIFO(os.lstat(s).st_mode):
            os.mkfifo(d)
            return d
        return shutil.copy2(s, d, follow_symlinks=follow_symlinks)

    shutil.copytree(src, dst, symlinks=True, copy_function=copy_entry)
    return dst


def store_command(command: str, name: str, path: Path, healthy: Path, work: Path) -> Outcome:
    """One of ``STORE_COMMANDS`` (or ``import-paper-logs``) on one corpus case; ``work``: a folder for its outputs."""
    work.mkdir(parents=True, exist_ok=True)
    args = {
        "info": ("info", path),
        "verify": ("verify", path),
        "verify --repair": ("verify", "--repair", lambda: copy_case(path, work / "copy.zarr")),
        "analyze": ("analyze", path, "-o", work / "analyze", "-q"),
        "compare": ("compare", healthy, path, "-o", work / "compare", "-q"),
        "watch --once": ("watch", path, "--once", "-o", work / "watch", "-q"),
        "import-paper-logs": ("import-paper-logs", path if path.is_dir() else path.parent, "-o", work / "imported.zarr"),
    }[command]
    return outcome(name, command, *(a() if callable(a) else a for a in args))


def store_outcomes(name: str, path: Path, healthy: Path, work: Path) -> list[Outcome]:
    """Every store command on one corpus case, and ``import-paper-logs`` of its folder."""
    return [store_command(c, name, path, healthy, work) for c in (*STORE_COMMANDS, "import-paper-logs")]


# -- paper logs -----------------------------------------------------------------------------------------
GOOD_LOGS = ROOT / "tests" / "data" / "paper_logs_mini"
LOG_CASES = (
    "logs_healthy",
    "logs_binary",
    "logs_empty",
    "logs_header_only",
    "logs_nul_bytes",
    "logs_huge_numbers",
    "logs_negative_epochs",
    "logs_fractional_epochs",
    "logs_one_tensor",
    "logs_latin1",
    "logs_losses_binary",
    "logs_losses_nan",
    "logs_pipe",
    "logs_link_loop",
    "logs_link_dev_zero",
    "logs_is_a_folder",
    "logs_long_line",
    "logs_crlf",
)


def build_log_cases(out: Path) -> dict[str, Path]:
    """One folder of the authors' logs per case in ``LOG_CASES``, each with one thing broken."""
    out.mkdir(parents=True, exist_ok=True)
    good = (GOOD_LOGS / "grad_stats2.txt").read_text()
    header, *rows = good.splitlines()
    cases: dict[str, Path] = {}

    def logs(name: str, grad_stats2: str | bytes | None = None, losses: str | bytes | None = None) -> Path:
        folder = out / name
        shutil.copytree(GOOD_LOGS, folder, ignore=shutil.ignore_patterns("*.py", "*.json"))
        for file, data in (("grad_stats2.txt", grad_stats2), ("losses.txt", losses)):
            if data is not None:
                (folder / file).write_bytes(data if isinstance(data, bytes) else data.encode())
        cases[name] = folder
        return folder

    logs("logs_healthy")
    logs("logs_binary", os.urandom(4096))
    logs("logs_empty", b"")
    logs("logs_header_only", header + "\n")
    logs("logs_nul_bytes", good.replace(",", ",\x00", 7))
    logs("logs_huge_numbers", "\n".join([header] + [",".join([*r.split(",")[:2], "1e308", "3e307", "1e400"]) for r in rows]))
    logs("logs_negative_epochs", "\n".join([header] + ["-" + r for r in rows]))
    logs("logs_fractional_epochs", "\n".join([header] + [r.replace(",", ".5,", 1) for r in rows]))
    logs("logs_one_tensor", "\n".join([header] + [r for r in rows if r.split(",")[1] == rows[0].split(",")[1]]))
    logs("logs_latin1", (header + "\n" + "\n".join(rows)).replace("layer", "l\xe4yer").encode("latin-1"))
    logs("logs_losses_binary", losses=os.urandom(2048))
    logs("logs_losses_nan", losses="0 nan nan\n1 inf -inf\n2 1e400 -1e400\n")
    folder = logs("logs_pipe")
    (folder / "losses.txt").unlink()
    os.mkfifo(folder / "losses.txt")
    folder = logs("logs_link_loop")
    (folder / "grad_stats2.txt").unlink()
    (folder / "grad_stats2.txt").symlink_to("grad_stats2.txt")
    folder = logs("logs_link_dev_zero")
    (folder / "losses.txt").unlink()
    (folder / "losses.txt").symlink_to("/dev/zero")
    folder = logs("logs_is_a_folder")
    (folder / "grad_stats2.txt").unlink()
    (folder / "grad_stats2.txt").mkdir()
    logs("logs_long_line", header + "\n" + "9" * 5_000_000 + "\n" + "\n".join(rows))
    logs("logs_crlf", "\r\n".join([header, *rows]))
    assert tuple(cases) == LOG_CASES
    return cases


def log_outcomes(name: str, folder: Path, work: Path, commands=STORE_COMMANDS) -> list[Outcome]:
    """``import-paper-logs`` of one log folder, then ``commands`` on the store it wrote (if it wrote one)."""
    work.mkdir(parents=True, exist_ok=True)
    imported = work / "imported.zarr"
    result = [outcome(name, "import-paper-logs", "import-paper-logs", folder, "-o", imported)]
    if imported.exists():  # what was imported must be readable by every command
        result += [store_command(c, name, imported, imported, work / "of_import") for c in commands]
    return result


# -- where the output goes -----------------------------------------------------------------------------
@contextlib.contextmanager
def full_disk(work: Path) -> Iterator[Path]:
    """A folder on a full file system holding ``open.zarr``, a store a killed run left open: a real 1 MiB
    tmpfs when this process may mount one, else a folder where every file write pinnlog makes fails
    with ENOSPC (as a full disk fails it)."""
    from corpus_tools import write_healthy_store

    mount = work / "full_disk"
    mount.mkdir()
    mount_cmd = ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)]
    mounted = os.geteuid() == 0 and subprocess.run(mount_cmd, capture_output=True, check=False).returncode == 0
    write_healthy_store(mount / "open.zarr", close=False)
    try:
        if mounted:
            fd = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT)
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * 4096):
                    pass
            os.close(fd)
            yield mount
        else:
            with enospc_writes(mount):
                yield mount
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(mount)], check=False)


@contextlib.contextmanager
def enospc_writes(under: Path) -> Iterator[None]:
    """Writes of files under ``under`` through ``open_new`` (reports, exports) or zarr's local store fail with ENOSPC."""
    import zarr.storage._local as zarr_local

    from pinnlog.analyzer import output

    modules = [
        m for m in list(sys.modules.values()) if getattr(m, "__name__", "").startswith("pinnlog.") and hasattr(m, "open_new")
    ]
    opened, put = output.open_new, zarr_local._put

    class FullFile:
        def __init__(self, f):
            self._f = f

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name):
            return getattr(self._f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._f.close()

    def full_open(path, mode="wb"):
        f = opened(path, mode)
        return FullFile(f) if str(os.path.abspath(path)).startswith(str(under)) else f

    def full_put(path, value, exclusive=False):
        if str(path).startswith(str(under)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return put(path, value, exclusive)

    for m in modules:
        m.open_new = full_open
    zarr_local._put = full_put
    try:
        yield
    finally:
        for m in modules:
            m.open_new = opened
        zarr_local._put = put


OUTPUT_CASES = (
    "analyze -o on a full disk",
    "export -o on a full disk",
    "verify --repair on a full disk",
    "analyze -o through a link loop",
    "analyze -o a dangling link",
    "analyze -o under a file",
)


def output_outcomes(healthy: Path, work: Path, full_disk=full_disk) -> list[Outcome]:
    """The output attacks of finding 8 (ENOSPC, ELOOP, a dangling link) on the healthy store."""
    work.mkdir(parents=True, exist_ok=True)
    found = []
    with full_disk(work) as full:
        found.append(outcome(OUTPUT_CASES[0], "analyze", "analyze", healthy, "-o", full / "report", "-q"))
        found.append(outcome(OUTPUT_CASES[1], "export", "export", healthy, "-o", full / "curves", "-q"))
        found.append(outcome(OUTPUT_CASES[2], "verify --repair", "verify", "--repair", full / "open.zarr"))
    loop = work / "loop"
    loop.symlink_to(loop)
    found.append(outcome(OUTPUT_CASES[3], "analyze", "analyze", healthy, "-o", loop / "report", "-q"))
    dangling = work / "dangling"
    dangling.symlink_to(work / "nowhere")
    found.append(outcome(OUTPUT_CASES[4], "analyze", "analyze", healthy, "-o", dangling, "-q"))
    (work / "a_file").write_text("x")
    found.append(outcome(OUTPUT_CASES[5], "analyze", "analyze", healthy, "-o", work / "a_file" / "report", "-q"))
    return found


PARTS = ("stores", "logs", "outputs")


def run_campaign(work: Path, parts=PARTS) -> list[Outcome]:
    from hostile_corpus import build_corpus

    cases = build_corpus(work / "corpus", work / "MARKER")
    healthy = cases["healthy"].path
    found: list[Outcome] = []
    if "stores" in parts:
        for name, case in cases.items():
            found += store_outcomes(name, case.path, healthy, work / "out" / name)
    if "logs" in parts:
        for name, folder in build_log_cases(work / "logs").items():
            found += log_outcomes(name, folder, work / "out" / name)
    if "outputs" in parts:
        found += output_outcomes(healthy, work / "output")
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show", type=int, default=20, help="bad outcomes to print")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=PARTS, help="which attacks to run (default: all)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        found = run_campaign(Path(tmp), args.parts)
    bad = [o for o in found if o.bad]
    tracebacks = sum(o.traceback for o in found)
    stray = Counter(o.exit_code for o in found if o.exit_code not in DOCUMENTED_EXITS)
    cases = len({o.case for o in found})
    print(f"corpus x commands: {len(found)} runs ({cases} cases); tracebacks {tracebacks}; ", end="")
    print(
        f"exit codes outside {{0, 1, 2}}: {sum(stray.values())} {dict(stray) or ''}; not one line: {sum(not o.one_line for o in found)}"
    )
    print("exit codes:", dict(sorted(Counter(o.exit_code for o in found).items())))
    seconds = Counter()
    for o in found:
        seconds[o.command] += o.seconds
    print("seconds per command:", {k: round(v, 1) for k, v in seconds.most_common()})
    for o in bad[: args.show]:
        last = o.stderr.strip().splitlines()[-1:] or [""]
        print(f"  {o.case} / {o.command}: exit {o.exit_code}{' traceback' if o.traceback else ''}: {last[0][:200]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
