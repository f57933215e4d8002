"""The background checkpointer, on real SQLite files: what it copies and how it stops."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from smsblast.checkpointer import Checkpointer
from smsblast.ledger import AsyncLedger, Claim, SqliteLedger, State


def _claims(n: int) -> list[Claim]:
    return [Claim(f"62811{i:07d}", "telkomsel", 1, "seg", 0, i) for i in range(n)]


def _rows_in_database_file(path: Path) -> int:
    """Recipients in the database file itself, the WAL ignored (what a checkpoint copied)."""
    conn = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'recipients'")
        if not tables.fetchone()[0]:
            return 0  # not even the schema has been copied yet
        return int(conn.execute("SELECT count(*) FROM recipients").fetchone()[0])
    finally:
        conn.close()


def _wait_for(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.02)


def test_committed_pages_reach_the_database_file_without_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    ledger = SqliteLedger(path)
    checkpointer = Checkpointer(str(path), every=0.05)
    try:
        ledger.open_campaign("c", {"seg:0": 2000})
        ledger.claim("c", _claims(2000), State.PENDING)
        # Far below the writer's 50,000-page threshold: only the WAL holds the rows.
        assert _rows_in_database_file(path) == 0
        checkpointer.start()
        _wait_for(lambda: _rows_in_database_file(path) == 2000)
        assert _rows_in_database_file(path) == 2000
        assert checkpointer.checkpoints >= 1 and checkpointer.errors == 0
    finally:
        checkpointer.stop()
        ledger.close()
    assert not (tmp_path / "l.sqlite-wal").exists()  # the writer's close was the last one


def test_the_writer_goes_on_while_it_copies(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    ledger = SqliteLedger(path)
    checkpointer = Checkpointer(str(path), every=0.0)  # copying all the time
    checkpointer.start()
    try:
        ledger.open_campaign("c", {"seg:0": 20_000})
        claims = _claims(20_000)
        for at in range(0, len(claims), 500):
            assert ledger.claim("c", claims[at : at + 500], State.PENDING) == [None] * 500
        assert ledger.counts("c")["pending"] == 20_000
    finally:
        checkpointer.stop()
        ledger.close()
    assert checkpointer.errors == 0
    assert _rows_in_database_file(path) == 20_000


def test_stop_ends_the_thread_and_a_second_stop_is_harmless(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    SqliteLedger(path).close()
    checkpointer = Checkpointer(str(path), every=60.0)
    checkpointer.start()
    started = time.monotonic()
    checkpointer.stop()
    checkpointer.stop()
    assert time.monotonic() - started < 5.0  # did not sleep out its minute
    assert not checkpointer._thread.is_alive()


def test_a_file_that_is_not_a_database_is_logged_once_and_nothing_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "not-a-ledger"
    path.write_bytes(b"this is not an SQLite file" * 100)
    checkpointer = Checkpointer(str(path), every=0.01)
    with caplog.at_level(logging.WARNING, logger="smsblast.ledger"):
        checkpointer.start()
        _wait_for(lambda: checkpointer.errors >= 3)
        checkpointer.stop()
    assert checkpointer.errors >= 3 and checkpointer.checkpoints == 0
    warnings = [r for r in caplog.records if "background checkpoint failed" in r.message]
    assert len(warnings) == 1 and "not a database" in warnings[0].message


async def test_the_ledger_process_copies_in_the_background(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    ledger = AsyncLedger(path, process=True)
    try:
        await ledger.open_campaign("c", {"seg:0": 1000})
        await ledger.claim("c", _claims(1000), State.PENDING)
        deadline = time.monotonic() + 10.0
        while _rows_in_database_file(path) < 1000 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert _rows_in_database_file(path) == 1000
    finally:
        await ledger.close()
    assert not (tmp_path / "l.sqlite-wal").exists()
