"""Reliability campaigns (issue 9): kill, live read, disk full, fuzz. Run from the repository root."""
