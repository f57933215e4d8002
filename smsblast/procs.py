"""Child processes we started (broker, simulator, a test's Prometheus, the ledger process):
stopping them, and finding a process's children."""

from __future__ import annotations

import subprocess
from pathlib import Path


def stop_process(proc: subprocess.Popen[bytes] | subprocess.Popen[str], grace: float) -> None:
    """SIGTERM, wait up to ``grace`` seconds, then SIGKILL and reap. No-op if it exited."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def child_pids(pid: int) -> list[int]:
    """The pids of ``pid``'s children (Linux ``/proc``); [] if it is gone."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
