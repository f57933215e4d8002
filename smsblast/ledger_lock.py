"""One engine per ledger: ``smsblast run`` holds an exclusive lock on its ledger while it runs.

Why: two engines on one ledger each take the other's PENDING recipients (claimed, waiting in
the other's memory) for their own backfill, and send them. Measured with two ``smsblast
run`` on one configuration, 20,000 recipients: 16,692 duplicates, and neither engine ever
finished. Several campaigns belong in one engine (``--campaign`` selects them), or each
engine gets its own ``ledger.path``. ``smsblast prune`` takes the same lock, so it never
deletes rows under a running engine, and no engine starts while it deletes.

The lock is ``flock(2)`` on ``<ledger>.lock``, next to the ledger. The kernel releases it
when the process ends in any way (``kill -9`` included), so a crashed engine never leaves a
stale lock behind, and a restart takes it at once. The file holds the owner's command, pid and
start time, for the error the next one prints; its content is never trusted for the lock
itself. The descriptor is not inherited by child processes (Python's default), so the
ledger's own process cannot keep the lock alive after the engine died. ``flock`` is only
advisory, and unreliable on some network filesystems: keep the ledger on a local disk.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time

__all__ = ["LedgerInUse", "LedgerLock"]


class LedgerInUse(Exception):
    """Another process holds the ledger's lock."""


class LedgerLock:
    """The lock on one ledger, taken by :meth:`acquire`; :meth:`release` gives it back."""

    def __init__(self, ledger_path: str, command: str = "smsblast run") -> None:
        self.ledger_path = ledger_path
        self.command = command  # named in the error another process gets
        self.path = f"{ledger_path}.lock"
        self._fd: int | None = None

    def acquire(self) -> LedgerLock:
        """Take the lock without waiting. Returns ``self``.

        Raises:
            LedgerInUse: another process holds it (the message names its pid).
            OSError: the lock file cannot be created.
        """
        if self.ledger_path == ":memory:":
            return self  # nothing to share
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_owner(fd)
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise
            command, sep, rest = holder.partition(": ")
            if sep and command.startswith("smsblast "):
                holder = rest
            else:  # written by an older smsblast (only a pid), or not at all
                command = "smsblast process"
            advice = (
                "Run every campaign in that one engine (--campaign selects them), or give "
                "this run its own ledger.path"
                if command.endswith(" run")
                else "Wait for it to finish"
            )
            raise LedgerInUse(
                f"the ledger {self.ledger_path} is in use by another "
                f"{command}{f' ({holder})' if holder else ''}. {advice}"
            ) from None
        since = time.strftime("%Y-%m-%d %H:%M:%S %z")
        owner = f"{self.command}: pid {os.getpid()}, since {since}\n"
        with contextlib.suppress(OSError):  # only a note for the next engine (a full disk)
            os.ftruncate(fd, 0)
            os.pwrite(fd, owner.encode(), 0)
        self._fd = fd
        return self

    def try_acquire(self) -> str | None:
        """:meth:`acquire`, for a command: ``None`` once the lock is held, else why it could
        not be taken (another holder, named; or the lock file's error), for its error line."""
        try:
            self.acquire()
        except LedgerInUse as exc:
            return str(exc)
        except OSError as exc:
            return f"cannot lock the ledger: {self.path}: {exc.strerror}"
        return None

    def release(self) -> None:
        """Give the lock back (idempotent). The file stays: removing it could let two
        processes lock two different files of one name."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # closing releases the flock

    def __enter__(self) -> LedgerLock:
        return self.acquire()

    def __exit__(self, *_exc: object) -> None:
        self.release()


def _read_owner(fd: int) -> str:
    with contextlib.suppress(OSError):
        return os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    return ""
