"""Where pinnlog writes: checked output paths and outputs that appear whole or not at all.

Every command that writes (``analyze``, ``compare``, ``watch``, ``export``, ``import-paper-logs``) goes
through this module:

- :func:`check_output_path` refuses an output inside a Zarr store or one of its groups (a report written
  into ``run.zarr`` would make the store unreadable to zarr) and an output path with a symbolic link in
  it (a link could send the files anywhere);
- :func:`staged_directory` and :func:`staged_file` build the output in a fresh temporary folder beside
  the target and rename it into place at the end, so a failure or Ctrl-C leaves the previous output (or
  nothing), never half of one;
- :func:`open_new` creates a file with ``O_NOFOLLOW | O_EXCL``: it never writes through a link.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import signal
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, NoReturn

from pinnlog.analyzer.errors import PinnlogError, ReportOutputError

__all__ = [
    "Interrupted",
    "OutputPathError",
    "check_output_path",
    "deferred_interrupt",
    "is_url",
    "open_new",
    "printable",
    "staged_directory",
    "staged_file",
]

#: Prefix of the temporary folders beside a target (removed on failure; safe to delete by hand).
STAGING_PREFIX = ".pinnlog-partial-"


#: An output path pinnlog refuses or cannot write to (inside a Zarr store, through a link, read-only).
OutputPathError = ReportOutputError


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a write; ``str(exc)`` says what was kept (one line, for the command line)."""


def is_url(path: Any) -> bool:
    return isinstance(path, str) and "://" in path


#: Terminal escape sequences (CSI ``ESC [ ... final``, OSC ``ESC ] ... BEL|ST``, two-byte ``ESC x``) and
#: the C0/C1 control characters, which a string read from a store could use to rewrite the terminal.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x9b[0-?]*[ -/]*[@-~]|\x1b.?")
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(value: Any) -> str:
    """``str(value)`` safe to print on a terminal: escape sequences removed, control characters as ``\\xNN``.

    Tabs and newlines become spaces (every message is one line); bidi overrides are shown, not obeyed.
    """
    text = _ESCAPES.sub("", str(value)).replace("\t", " ").replace("\n", " ").replace("\r", " ")
    return _CONTROLS.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256 else f"\\u{ord(m.group()):04x}", text)


def _components(path: Path) -> Iterator[Path]:
    """``/a``, ``/a/b``, ... ``path``: every prefix of an absolute path, shortest first."""
    parts = path.parts
    for i in range(1, len(parts) + 1):
        yield Path(*parts[:i])


def _is_zarr_node(folder: Path) -> bool:
    """A Zarr v3 store or group (``zarr.json``) or a v2 one (``.zgroup``/``.zarray``)."""
    return any(os.path.lexists(folder / name) for name in ("zarr.json", ".zgroup", ".zarray"))


def check_output_path(target: str | os.PathLike, *, option: str = "-o", directory: bool = True, store: bool = False) -> Path:
    """Refuse an output ``target`` pinnlog must not write to; return it as an absolute path (links not resolved).

    Refused (:class:`OutputPathError`, exit 2): a target that is, or lies inside, a Zarr store or group;
    an existing symbolic link anywhere in the path; a file where a folder is expected (``directory``)
    or a folder where a file is expected. With ``store`` (the output is a run store) the target may
    itself be a store, but not lie inside one.
    """
    path = Path(os.path.abspath(os.fspath(target)))
    for prefix in _components(path):
        if os.path.islink(prefix):
            raise OutputPathError(
                f"{target}: {prefix} is a symbolic link; pinnlog does not write through links, pass the real path to {option}"
            )
        if not os.path.lexists(prefix):
            break
    for folder in list(path.parents) if store else [path, *path.parents]:
        if folder.is_dir() and _is_zarr_node(folder):
            where = "is" if folder == path else f"is inside {folder}, which is"
            raise OutputPathError(
                f"{target} {where} a Zarr store or group; writing there would damage it, choose a folder outside with {option}"
            )
    if directory and path.exists() and not path.is_dir():
        raise OutputPathError(f"{target} is a file; pass a folder with {option}")
    if not directory and path.is_dir():
        raise OutputPathError(f"{target} is a folder; pass a file name with {option}")
    return path


