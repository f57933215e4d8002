"""`smsblast send`, the NOC smoke test, run for real against two SMSCs on loopback.

* node-smpp (tests/peers/nodesmpp): an independent SMSC implementation;
* the scripted SMSC (tests/smsc_script.py): ours, for rejections, id formats, races.

The CLI runs both as a subprocess (``python -m smsblast.cli send``, exactly what
an engineer types) and in-process through ``smsblast.cli.main([...])``. In async
tests ``main`` runs in a worker thread (it starts its own event loop) while the
scripted SMSC keeps serving on the test's loop.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from smsblast import cli
from smsblast.smpp.constants import Status

try:  # works whether or not tests/ is a package / on sys.path
    from tests.peers.nodesmpp import NodeSmpp, node_available, start_nodesmpp
    from tests.smsc_script import ScriptedSmsc
except ModuleNotFoundError:  # pragma: no cover - depends on the pytest import mode
    from peers.nodesmpp import NodeSmpp, node_available, start_nodesmpp  # type: ignore[no-redef]
    from smsc_script import ScriptedSmsc  # type: ignore[no-redef]

pytestmark = pytest.mark.timeout(30)

PASSWORD_ENV = "SMSBLAST_TEST_SMSC_PASSWORD"
NODE_SYSTEM_ID, NODE_PASSWORD = "smsblast", "s3cret"
needs_node = pytest.mark.skipif(not node_available(), reason="node is not on PATH")


def send_args(
    port: int,
    *extra: str,
    system_id: str = "esme",
    to: str = "081200000001",
    bind_timeout: float = 3.0,
) -> list[str]:
    return [
        "send",
        "--smsc",
        f"127.0.0.1:{port}",
        "--system-id",
        system_id,
        "--password-env",
        PASSWORD_ENV,
        "--from",
        "SMSBLAST",
        "--to",
        to,
        "--text",
        "NOC smoke test",
        "--bind-timeout",
        str(bind_timeout),
        *extra,
    ]


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = cli.main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


async def run_main_async(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    """cli.main in a worker thread, so the scripted SMSC on this loop keeps serving."""
    rc = await asyncio.wait_for(asyncio.to_thread(cli.main, argv), 20)
    out, err = capsys.readouterr()
    return rc, out, err


async def run_subprocess(argv: list[str], password: str) -> tuple[int, str, str]:
    env = dict(os.environ, **{PASSWORD_ENV: password})
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "smsblast.cli",
        *argv,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 20)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


# --------------------------------------------------------------------------- node-smpp


@pytest.fixture(scope="module")
def node_smsc() -> Iterator[NodeSmpp]:
    if not node_available():
        pytest.skip("node is not on PATH")
    with start_nodesmpp(NODE_SYSTEM_ID, NODE_PASSWORD) as smsc:
        yield smsc


def delta(before: dict[str, Any], after: dict[str, Any], key: str) -> int:
    return int(after[key]) - int(before[key])


@needs_node
async def test_subprocess_send_against_nodesmpp_counts_receipts(node_smsc: NodeSmpp) -> None:
    before = node_smsc.snapshot()
    argv = send_args(node_smsc.port, "--count", "3", "--wait-dlr", "5", system_id=NODE_SYSTEM_ID)

    rc, out, err = await run_subprocess(argv, NODE_PASSWORD)

    after = node_smsc.snapshot()
    assert rc == 0, out + err
    assert "3 message(s), 3 part(s)" in out
    assert "accepted             3" in out
    assert "receipts    DELIVRD 3" in out
    assert "missing 0, unmatched 0" in out
    assert delta(before, after, "submits") == 3
    assert delta(before, after, "receipt_acks") == 3
    assert delta(before, after, "unbinds") == 1  # a polite goodbye, not a dropped socket


@needs_node
def test_inprocess_json_against_nodesmpp(
    node_smsc: NodeSmpp, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, NODE_PASSWORD)
    before = node_smsc.snapshot()
    argv = send_args(
        node_smsc.port, "--count", "5", "--wait-dlr", "5", "--json", system_id=NODE_SYSTEM_ID
    )

    rc, out, _ = run_main(argv, capsys)

    report = json.loads(out)
    after = node_smsc.snapshot()
    assert rc == 0
    assert report["messages"] == report["parts"] == 5
    assert report["outcomes"] == {"accepted": 5, "rejected": 0, "retryable": 0, "unknown": 0}
    assert report["receipts"] == {"DELIVRD": 5}
    assert report["receipts_missing"] == report["receipts_unmatched"] == 0
    assert report["bind_error"] == ""
    assert delta(before, after, "submits") == 5 == delta(before, after, "receipts_sent")


@needs_node
def test_wrong_password_against_nodesmpp_exits_3_naming_the_status(
    node_smsc: NodeSmpp, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "not-it")
    before = node_smsc.snapshot()

    argv = send_args(node_smsc.port, system_id=NODE_SYSTEM_ID, bind_timeout=1.0)
    rc, out, _ = run_main(argv, capsys)

    after = node_smsc.snapshot()
    assert rc == 3
    assert "BIND FAILED" in out and "ESME_RINVPASWD" in out
    assert delta(before, after, "submits") == 0
    assert 1 <= delta(before, after, "bind_failures") <= 2  # backed off, no tight loop


# --------------------------------------------------------------------------- scripted SMSC


async def test_subprocess_json_counts_match_what_the_smsc_saw(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with ScriptedSmsc(receipts=True, reverse=True) as smsc:
        argv = send_args(smsc.port, "--count", "12", "--window", "4", "--wait-dlr", "3", "--json")
        rc, out, err = await run_subprocess(argv, "secret")

    report = json.loads(out)
    assert rc == 0, err
    assert report["outcomes"]["accepted"] == len(smsc.submits) == 12
    assert report["receipts"] == {"DELIVRD": 12} and report["receipts_missing"] == 0
    assert len(smsc.deliver_acks) == 12
    assert smsc.max_outstanding <= 4
    assert smsc.unbinds == 1


async def test_count_sends_to_consecutive_numbers(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "secret")
    async with ScriptedSmsc() as smsc:
        argv = send_args(smsc.port, "--count", "25", "--json", to="+62 812-0000-0095")
        rc, out, _ = await run_main_async(argv, capsys)

    assert rc == 0
    assert json.loads(out)["outcomes"]["accepted"] == 25
    first = 6281200000095  # crosses ...0099 -> ...0100: a carry, not a string append
    assert sorted(smsc.destinations) == [str(first + i) for i in range(25)]
    assert len(set(smsc.destinations)) == 25


async def test_rejecting_smsc_exits_1_and_names_the_status(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "secret")
    async with ScriptedSmsc(default_status=Status.RINVDSTADR) as smsc:
        rc, out, _ = await run_main_async(send_args(smsc.port, "--count", "2"), capsys)

    assert rc == 1
    assert "ESME_RINVDSTADR" in out
    assert "rejected             2" in out
    assert len(smsc.submits) == 2


@pytest.mark.parametrize(
    ("flag", "matched"),
    [(["--msg-id-format", "hex:dec"], True), ([], False)],
    ids=["hex-resp-dec-receipt", "formats-not-declared"],
)
async def test_msg_id_format_matches_hex_responses_with_decimal_receipts(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    flag: list[str],
    matched: bool,
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "secret")
    smsc = ScriptedSmsc(receipts=True, receipt_id=lambda mid: str(int(mid, 16)))
    wait = "3" if matched else "0.5"
    async with smsc:
        argv = send_args(smsc.port, "--count", "4", "--wait-dlr", wait, "--json", *flag)
        rc, out, _ = await run_main_async(argv, capsys)

    report = json.loads(out)
    assert report["outcomes"]["accepted"] == 4
    assert "04000000086ECD50" in smsc.id_by_destination.values()  # = 288230376293190992
    if matched:
        assert rc == 0
        assert report["receipts"] == {"DELIVRD": 4}
        assert report["receipts_missing"] == report["receipts_unmatched"] == 0
    else:  # the control: without the flag the very same receipts cannot be matched
        assert rc == 1
        assert report["receipts"] == {}
        assert report["receipts_missing"] == report["receipts_unmatched"] == 4


async def test_receipt_that_beats_its_submit_sm_resp_is_still_matched(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "secret")
    async with ScriptedSmsc(receipts=True, receipt_first=True) as smsc:
        argv = send_args(smsc.port, "--count", "3", "--wait-dlr", "3", "--json")
        rc, out, _ = await run_main_async(argv, capsys)

    report = json.loads(out)
    assert rc == 0
    assert report["receipts"] == {"DELIVRD": 3} and report["receipts_unmatched"] == 0
    assert len(smsc.deliver_acks) == 3


async def test_wrong_password_exits_3_with_a_clear_message(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "wrong")
    async with ScriptedSmsc() as smsc:
        argv = send_args(smsc.port, "--json", bind_timeout=1.0)
        rc, out, _ = await run_main_async(argv, capsys)

    assert rc == 3
    assert "RINVPASWD" in json.loads(out)["bind_error"]
    assert smsc.submits == [] and smsc.connections == 1


async def test_wrong_password_is_reported_without_waiting_the_bind_timeout(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "wrong")
    async with ScriptedSmsc() as smsc:
        started = time.monotonic()
        rc, out, _ = await run_main_async(send_args(smsc.port, bind_timeout=2.0), capsys)
        elapsed = time.monotonic() - started

    assert rc == 3 and "ESME_RINVPASWD" in out
    assert smsc.bind_requests[0][2] == Status.RINVPASWD
    assert elapsed < 1.0, f"refused in milliseconds, reported after {elapsed:.1f} s"


def test_missing_password_variable_exits_2_naming_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)

    rc, out, err = run_main(send_args(9), capsys)  # port 9: nothing is ever dialled

    assert rc == 2
    assert PASSWORD_ENV in err and "not set" in err
    assert out == ""


@pytest.mark.parametrize("bad_to", ["02112345678", "0812-ABC-000", "12"])
def test_bad_destination_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, bad_to: str
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "secret")

    rc, out, err = run_main(send_args(9, to=bad_to), capsys)

    assert rc == 2
    assert "--to" in err
    assert out == ""


@pytest.mark.skipif(
    importlib.util.find_spec("smsblast.ratelimit") is None,
    reason="smsblast.ratelimit (the --tps limiter) is not there yet",
)
async def test_tps_caps_the_submit_rate(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "secret")
    async with ScriptedSmsc() as smsc:
        argv = send_args(smsc.port, "--count", "30", "--tps", "20", "--json")
        rc, out, _ = await run_main_async(argv, capsys)

    assert rc == 0 and json.loads(out)["outcomes"]["accepted"] == 30
    # 30 submits at 20/s: even a full second of burst leaves 10 that must wait 0.5 s.
    assert smsc.submit_times[-1] - smsc.submit_times[0] >= 0.45
