"""The console script prints warnings as one ``warning:`` line each, without Python's source location."""

import warnings

import pytest

from pinnlog.analyzer import cli
from pinnlog.analyzer.errors import PhaseDetectionWarning


def test_warnings_are_one_line_each_without_source_location(monkeypatch, capsys):
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # main() replaces it: put it back after
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("snr: 3 non-positive or non-finite values skipped", PhaseDetectionWarning, stacklevel=1)
        warnings.warn("invalid value encountered in subtract", RuntimeWarning, stacklevel=1)
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "warning: snr: 3 non-positive or non-finite values skipped",  # pinnlog's own: the message is the line
        "warning: RuntimeWarning: invalid value encountered in subtract",  # another library's: its category named
    ]
