"""The ledger's write-ahead log copied into its database file on a thread of its own.

Why: in WAL mode SQLite appends every page a transaction changed to ``ledger.sqlite-wal``; a
checkpoint copies those pages into the database file and syncs both, and then the writer
starts the WAL over. Left to the writer alone, the COMMIT that takes the WAL past 50,000
pages (``wal_autocheckpoint``) does the whole copy, ~200 MB of random pages at millions of
recipients, and waits for the disk while the engine's next claim queues behind it. Measured
(``BENCHMARKS.md``, "Session 12"): with a copy every second the ledger bench at 3M recipients
claimed 88,094 rows/s of wall time against 78,893 without (the process's CPU the same, 78.8
and 79.0 s), and 17M recipients end to end took 767 s against 789 s.

Theory of operation: :class:`Checkpointer` opens its own connection to the file and runs
``PRAGMA wal_checkpoint(PASSIVE)`` every ``every`` seconds. PASSIVE never blocks the writer and
never waits for it: it copies the pages committed so far and returns. The writer keeps its
own automatic checkpoint, which now finds most pages copied and has only the tail left.
SQLite starts the WAL over at the writer's next transaction once a checkpoint (either one)
has copied everything. SQLite releases the GIL while it copies, so the copy runs beside the
ledger's calls. Nothing here decides durability: a page is in the WAL when its COMMIT
returns, whether or not this thread ever copies it.

An error (a full disk, a file that is not a database) is logged once and the thread goes on
trying every ``every`` seconds; the writer's own checkpoints are unaffected, so the worst
case is the behaviour without this thread.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

__all__ = ["Checkpointer"]

log = logging.getLogger("smsblast.ledger")


class Checkpointer:
    """Copies the WAL of the SQLite file at ``path`` into the file every ``every`` seconds,
    from :meth:`start` until :meth:`stop`. Stop it before closing the writer's connection, so
    that the writer's close is the last one (it checkpoints and removes the WAL)."""

    def __init__(self, path: str, every: float = 1.0) -> None:
        self.path = path
        self.every = every
        self.checkpoints = 0  # completed, for tests and curiosity
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ledger checkpoints", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the thread to end and wait for it (a copy under way finishes first)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while not self._stop.wait(self.every):
                try:
                    if conn is None:
                        conn = sqlite3.connect(self.path, isolation_level=None)
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
                except sqlite3.Error as exc:
                    self.errors += 1
                    if self.errors == 1:
                        log.warning(
                            "%s: background checkpoint failed (%s); the writer's own "
                            "checkpoints go on",
                            self.path,
                            exc,
                        )
        finally:
            if conn is not None:
                conn.close()
