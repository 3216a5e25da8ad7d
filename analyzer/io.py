"""Kept for code written against older releases: the reader lives in :mod:`pinnlog.analyzer.store.read`."""

from pinnlog.analyzer.store.read import describe_run, open_run, require_group

__all__ = ["describe_run", "open_run", "require_group"]
