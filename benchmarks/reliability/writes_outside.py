"""Issue 13 campaign: can a report, a comparison, an export or a watch write outside its output? Count victims.

Every attack of finding 1, against ``analyze`` (default output and ``-o``), ``compare``, ``watch --once``,
``export --to csv`` and ``export --to netcdf``. The run store's ``model`` attribute carries newlines, an
ssh key line and terminal control characters (what an attacker wants written into ``authorized_keys``).
A victim is a file of the user outside the output (``authorized_keys``, ``secret.txt``) or a path a
dangling link points to; it counts as changed when its bytes or its inode change, or when a path that
did not exist now does. Target: 0 victims changed.

The attacks:

- ``link_file``: a pre-made output folder whose ``report.html`` (export: ``columns.csv``) is a link to a victim;
- ``link_summary``: the same with ``summary.json`` (export: ``scalars.csv``);
- ``link_png``: the same with a figure, ``snr.png`` (export: ``phases.csv``);
- ``dangling``: ``report.html`` a link to a victim path that does not exist yet;
- ``mixed_folder``: the output folder holds a foreign file besides a link ``report.html`` to a victim;
- ``out_is_link``: the output folder itself is a link to the victim's folder;
- ``parent_is_link``: a folder above the output is a link to the victim's folder.

For ``export --to netcdf`` the output is one file: ``NAME.nc`` itself is the link (or the dangling link).

Run from the repository root::

    python -m benchmarks.reliability.writes_outside
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "reliability"))

from benchmarks.reliability.corpus_commands import invoke  # noqa: E402

#: What an attacker puts into the model name: a key line between newlines, and terminal escapes.
EVIL_MODEL = "MLP\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAttacker attacker@evil\n\x1b]52;c;ZXZpbA==\x07\x1b[2J\r"
VICTIM_TEXT = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIUser user@laptop\n"
COMMANDS = ("analyze (default -o)", "analyze", "compare", "watch --once", "export csv", "export netcdf")
ATTACKS = ("link_file", "link_summary", "link_png", "dangling", "mixed_folder", "out_is_link", "parent_is_link")
#: The file names each kind of output writes, linked by link_file, link_summary and link_png.
NAMES = {"report": ("report.html", "summary.json", "snr.png"), "csv": ("columns.csv", "scalars.csv", "phases.csv")}


@dataclass(frozen=True)
class Attack:
    command: str
    attack: str
    exit_code: int
    victims_changed: int
    stderr: str


def _fingerprint(path: Path) -> tuple | None:
    if not os.path.lexists(path):
        return None
    st = os.lstat(path)
    data = path.read_bytes() if path.is_file() and not path.is_symlink() else b""
    return st.st_ino, st.st_mode, hashlib.sha256(data).hexdigest()


def _victims(folder: Path) -> dict[Path, tuple | None]:
    return {p: _fingerprint(p) for p in [*folder.rglob("*"), folder / "not_yet.txt"]}


def make_store(path: Path) -> Path:
    from corpus_tools import write_healthy_store

    return write_healthy_store(path, attrs={"model": EVIL_MODEL, "config": {"pde": EVIL_MODEL}})


def attack(command: str, name: str, store: Path, work: Path) -> Attack:
    """Set up one attack in ``work`` (a fresh folder), run the command, count the victims it changed."""
    victim_dir = work / "home"
    (victim_dir / ".ssh").mkdir(parents=True)
    (victim_dir / ".ssh" / "authorized_keys").write_text(VICTIM_TEXT)
    (victim_dir / "secret.txt").write_text("the user's own file\n")
    victim = victim_dir / ".ssh" / "authorized_keys"
    run = shutil.copytree(store, work / "run.zarr")
    netcdf = command == "export netcdf"
    kind = "csv" if command == "export csv" else "report"
    out = work / ("run.nc" if netcdf else "run_report" if command == "analyze (default -o)" else "out")
    if name == "out_is_link":
        out.symlink_to(victim_dir if not netcdf else victim)
    elif name == "parent_is_link":
        (work / "up").symlink_to(victim_dir, target_is_directory=True)
        out = work / "up" / out.name
        if command == "analyze (default -o)":  # the default output is beside the run: the run is under the link
            run = shutil.copytree(run, victim_dir / "run.zarr")
            run = work / "up" / "run.zarr"
    elif netcdf:  # one file: the output itself is the link
        out.symlink_to(victim_dir / "not_yet.txt" if name == "dangling" else victim)
    else:
        out.mkdir()
        linked = {"link_file": 0, "link_summary": 1, "link_png": 2, "dangling": 0, "mixed_folder": 0}[name]
        target = victim_dir / "not_yet.txt" if name == "dangling" else victim
        (out / NAMES[kind][linked]).symlink_to(target)
        if name == "mixed_folder":
            (out / "notes.txt").write_text("a file of the user beside the report\n")
    before = _victims(victim_dir)
    args = {
        "analyze (default -o)": ("analyze", run, "-q"),
        "analyze": ("analyze", run, "-o", out, "-q"),
        "compare": ("compare", run, run, "-l", "a", "-l", "b", "-o", out, "-q"),
        "watch --once": ("watch", run, "--once", "-o", out, "-q"),
        "export csv": ("export", run, "--to", "csv", "-o", out, "-q"),
        "export netcdf": ("export", run, "--to", "netcdf", "-o", out, "-q"),
    }[command]
    code, _, err, _ = invoke(*args)
    after = _victims(victim_dir)
    changed = sum(before.get(p) != after.get(p) for p in set(before) | set(after))
    return Attack(command, name, code, changed, err)


def run_campaign(work: Path, commands=COMMANDS, attacks=ATTACKS) -> list[Attack]:
    store = make_store(work / "evil.zarr")
    found = []
    for command in commands:
        for name in attacks:
            folder = work / f"{command.split()[0]}_{len(found)}"
            folder.mkdir()
            found.append(attack(command, name, store, folder))
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        found = run_campaign(Path(tmp))
    changed = sum(a.victims_changed for a in found)
    refused = sum(a.exit_code == 2 for a in found)
    print(f"writes outside: {len(found)} attacks ({len(COMMANDS)} commands x {len(ATTACKS)}), victim files changed: {changed}")
    print(
        f"  refused (exit 2): {refused}; written inside the output, links replaced not followed (exit 0): "
        f"{sum(a.exit_code == 0 for a in found)}; other exits: {sorted({a.exit_code for a in found} - {0, 2})}"
    )
    for a in found:
        if a.victims_changed or a.exit_code not in (0, 2):
            print(
                f"  {a.command} / {a.attack}: exit {a.exit_code}, {a.victims_changed} victims changed: {a.stderr.strip()[-200:]}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
