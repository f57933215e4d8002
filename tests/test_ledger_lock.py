"""The ledger's lock: one holder at a time, its pid named to the next, released by the
kernel when the holder dies (kill -9 included)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from smsblast.ledger_lock import LedgerInUse, LedgerLock


def test_a_second_holder_is_refused_with_the_first_ones_pid_until_it_releases(
    tmp_path: Path,
) -> None:
    ledger = str(tmp_path / "ledger.sqlite")
    first = LedgerLock(ledger).acquire()
    with pytest.raises(LedgerInUse, match=f"in use by another smsblast run \\(pid {os.getpid()}"):
        LedgerLock(ledger).acquire()
    first.release()
    first.release()  # idempotent
    with LedgerLock(ledger):
        pass
    assert Path(ledger).with_name("ledger.sqlite.lock").exists()  # kept: never unlinked


def test_another_ledger_is_not_locked(tmp_path: Path) -> None:
    with LedgerLock(str(tmp_path / "a.sqlite")), LedgerLock(str(tmp_path / "b.sqlite")):
        pass


def test_a_holder_killed_with_sigkill_leaves_no_stale_lock(tmp_path: Path) -> None:
    ledger = str(tmp_path / "ledger.sqlite")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from smsblast.ledger_lock import LedgerLock\n"
            f"LedgerLock({ledger!r}).acquire()\n"
            "print('held', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(LedgerInUse, match=f"pid {holder.pid}"):
            LedgerLock(ledger).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    deadline = time.monotonic() + 5
    while True:  # the kernel drops the lock with the process
        try:
            LedgerLock(ledger).acquire().release()
            break
        except LedgerInUse:
            assert time.monotonic() < deadline
            time.sleep(0.01)
