"""``simulate_main``: flags over the YAML profile, and a real process stopped by SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import smpplib.client

from smsblast.simulator.cli import build_parser, profile_from_args, simulate_main

pytestmark = pytest.mark.timeout(60)


def test_flags_override_the_yaml_profile(tmp_path: Path) -> None:
    config = tmp_path / "sim.yaml"
    config.write_text(
        "limits: {tps_per_bind: 10}\nreceipts: {enabled: true}\nids: {resp_format: dec}\n"
    )
    args = build_parser().parse_args(
        [
            "--config", str(config),
            "--listen", "127.0.0.1:0",
            "--seed", "9",
            "--tps", "250",
            "--account-tps", "400",
            "--window", "50",
            "--no-receipts",
            "--latency-ms", "3",
            "--receipt-delay-ms", "7",
            "--receipt-id-format", "hex",
            "--http", "9100",
            "--stats-file", str(tmp_path / "s.json"),
        ]
    )  # fmt: skip
    p = profile_from_args(args)
    assert p.listen == "127.0.0.1:0" and p.seed == 9
    assert (p.limits.tps_per_bind, p.limits.tps_per_account, p.limits.max_outstanding) == (
        250,
        400,
        50,
    )
    assert not p.receipts.enabled
    assert p.latency.fixed_s == 0.003 and p.receipts.delay.fixed_s == 0.007
    assert (p.ids.resp_format, p.ids.receipt_format) == ("dec", "hex")
    assert (p.http.host, p.http.port) == ("127.0.0.1", 9100)
    assert p.stats_file == str(tmp_path / "s.json")


def test_bad_profile_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("limits: {tps_per_bind: -1}\n")
    assert simulate_main(["--config", str(config)]) == 2
    assert "bad profile" in capsys.readouterr().err


def test_process_serves_until_sigterm_then_writes_stats(tmp_path: Path) -> None:
    stats_file = tmp_path / "stats.json"
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "smsblast.simulator",
            "--listen", "127.0.0.1:0",
            "--seed", "3",
            "--stats-file", str(stats_file),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("LISTENING "), line
        host, _, port = line.split()[1].rpartition(":")
        client = smpplib.client.Client(host, int(port), timeout=5, allow_unknown_opt_params=True)
        client.connect()
        client.bind_transmitter(system_id="smsblast", password="secret")
        client.send_message(
            source_addr="SMSBLAST", destination_addr="628123456789", short_message=b"hi"
        )
        resp = client.read_pdu()
        assert resp.command == "submit_sm_resp" and resp.status == 0
        client.unbind()
        client.disconnect()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stats = json.loads(stats_file.read_text())
    assert stats["simulator"]["seed"] == 3
    assert stats["accounts"]["smsblast"]["submits"]["accepted"] == 1


def test_sigint_also_stops_cleanly(tmp_path: Path) -> None:
    stats_file = tmp_path / "stats.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "smsblast.simulator", "--listen", "127.0.0.1:0",
         "--stats-file", str(stats_file), "--no-uvloop"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("LISTENING ")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert json.loads(stats_file.read_text())["totals"]["submits_received"] == 0


def test_simulator_thread_serves_blocking_clients() -> None:
    from smsblast.simulator import Profile
    from smsblast.simulator.testing import SimulatorThread

    with SimulatorThread(Profile(listen="127.0.0.1:0"), use_uvloop=True) as smsc:
        client = smpplib.client.Client(
            smsc.host, smsc.port, timeout=5, allow_unknown_opt_params=True
        )
        client.connect()
        client.bind_transceiver(system_id="smsblast", password="secret")
        client.send_message(
            source_addr="SMSBLAST",
            destination_addr="628123456789",
            short_message=b"hi",
            registered_delivery=1,
        )
        kinds = {client.read_pdu().command for _ in range(2)}
        assert kinds == {"submit_sm_resp", "deliver_sm"}
        client.disconnect()
        assert smsc.stats()["totals"]["submits_accepted"] == 1
