"""The writer lease: one process writes a run store at a time.

A recorder (any :class:`~pinnlog.analyzer.store.write.RunWriter` on a local directory) holds the file
``<store>/.pinnlog-lease.json``: its PID, host, a random token and a heartbeat (wall-clock seconds)
that a daemon thread renews every :data:`HEARTBEAT_S`. A second writer, ``overwrite=True`` and
``pinnlog verify --repair`` take the lease before they touch a store; while another process holds a
*live* lease they refuse with one line naming the holder (:class:`StoreLockedError`, exit 2).

A lease is *stale*, and is taken over, when its heartbeat is older than :data:`STALE_S`, or when it
names this host and a PID that no longer exists (a recorder killed with SIGKILL). A writer that finds
its lease gone or taken (its token replaced) stops writing: :attr:`Lease.lost` is checked before
every write.

The lease is advisory and local: it protects against pinnlog's own processes (and users running two
of them), not against someone editing the files by hand, and it is not used for fsspec URLs (object
stores have no atomic create-if-absent pinnlog could rely on).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from pinnlog.analyzer.errors import RecorderError, short

__all__ = ["HEARTBEAT_S", "LEASE_NAME", "STALE_S", "Lease", "LeaseHolder", "StoreLockedError", "current_holder"]

LEASE_NAME = ".pinnlog-lease.json"
HEARTBEAT_S = 5.0
STALE_S = 60.0
_MAX_LEASE_BYTES = 4096
#: Tokens of the leases this process holds now: another writer object of this same process is refused
#: while it holds one, and a lease it abandoned (a simulated kill) is stale.
_HELD: set[str] = set()


class StoreLockedError(RecorderError):
    """Another live process holds the store's writer lease."""


@dataclass(frozen=True)
class LeaseHolder:
    """What a lease file says: who holds it and when it last beat."""

    pid: int
    host: str
    token: str
    heartbeat: float
    dir: str = ""  # the store's real path when the lease was taken: a copied store's lease is not live

    @property
    def age(self) -> float:
        return max(0.0, time.time() - self.heartbeat)

    def alive(self, store_dir: str | os.PathLike | None = None) -> bool:
        """True while the holder may still be writing this store: a recent heartbeat, the same directory
        (a copy of a live store carries its lease) and, on this host, a running PID."""
        if self.age > STALE_S:
            return False
        if store_dir is not None and self.dir and self.dir != os.path.realpath(store_dir):
            return False
        if self.host == socket.gethostname():
            if self.pid == os.getpid():
                return self.token in _HELD  # this process: live while the writer object holds it
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                return True  # exists, another user's
        return True

    def describe(self) -> str:
        return f"PID {self.pid} on {short(self.host, 40, raw=True)} (heartbeat {self.age:.0f} s ago)"


def _read(path: Path) -> LeaseHolder | None:
    """The lease at ``path``; None when absent. A damaged lease file counts as stale (heartbeat 0)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return None
    except OSError:
        return LeaseHolder(-1, "?", "", 0.0)  # a link or something odd in its place: stale, replaced
    try:
        import stat

        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return LeaseHolder(-1, "?", "", 0.0)
        raw = os.read(fd, _MAX_LEASE_BYTES)
    finally:
        os.close(fd)
    try:
        doc = json.loads(raw)
        return LeaseHolder(int(doc["pid"]), str(doc["host"]), str(doc["token"]), float(doc["heartbeat"]), str(doc.get("dir", "")))
    except (ValueError, KeyError, TypeError, RecursionError):
        return LeaseHolder(-1, "?", "", 0.0)


def current_holder(store_dir: str | os.PathLike) -> LeaseHolder | None:
    """The live holder of the store's lease, or None (no lease, or a stale one)."""
    holder = _read(Path(store_dir) / LEASE_NAME)
    return holder if holder is not None and holder.alive(store_dir) else None


class Lease:
    """The writer lease of one local store, held from :meth:`acquire` to :meth:`release`.

    Parameters
    ----------
    store_dir : path
        The store's directory (it must exist).
    purpose : str
        What the holder does, for the refusal message ("record", "repair", "overwrite").
    """

    def __init__(self, store_dir: str | os.PathLike, purpose: str = "write"):
        self.dir = Path(store_dir)
        self.path = self.dir / LEASE_NAME
        self.purpose = purpose
        self.token = uuid.uuid4().hex
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _document(self) -> bytes:
        doc = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "token": self.token,
            "heartbeat": time.time(),
            "purpose": self.purpose,
            "dir": os.path.realpath(self.dir),
        }
        return json.dumps(doc).encode()

    def _write(self) -> None:
        """Replace the lease file atomically (temp file + rename; rename replaces a link, never follows it)."""
        tmp = self.dir / f"{LEASE_NAME}.{self.token}.partial"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
        try:
            os.write(fd, self._document())
        except OSError:
            os.close(fd)
            os.unlink(tmp)  # a full disk: leave no partial lease behind
            raise
        os.close(fd)
        os.replace(tmp, self.path)

    def acquire(self, *, heartbeat: bool = True) -> Lease:
        """Take the lease, or raise :class:`StoreLockedError` naming the live holder."""
        holder = _read(self.path)
        if holder is not None and holder.alive(self.dir) and holder.token != self.token:
            raise StoreLockedError(
                f"{self.dir} is being written by {holder.describe()}; pinnlog will not {self.purpose} a store "
                "another process writes: stop it or wait for it to finish"
            )
        self._write()
        time.sleep(0.01)  # two takers of one stale lease: the later rename wins, the other sees it here
        mine = _read(self.path)
        if mine is None or mine.token != self.token:
            other = mine.describe() if mine is not None else "another process"
            raise StoreLockedError(f"{self.dir} was just taken by {other}; pinnlog will not {self.purpose} it")
        _HELD.add(self.token)
        if heartbeat:
            self._thread = threading.Thread(target=self._beat, name="pinnlog-lease", daemon=True)
            self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            self.check()
            if self.lost:
                return
            with self._lock:
                if not self._stop.is_set():
                    with contextlib.suppress(OSError):  # a full disk: the next beat retries; the lease ages meanwhile
                        self._write()

    def check(self) -> bool:
        """True while this process still holds the lease; sets :attr:`lost` once it does not."""
        if not self.lost:
            holder = _read(self.path)
            if holder is None or holder.token != self.token:
                self.lost = True
        return not self.lost

    def abandon(self) -> None:
        """Stop the heartbeat and let go without removing the file, as a killed process would (tests use it)."""
        self._stop.set()
        _HELD.discard(self.token)

    def release(self) -> None:
        """Stop the heartbeat and remove the lease file if it is still ours."""
        self._stop.set()
        _HELD.discard(self.token)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=HEARTBEAT_S)  # a beat in progress finishes; none starts after the stop
        with self._lock:
            holder = _read(self.path)
            if holder is not None and holder.token == self.token:
                with contextlib.suppress(OSError):
                    self.path.unlink()
