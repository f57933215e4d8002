"""`smsblast demo` as a user runs it: a subprocess with the embedded broker, the simulator
and the engine; every recipient accounted for, Ctrl-C honoured, nothing left running."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")

pytestmark = pytest.mark.timeout(240)


def demo_env(marker: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SMSBLAST_TEST_MARKER": marker}
    env.pop("KAFKA_BOOTSTRAP", None)
    return env


def processes_with(marker: str) -> list[int]:
    """Live processes whose environment carries the marker (the demo and its children)."""
    found = []
    needle = f"SMSBLAST_TEST_MARKER={marker}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in environ.split(b"\0") and state != "Z":
            found.append(int(entry.name))
    return found


def assert_nothing_left(marker: str) -> None:
    deadline = time.monotonic() + 10
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_with(marker) == []


def demo_command(recipients: int, *extra: str, top: tuple[str, ...] = ()) -> list[str]:
    return [
        sys.executable,
        "-m",
        "smsblast",
        *top,
        "demo",
        "--recipients",
        str(recipients),
        *extra,
    ]


def test_demo_accounts_for_every_recipient_and_stops_everything() -> None:
    marker = uuid.uuid4().hex
    proc = subprocess.run(
        demo_command(
            2000,
            "--progress",
            "plain",
            "--progress-interval",
            "1",
            top=("--log-format", "json", "--log-level", "INFO"),
        ),
        env=demo_env(marker),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "accounted for: 2,000 of 2,000 recipient(s); duplicates at the SMSC: 0" in out
    assert re.search(r"metrics: http://127\.0\.0\.1:\d+/metrics", out)
    assert "progress campaign=jaga-persatuan" in out
    # the report's route table adds up to every recipient
    totals = [
        int(line.split()[-1].replace(",", ""))
        for line in out.splitlines()
        if line.strip().split(" ")[0] in ("telkomsel", "indosat", "xl") and line.startswith("  ")
    ]
    assert len(totals) == 3 and sum(totals) == 2000
    # logs: one JSON object per line, no password, no full phone number
    records = [json.loads(line) for line in proc.stderr.splitlines()]
    assert records and all({"ts", "level", "logger", "msg"} <= r.keys() for r in records)
    assert any(r["logger"].startswith("smsblast") for r in records)
    assert "demo-pw" not in proc.stderr
    assert not re.search(r"(?<!\d)628\d{8,11}(?!\d)", proc.stderr)
    assert_nothing_left(marker)


@pytest.mark.parametrize(
    ("when", "pattern"),
    [("setting up", r"^simulator: "), ("sending", r"sent=[1-9]")],
)
def test_ctrl_c_stops_everything_it_started(when: str, pattern: str) -> None:
    marker = uuid.uuid4().hex
    proc = subprocess.Popen(
        demo_command(200_000, "--progress", "plain", "--progress-interval", "1"),
        env=demo_env(marker),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        seen = []
        while time.monotonic() < deadline:  # wait until the demo is that far
            line = proc.stdout.readline()
            seen.append(line)
            if not line or re.search(pattern, line):
                break
        assert re.search(pattern, seen[-1]), "".join(seen)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 130, "".join(seen) + out + err
    if when == "sending":
        assert "stopped by signal" in out  # the engine drained and said so
    assert "interrupted; everything it started is stopped" in err
    assert "Traceback" not in err and "never awaited" not in err
    assert_nothing_left(marker)


def test_progress_on_a_terminal_shows_campaign_routes_counts_and_binds() -> None:
    marker = uuid.uuid4().hex
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
    proc = subprocess.Popen(
        demo_command(2000, "--progress-interval", "0.5"),  # --progress auto: a TTY -> rich
        env={**demo_env(marker), "TERM": "xterm-256color"},
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    chunks: list[bytes] = []
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child side is closed
                break
            if not data:
                break
            chunks.append(data)
        proc.wait(30)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    raw = b"".join(chunks).decode("utf-8", "replace")
    screen = ANSI.sub("", raw)
    assert proc.returncode == 0, screen
    assert "\x1b[" in raw  # drawn in place, not printed as plain lines
    assert "campaign jaga-persatuan" in screen
    assert "sent 2,000 / 2,000" in screen
    for route in ("telkomsel", "indosat", "xl"):
        assert re.search(rf"│ {route}\s+│\s+[\d,]+ │", screen), route
    assert "binds up" in screen and re.search(r"binds \d/5 up", screen)
    assert "receipts: delivered" in screen
    assert_nothing_left(marker)
