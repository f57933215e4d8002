"""The ledger in its own process (smsblast.ledger_process): same answers as the ledger on a
thread, typed errors, and a child that neither outlives the engine nor dies with Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from smsblast.ledger import (
    AsyncLedger,
    Claim,
    LedgerError,
    NumbersLevels,
    Outcome,
    ReceiptRow,
    SqliteLedger,
    State,
)
from smsblast.ledger_process import ProcessBackend


def _claims(numbers: range, route: str = "telkomsel") -> list[Claim]:
    return [Claim(f"62811{n:07d}", route, 1, "seg", 0, n) for n in numbers]


async def _script(ledger: AsyncLedger) -> list[Any]:
    """A run in miniature, with overlapping batches made without waiting for each other."""
    await ledger.open_campaign("c", {"seg:0": 300})
    answers: list[Any] = list(
        await asyncio.gather(
            ledger.claim("c", _claims(range(0, 200)), State.IN_FLIGHT),
            ledger.claim("c", _claims(range(100, 300)), State.IN_FLIGHT),  # 100 known
            ledger.record_outcomes(
                "c",
                [
                    Outcome(f"62811{n:07d}", State.SUBMITTED, 0, "", [(0, f"{n:x}", f"{n:x}")])
                    for n in range(0, 250)
                ],
            ),
            ledger.record_receipts(
                [ReceiptRow(f"{n:x}", "delivered", f"{n:x}", 1.0) for n in range(0, 260, 2)]
            ),
            ledger.mark("c", [f"62811{n:07d}" for n in range(250, 300)], State.UNKNOWN),
        )
    )
    answers.append(await ledger.counts("c"))
    answers.append(await ledger.counts_by_route("c"))
    answers.append(await ledger.pending("c", None, 10))
    return answers


async def test_same_answers_as_the_ledger_on_a_thread(tmp_path: Path) -> None:
    on_thread = AsyncLedger(tmp_path / "thread.sqlite")
    in_process = AsyncLedger(tmp_path / "process.sqlite", process=True)
    try:
        expected = await _script(on_thread)
        got = await _script(in_process)
    finally:
        await on_thread.close()
        await in_process.close()
    assert got == expected
    counts = got[5]
    assert counts["delivered"] == 125  # even ids below 250 had a receipt for a submitted row
    assert counts["submitted"] == 125
    assert counts["unknown"] == 50
    # The second claim saw 100 numbers the first had claimed: the answers say so, in order.
    assert got[1][:100] == [State.IN_FLIGHT] * 100 and got[1][100:] == [None] * 100
    # A receipt whose id was never recorded comes back unmatched (ids 250..258).
    assert sorted(r.key for r in got[3]) == sorted(f"{n:x}" for n in range(250, 260, 2))


async def test_numbers_filed_on_in_the_child_give_the_same_answers(tmp_path: Path) -> None:
    """Tiny levels reach the child through its options, so the script's numbers pass
    through memory, numbers_recent and numbers there; the answers are those of the default
    levels, where every number stays in memory."""
    default = AsyncLedger(tmp_path / "default.sqlite")
    tiny = AsyncLedger(
        tmp_path / "tiny.sqlite",
        process=True,
        levels=NumbersLevels(in_memory=40, recent=60, move=20),
    )
    try:
        expected = await _script(default)
        got = await _script(tiny)
        again = await tiny.claim("c", _claims(range(300)), State.PENDING)
    finally:
        await default.close()
        await tiny.close()
    assert got == expected
    assert again == [
        State.UNKNOWN if n >= 250 else State.SUBMITTED if n % 2 else State.DELIVERED
        for n in range(300)
    ]
    conn = sqlite3.connect(tmp_path / "tiny.sqlite")
    try:
        filed = [
            conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("numbers_recent", "numbers")
        ]
    finally:
        conn.close()
    assert all(filed), filed  # both tables took numbers


async def test_errors_come_back_typed_and_the_ledger_keeps_working(tmp_path: Path) -> None:
    ledger = AsyncLedger(tmp_path / "l.sqlite", process=True)
    try:
        with pytest.raises(LedgerError, match="control must be one of"):
            await ledger.set_control("nope", "sideways")
        backend = ledger._backend
        with pytest.raises(LedgerError, match="no such ledger call: 'close_all'"):
            await backend.call("close_all", ())
        await ledger.open_campaign("c", {})
        assert await ledger.claim("c", _claims(range(3)), State.IN_FLIGHT) == [None] * 3
    finally:
        await ledger.close()


async def test_an_unopenable_ledger_fails_every_call(tmp_path: Path) -> None:
    ledger = AsyncLedger(tmp_path / "missing-dir" / "l.sqlite", process=True)
    for _ in range(2):
        with pytest.raises(LedgerError, match="failed to open") as caught:
            await ledger.counts("c")
        assert "unable to open database file" in str(caught.value.__cause__)
    await ledger.close()


async def test_the_child_ignores_sigint_and_sigterm(tmp_path: Path) -> None:
    """Ctrl-C and a service manager's stop reach the whole process group; the engine, not
    the ledger, decides when to stop."""
    ledger = AsyncLedger(tmp_path / "l.sqlite", process=True)
    try:
        await ledger.open_campaign("c", {})
        backend = ledger._backend
        assert isinstance(backend, ProcessBackend)
        os.kill(backend.pid, signal.SIGINT)
        os.kill(backend.pid, signal.SIGTERM)
        await asyncio.sleep(0.3)
        assert await ledger.claim("c", _claims(range(5)), State.IN_FLIGHT) == [None] * 5
    finally:
        await ledger.close()
    assert backend._proc.returncode == 0
    failure = ledger.failure()
    assert failure is not None and not failure.done()  # closing is not failing


async def test_a_dead_child_fails_pending_and_later_calls(tmp_path: Path) -> None:
    ledger = AsyncLedger(tmp_path / "l.sqlite", process=True)
    await ledger.open_campaign("c", {})
    backend = ledger._backend
    assert isinstance(backend, ProcessBackend)
    os.kill(backend.pid, signal.SIGKILL)
    with pytest.raises(LedgerError, match=r"ledger process is gone \(exit code -9\)"):
        await ledger.claim("c", _claims(range(5)), State.IN_FLIGHT)
    with pytest.raises(LedgerError, match="ledger process is gone"):
        await ledger.counts("c")
    failure = ledger.failure()  # what the engine watches to stop at once
    assert failure is not None and failure.done()
    assert "exit code -9" in str(failure.result())
    await ledger.close()  # does not hang or raise


_ENGINE = textwrap.dedent(
    """
    import asyncio, sys, time
    from smsblast.ledger import AsyncLedger, Claim, State

    async def main():
        ledger = AsyncLedger(sys.argv[1], process=True)
        await ledger.open_campaign("c", {})
        claims = [Claim(f"62811{n:07d}", "telkomsel", 1, "seg", 0, n) for n in range(1000)]
        await ledger.claim("c", claims, State.IN_FLIGHT)
        print(ledger._backend.pid, flush=True)
        await asyncio.sleep(60)

    asyncio.run(main())
    """
)


def test_the_child_exits_when_the_engine_is_killed(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    engine = subprocess.Popen(
        [sys.executable, "-c", _ENGINE, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert engine.stdout is not None
        child = int(engine.stdout.readline())
        engine.kill()
        engine.wait(10)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
            status = Path(f"/proc/{child}/status").read_text()
            if "State:\tZ" in status:
                break  # exited; only its (dead) parent could have reaped it
            time.sleep(0.05)
        gone = not Path(f"/proc/{child}").exists()
        assert gone or "State:\tZ" in Path(f"/proc/{child}/status").read_text()
    finally:
        engine.kill()
        engine.wait()
    # What the killed engine was told was durable is in the file.
    ledger = SqliteLedger(path)
    try:
        assert ledger.counts("c")["in_flight"] == 1000
    finally:
        ledger.close()
