"""No output is ever written outside itself (issue 13, finding 1): links in and above the output are not followed.

Each attack of ``benchmarks/reliability/writes_outside.py`` prepares a victim (``~/.ssh/authorized_keys``
of a fake home) and links to it from where a report, a comparison, a watch or an export writes; the run's
``model`` attribute carries an ssh key line between newlines and terminal escapes. The victim's bytes and
inode must be unchanged and no dangling link's target may be created.
"""

from __future__ import annotations

import os

import pytest

from benchmarks.reliability.writes_outside import ATTACKS, NAMES, attack, make_store

pytestmark = pytest.mark.timeout(300)
CASES = [("analyze (default -o)", a) for a in ATTACKS] + [
    ("analyze", "parent_is_link"),
    ("compare", "link_summary"),
    ("watch --once", "link_png"),
    ("export csv", "link_file"),
    ("export csv", "out_is_link"),
    ("export netcdf", "link_file"),
    ("export netcdf", "dangling"),
]


@pytest.fixture(scope="module")
def evil_store(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("evil") / "evil.zarr")


@pytest.mark.parametrize(("command", "name"), CASES)
def test_no_victim_file_changes(evil_store, tmp_path, command, name):
    result = attack(command, name, evil_store, tmp_path)
    assert result.victims_changed == 0, result
    assert result.exit_code in (0, 2), result.stderr
    if name in ("out_is_link", "parent_is_link"):  # a link in the output path is refused, in one line
        assert result.exit_code == 2 and "symbolic link" in result.stderr, result
    out = tmp_path / ("run.nc" if command == "export netcdf" else "run_report" if "default" in command else "out")
    if result.exit_code == 0 and name in ("link_file", "link_summary", "link_png"):
        # written in place of the link: the output file is a real file now, the link is gone
        linked = (
            out
            if command == "export netcdf"
            else out
            / NAMES["csv" if command == "export csv" else "report"][("link_file", "link_summary", "link_png").index(name)]
        )
        assert linked.is_file() and not linked.is_symlink(), linked
    if name == "dangling":
        assert not (tmp_path / "home" / "not_yet.txt").exists()
    if name == "mixed_folder" and result.exit_code == 0:
        assert (out / "notes.txt").read_text() == "a file of the user beside the report\n"  # foreign files kept


def test_the_attack_would_be_seen(evil_store, tmp_path):
    # the victim count is not blind: writing through the link (what pinnlog once did) changes the victim
    (tmp_path / "home").mkdir()
    victim = tmp_path / "home" / "authorized_keys"
    victim.write_text("key\n")
    from benchmarks.reliability.writes_outside import _victims

    before = _victims(tmp_path / "home")
    link = tmp_path / "report.html"
    link.symlink_to(victim)
    with open(link, "a") as f:  # follows the link, as a plain open() does
        f.write("ssh-ed25519 attacker\n")
    assert sum(before[p] != v for p, v in _victims(tmp_path / "home").items()) == 1
    os.unlink(link)