def open_new(path: str | os.PathLike, mode: str = "wb") -> IO[Any]:
    """Create ``path`` (it must not exist) without following links, and open it for writing."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, 0o666)
    if "b" in mode:
        return os.fdopen(fd, mode)
    return os.fdopen(fd, mode, encoding="utf-8", newline="")


def write_new(path: str | os.PathLike, data: bytes | str) -> None:
    """Write ``data`` to the new file ``path`` (see :func:`open_new`)."""
    with open_new(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold Ctrl-C during a few renames so they all happen; the interrupt is raised after them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[Any] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


def report_files(names: set[str]) -> bool:
    """A folder ``analyze``/``compare`` wrote: ``summary.json`` and only pages, JSON and figures."""
    return "summary.json" in names and all(n.endswith((".html", ".json", ".png", ".svg")) for n in names)


def _previous_output(folder: Path, ours: Callable[[set[str]], bool]) -> bool:
    """Whether ``folder`` is empty or holds only what an earlier run of the same command wrote (files ``ours`` accepts)."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return False
    return not entries or (all(e.is_file(follow_symlinks=False) for e in entries) and ours({e.name for e in entries}))


@contextlib.contextmanager
def staged_directory(
    target: str | os.PathLike,
    *,
    ours: Callable[[set[str]], bool] = report_files,
    option: str = "-o",
) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``target``; when the block succeeds, it becomes ``target``.

    A ``target`` that holds only an earlier output (file names that ``ours`` accepts) is replaced whole, so figures that are no longer drawn do not linger. A ``target`` folder holding
    anything else is kept, and the new files replace the files of the same names in it, one by one.
    If the block raises (or Ctrl-C arrives), the temporary folder is removed and ``target`` is as it
    was; Ctrl-C raises :class:`Interrupted` saying so.
    """
    path = check_output_path(target, option=option)

    def commit(stage: Path) -> None:
        os.chmod(stage, 0o777 & ~_umask())  # mkdtemp makes 0700; the output gets the usual permissions
        _commit(stage, path, ours)

    with _staged(target, path, option, commit) as stage:
        yield stage


@contextlib.contextmanager
def _staged(
    target: str | os.PathLike,
    path: Path,
    option: str,
    commit: Callable[[Path], None],
    undo: Callable[[Path], None] | None = None,
) -> Iterator[Path]:
    """Yield a fresh folder beside ``path``; when the block succeeds, ``commit(stage)`` puts it in place.

    ``commit`` runs with Ctrl-C deferred. If the block or the commit fails, ``undo(stage)`` (if given) puts
    back what the commit moved aside; Ctrl-C raises :class:`Interrupted` and an ``OSError`` about the output
    the one-line 'cannot write' error. The folder is removed in every case (a commit that renamed it away
    leaves nothing to remove).
    """
    stage = _make_stage(target, path, option)
    committed = False
    try:
        yield stage
        with deferred_interrupt():
            commit(stage)
            committed = True
    except KeyboardInterrupt as exc:
        if not committed and undo is not None:
            undo(stage)
        raise _interrupted(path, committed) from (None if committed else exc)
    except OSError as exc:
        _raise_write_error(exc, stage, path, target, option)
    finally:
        if not committed and undo is not None:
            undo(stage)  # whatever stopped the commit, what it moved aside goes back before the folder goes
        shutil.rmtree(stage, ignore_errors=True)


def _make_stage(target: str | os.PathLike, path: Path, option: str) -> Path:
    """A fresh temporary folder beside ``path`` (same file system, so the final rename is atomic)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=STAGING_PREFIX + path.name[:60] + "-", dir=path.parent))
    except OSError as exc:
        raise _cannot_write(target, exc, option) from exc


