"""When to capture: tiny schedule objects, combinable with ``|``.

    every(100)                                   # 0, 100, 200, ...
    every(2, stop=300) | every(100, start=300)   # the paper's cadence, in one line
    logspaced(300_000, 400)                      # ~400 steps, log-spaced up to 300,000
    steps([10, 20, 1000])                        # explicit steps (a plain list works too)

A schedule is a predicate ``schedule(step) -> bool``; its ``repr`` is the expression that builds it,
so the store records exactly what was asked for.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from pinnlog.analyzer.errors import ArgumentError, ArgumentTypeError

__all__ = ["Schedule", "as_schedule", "every", "logspaced", "parse_schedule", "steps"]


class Schedule:
    """Base class: a predicate over integer steps."""

    def __call__(self, step: int) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def __or__(self, other) -> Schedule:
        return _Union(self, as_schedule(other))

    def __ror__(self, other) -> Schedule:
        return _Union(as_schedule(other), self)

    def select(self, candidates: Iterable[int]) -> list[int]:
        """The steps among ``candidates`` that this schedule picks."""
        return [int(s) for s in candidates if self(int(s))]


class every(Schedule):
    """Every ``n`` steps from ``start`` (inclusive) to ``stop`` (exclusive, ``None`` = forever)."""

    def __init__(self, n: int, start: int = 0, stop: int | None = None):
        if int(n) < 1:
            raise ArgumentError(f"every(n) needs n >= 1, got {n}")
        self.n, self.start, self.stop = int(n), int(start), None if stop is None else int(stop)

    def __call__(self, step: int) -> bool:
        if step < self.start or (self.stop is not None and step >= self.stop):
            return False
        return (step - self.start) % self.n == 0

    def __repr__(self) -> str:
        args = [str(self.n)]
        if self.start:
            args.append(f"start={self.start}")
        if self.stop is not None:
            args.append(f"stop={self.stop}")
        return f"every({', '.join(args)})"


class steps(Schedule):
    """An explicit set of steps."""

    def __init__(self, values: Iterable[int]):
        self.values = frozenset(int(v) for v in values)

    def __call__(self, step: int) -> bool:
        return step in self.values

    def __repr__(self) -> str:
        shown = sorted(self.values)
        body = ", ".join(map(str, shown[:8])) + (", ..." if len(shown) > 8 else "")
        return f"steps([{body}])"


class logspaced(steps):
    """About ``n`` distinct steps spaced evenly in log(step) from 0 to ``total`` (both included)."""

    def __init__(self, total: int, n: int):
        if int(total) < 1 or int(n) < 2:
            raise ArgumentError(f"logspaced(total, n) needs total >= 1 and n >= 2, got ({total}, {n})")
        self.total, self.n = int(total), int(n)
        grid = np.unique(np.round(np.geomspace(1, self.total, self.n - 1)).astype(np.int64))
        super().__init__([0, *grid.tolist()])

    def __repr__(self) -> str:
        return f"logspaced({self.total}, {self.n})"


class _Union(Schedule):
    def __init__(self, *parts: Schedule):
        self.parts = parts

    def __call__(self, step: int) -> bool:
        return any(p(step) for p in self.parts)

    def __repr__(self) -> str:
        return " | ".join(repr(p) for p in self.parts)


class _Never(Schedule):
    def __call__(self, step: int) -> bool:
        return False

    def __repr__(self) -> str:
        return "None"


def parse_schedule(text: str) -> Schedule:
    """A schedule from the expression its ``repr`` (and ``pinnlog info``) shows: ``"every(10)"``,
    ``"every(2, stop=300) | every(100, start=300)"``, ``"logspaced(1000, 50)"``, ``"steps([1, 5])"``,
    ``"100"`` or ``"None"``. Parsed, never evaluated: anything else is refused in one line.
    """
    import ast

    def fail() -> ArgumentError:
        return ArgumentError(
            f"schedule {text!r} is not a schedule expression; write e.g. 'every(10)', 'every(2, stop=300) | every(100)', "
            "'logspaced(1000, 50)' or '[10, 20]'"
        )

    def literal(node):
        try:
            value = ast.literal_eval(node)
        except ValueError:
            raise fail() from None
        if isinstance(value, bool) or not isinstance(value, (int, list, tuple, type(None))):
            raise fail()
        return value

    def build(node) -> Schedule:
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            return build(node.left) | build(node.right)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _PARSABLE:
            args = [literal(a) for a in node.args]
            kwargs = {k.arg: literal(k.value) for k in node.keywords if k.arg is not None}
            if len(kwargs) != len(node.keywords):
                raise fail()
            try:
                return _PARSABLE[node.func.id](*args, **kwargs)
            except TypeError:
                raise fail() from None
        return as_schedule(literal(node))

    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        raise fail() from None
    return build(tree.body)


_PARSABLE = {"every": every, "steps": steps, "logspaced": logspaced}


def as_schedule(value) -> Schedule:
    """Accept a ``Schedule``, ``None`` (never), an int ``n`` (every n), an iterable of steps or an
    expression string (:func:`parse_schedule`)."""
    if isinstance(value, Schedule):
        return value
    if value is None:
        return _Never()
    if isinstance(value, str):
        return parse_schedule(value)
    if isinstance(value, bool):
        raise ArgumentTypeError(
            "a schedule must be a pinnlog Schedule, an int, a list of steps or an expression string, not a bool"
        )
    if isinstance(value, (int, np.integer)):
        return every(int(value))
    if callable(value):
        raise ArgumentTypeError("a schedule must be a pinnlog Schedule, an int or a list of steps, not a function")
    try:
        return steps(value)
    except (TypeError, ValueError):
        raise ArgumentTypeError(
            f"a schedule must be a pinnlog Schedule, an int, a list of integer steps or an expression string, "
            f"not {type(value).__name__}"
        ) from None