def _raise_write_error(exc: OSError, stage: Path, path: Path, target: str | os.PathLike, option: str) -> NoReturn:
    """Re-raise ``exc``, as the one-line 'cannot write' error when it came from writing the output."""
    if isinstance(exc, PinnlogError) or not _about(exc, stage, path):
        raise exc
    raise _cannot_write(target, exc, option) from exc


def _cannot_write(target: str | os.PathLike, exc: OSError, option: str) -> ReportOutputError:
    return OutputPathError(f"cannot write to {target} ({exc.strerror or type(exc).__name__}); choose another {option}")


def _interrupted(path: Path, committed: bool) -> Interrupted:
    """The one line Ctrl-C prints: what the output folder or file holds now."""
    if committed:
        return Interrupted(f"interrupted; {path} was written in full")
    kept = f"the previous {path} is unchanged" if path.exists() else "nothing written"
    return Interrupted(f"interrupted; {kept}")


def _about(exc: OSError, stage: Path, target: Path) -> bool:
    """Whether an ``OSError`` came from writing the output (not from reading a store): it names a file there."""
    names = [n for n in (exc.filename, getattr(exc, "filename2", None)) if n is not None]
    if not names:  # a write through an open file object (disk full) names no file
        return exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG)
    roots = (str(stage), str(target), str(target.parent))
    return any(os.fspath(n).startswith(roots) for n in names)


def _commit(stage: Path, path: Path, ours: Callable[[set[str]], bool]) -> None:
    if not os.path.lexists(path):
        os.rename(stage, path)
        return
    if _previous_output(path, ours):
        old = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX + "old-", dir=path.parent))
        os.rename(path, old / "previous")
        try:
            os.rename(stage, path)
        except OSError:
            os.rename(old / "previous", path)  # put the previous output back
            raise
        shutil.rmtree(old, ignore_errors=True)
        return
    for entry in os.scandir(stage):  # a folder with other files: replace ours, keep theirs
        destination = path / entry.name
        if os.path.lexists(destination) and stat.S_ISDIR(os.lstat(destination).st_mode):
            raise OutputPathError(f"{destination} is a folder; pinnlog would replace it with a file, choose another folder")
        os.replace(entry.path, destination)
    os.rmdir(stage)


@contextlib.contextmanager
def staged_file(target: str | os.PathLike, *, option: str = "-o") -> Iterator[Path]:
    """Yield a temporary file name beside ``target``; when the block succeeds, the file replaces ``target``.

    The name does not exist yet (create it with :func:`open_new` or any writer). On failure or Ctrl-C
    it is removed and ``target`` stays as it was (:class:`Interrupted` says so).
    """
    path = check_output_path(target, option=option, directory=False)

    def commit(stage: Path) -> None:
        staged = stage / path.name
        os.chmod(staged, 0o666 & ~_umask())
        os.replace(staged, path)

    with _staged(target, path, option, commit) as stage:
        yield stage / path.name


@contextlib.contextmanager
def staged_store(target: str | os.PathLike, *, option: str = "-o") -> Iterator[Path]:
    """Yield a store path in a temporary folder beside ``target``; on success it replaces ``target`` whole.

    For commands whose output is a run store (``import-paper-logs``): an interrupted conversion leaves
    the previous store (or nothing), never a half-written one. The caller decides whether an existing
    ``target`` may be replaced.
    """
    path = check_output_path(target, option=option, store=True)

    def commit(stage: Path) -> None:
        if os.path.lexists(path):
            os.rename(path, stage / "previous")
        os.rename(stage / path.name, path)

    def undo(stage: Path) -> None:  # Ctrl-C between the two renames: put the previous store back
        if os.path.lexists(stage / "previous") and not os.path.lexists(path):
            os.rename(stage / "previous", path)

    with _staged(target, path, option, commit, undo) as stage:
        yield stage / path.name
