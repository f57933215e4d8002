"""Live control: the admin API over a real ledger, driven by `smsblast ctl` and raw sockets."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from smsblast.admin.control import (
    ControlConflict,
    LedgerController,
    UnknownCampaign,
    campaign_entry,
    next_control,
)
from smsblast.admin.ctl import base_url, format_table
from smsblast.admin.server import BadPath, parse_route, serve_admin, start_admin
from smsblast.cli import main
from smsblast.config import AdminConfig, ConfigError, EngineConfig, load_engine_config
from smsblast.ledger import AsyncLedger, CampaignInfo, Control, SqliteLedger
from smsblast.minihttp import (
    BadRequest,
    Request,
    Response,
    json_response,
    parse_head,
    serve_http,
)

REPO = Path(__file__).resolve().parent.parent
TOKEN = "s3cret-admin-token"
WAVE = "jaga-persatuan@2024-01-07"
ENGINE: dict[str, Any] = {
    "kafka": {"bootstrap_servers": ["127.0.0.1:9092"]},
    "routes": {
        "telkomsel": {
            "prefixes": ["811"],
            "smscs": [
                {
                    "host": "127.0.0.1",
                    "port": 2775,
                    "system_id": "kominfo",
                    "password_env": "TEST_TSEL_PASSWORD",
                    "tps_per_bind": 100,
                }
            ],
        }
    },
}


@dataclass
class Admin:
    """A running admin API over a real ledger; ``changes`` records every ``on_change``."""

    ledger: AsyncLedger
    port: int
    changes: list[tuple[str, Control]] = field(default_factory=list)
    is_ready: bool = True
    running: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def control(self, name: str) -> str:
        return next(info.control for info in await self.ledger.campaigns() if info.name == name)


@asynccontextmanager
async def admin_api(path: Path, port: int = 0, timeout: float = 10.0) -> AsyncIterator[Admin]:
    ledger = AsyncLedger(path)
    admin = Admin(ledger, 0)
    controller = LedgerController(
        ledger,
        on_change=lambda name, control: admin.changes.append((name, control)),
        status=lambda: admin.running,
        ready=lambda: admin.is_ready,
    )
    server = await start_admin(controller, TOKEN, "127.0.0.1", port, timeout=timeout)
    admin.port = server.sockets[0].getsockname()[1]
    try:
        yield admin
    finally:
        server.close()
        await server.wait_closed()
        await ledger.close()


@pytest.fixture
async def admin(tmp_path: Path) -> AsyncIterator[Admin]:
    async with admin_api(tmp_path / "ledger.sqlite") as api:
        await api.ledger.open_campaign("jaga-persatuan", {"seg:0": 100})
        await api.ledger.open_campaign(WAVE, {"seg:0": 100})
        api.running["jaga-persatuan"] = {"state": "running", "sent": 42, "route": {"telkomsel": 3}}
        yield api


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMSBLAST_CONFIG", raising=False)
    monkeypatch.delenv("SMSBLAST_ADMIN_TOKEN", raising=False)


@pytest.fixture
def token_file(tmp_path: Path) -> Callable[[str], str]:
    def write(token: str) -> str:
        path = tmp_path / f"token-{len(token)}"
        path.write_text(token + "\n", encoding="utf-8")
        return str(path)

    return write


async def ctl(*argv: str) -> int:
    """``smsblast ctl ...`` through the CLI's entry point (on a thread: it blocks)."""
    return await asyncio.to_thread(main, ["ctl", *argv])


async def raw(port: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``data`` as is; the answer's status, headers (lowercase names) and body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def get(path: str, token: str | None = TOKEN, method: str = "GET") -> bytes:
    auth = "" if token is None else f"Authorization: Bearer {token}\r\n"
    return f"{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}\r\n".encode()


# --- smsblast ctl against the API ----------------------------------------------------------


async def test_pause_resume_cancel_store_the_control_and_tell_the_engine(
    admin: Admin, token_file: Callable[[str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    tok = token_file(TOKEN)
    assert await ctl("pause", "jaga-persatuan", "--url", admin.url, "--token-file", tok) == 0
    assert capsys.readouterr().out == "campaign jaga-persatuan: paused\n"
    assert await admin.control("jaga-persatuan") == "paused"
    assert await admin.control(WAVE) == "running"

    assert await ctl("resume", "jaga-persatuan", "--url", admin.url, "--token-file", tok) == 0
    assert await admin.control("jaga-persatuan") == "running"
    assert await ctl("cancel", WAVE, "--url", admin.url, "--token-file", tok) == 0
    assert await admin.control(WAVE) == "cancelled"
    assert admin.changes == [
        ("jaga-persatuan", Control.PAUSED),
        ("jaga-persatuan", Control.RUNNING),
        (WAVE, Control.CANCELLED),
    ]


async def test_a_cancelled_campaign_cannot_be_paused_or_resumed(
    admin: Admin, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SMSBLAST_ADMIN_TOKEN", TOKEN)
    assert await ctl("cancel", WAVE, "--url", admin.url) == 0
    capsys.readouterr()
    for action in ("resume", "pause"):
        assert await ctl(action, WAVE, "--url", admin.url) == 1
        assert "HTTP 409" in capsys.readouterr().err
    assert await ctl("cancel", WAVE, "--url", admin.url) == 0  # cancel again: no-op
    assert await admin.control(WAVE) == "cancelled"
    status, _, body = await raw(admin.port, get(f"/campaigns/{WAVE}/resume", method="POST"))
    assert status == 409 and "cancelled" in json.loads(body)["error"]


async def test_a_pruned_campaign_cannot_be_controlled(
    admin: Admin,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """It never runs again: a pause or resume accepted for it would claim otherwise."""
    monkeypatch.setenv("SMSBLAST_ADMIN_TOKEN", TOKEN)
    pruner = SqliteLedger(tmp_path / "ledger.sqlite")  # as `smsblast prune` marks it
    try:
        pruner.mark_pruned(WAVE)
    finally:
        pruner.close()
    for action in ("pause", "resume", "cancel"):
        assert await ctl(action, WAVE, "--url", admin.url) == 1
        assert "HTTP 409" in capsys.readouterr().err
    assert await admin.control(WAVE) == "running" and admin.changes == []
    status, _, body = await raw(admin.port, get(f"/campaigns/{WAVE}/pause", method="POST"))
    assert status == 409 and "pruned" in json.loads(body)["error"]
    assert await ctl("pause", "jaga-persatuan", "--url", admin.url) == 0  # the others still can


async def test_a_campaign_waiting_for_its_start_can_be_paused_and_opens_paused(
    admin: Admin, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SMSBLAST_ADMIN_TOKEN", TOKEN)
    admin.running["later"] = {"state": "waiting"}  # the engine runs it; not in the ledger yet
    assert await ctl("pause", "later", "--url", admin.url) == 0
    assert capsys.readouterr().out == "campaign later: paused\n"
    assert admin.changes == [("later", Control.PAUSED)]
    info = await admin.ledger.open_campaign("later", {"seg:0": 5})  # its start came
    assert info.control == "paused"
    assert await ctl("cancel", "later", "--url", admin.url) == 0
    assert await admin.control("later") == "cancelled"


async def test_a_campaign_waiting_for_its_start_is_listed_and_inspected_before_it_opens(
    admin: Admin, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SMSBLAST_ADMIN_TOKEN", TOKEN)
    admin.running["later"] = {"state": "waiting", "start_at": 1_900_000_000.0}
    assert await ctl("status", "--url", admin.url) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    assert rows == [
        ["jaga-persatuan", "running", "running", rows[0][3]],
        [WAVE, "running", "-", rows[1][3]],
        ["later", "running", "waiting", "-"],
    ]
    await ctl("pause", "later", "--url", admin.url)
    capsys.readouterr()
    assert await ctl("status", "later", "--json", "--url", admin.url) == 0
    detail = json.loads(capsys.readouterr().out)
    assert detail == {
        "name": "later",
        "control": "paused",
        "created_at": None,
        "pruned_at": None,
        "engine": {"state": "waiting", "start_at": 1_900_000_000.0},
        "counts": {},
    }
    await admin.ledger.open_campaign("later", {"seg:0": 5})  # its start came
    status, _, body = await raw(admin.port, get("/campaigns/later"))
    opened = json.loads(body)
    assert status == 200 and opened["control"] == "paused" and opened["created_at"]
    assert opened["counts"] != {}


async def test_a_waiting_campaign_cancelled_cannot_be_resumed_and_opens_cancelled(
    admin: Admin, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SMSBLAST_ADMIN_TOKEN", TOKEN)
    admin.running["later"] = {"state": "waiting"}
    assert await ctl("cancel", "later", "--url", admin.url) == 0
    capsys.readouterr()
    assert await ctl("resume", "later", "--url", admin.url) == 1
    assert "HTTP 409" in capsys.readouterr().err
    assert (await admin.ledger.open_campaign("later", {"seg:0": 5})).control == "cancelled"


async def test_unknown_campaign_is_reported_by_name(
    admin: Admin, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SMSBLAST_ADMIN_TOKEN", TOKEN)
    assert await ctl("pause", "nope", "--url", admin.url) == 1
    assert "no campaign nope" in capsys.readouterr().err
    assert await ctl("status", "nope", "--url", admin.url) == 1
    assert "no campaign nope" in capsys.readouterr().err
    assert admin.changes == []


async def test_status_lists_campaigns_as_a_table_or_json(
    admin: Admin, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SMSBLAST_ADMIN_TOKEN", TOKEN)
    await ctl("pause", WAVE, "--url", admin.url)
    capsys.readouterr()
    assert await ctl("status", "--url", admin.url) == 0
    header, first, second = capsys.readouterr().out.splitlines()
    assert header.split() == ["NAME", "CONTROL", "ENGINE", "CREATED"]
    assert first.split()[:3] == ["jaga-persatuan", "running", "running"]
    assert second.split()[:3] == [WAVE, "paused", "-"]

    assert await ctl("status", "--json", "--url", admin.url) == 0
    listed = json.loads(capsys.readouterr().out)["campaigns"]
    assert [(c["name"], c["control"]) for c in listed] == [
        ("jaga-persatuan", "running"),
        (WAVE, "paused"),
    ]
    assert listed[0]["engine"] == {"state": "running", "sent": 42, "route": {"telkomsel": 3}}

    assert await ctl("status", "jaga-persatuan", "--url", admin.url) == 0
    detail = capsys.readouterr().out
    assert "control: running" in detail and "sent: 42" in detail and "pending: 0" in detail


async def test_ctl_as_a_separate_process(admin: Admin, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "SMSBLAST_ADMIN_TOKEN": TOKEN}
    env.pop("SMSBLAST_CONFIG", None)

    async def run(*argv: str, token: str = TOKEN) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "smsblast",
            "ctl",
            *argv,
            "--url",
            admin.url,
            env={**env, "SMSBLAST_ADMIN_TOKEN": token},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    assert await run("pause", WAVE) == (0, f"campaign {WAVE}: paused\n", "")
    code, out, _ = await run("status", WAVE, "--json")
    assert code == 0 and json.loads(out)["control"] == "paused"
    code, _, err = await run("resume", WAVE, token="wrong")
    assert code == 1 and "unauthorized: check the admin token" in err
    assert await admin.control(WAVE) == "paused"


# --- authentication ------------------------------------------------------------------------


async def test_no_token_or_a_wrong_token_is_unauthorized_and_changes_nothing(
    admin: Admin, token_file: Callable[[str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = token_file("not-the-token")
    assert await ctl("pause", "jaga-persatuan", "--url", admin.url, "--token-file", wrong) == 1
    assert "unauthorized: check the admin token" in capsys.readouterr().err
    assert await ctl("pause", "jaga-persatuan", "--url", admin.url) == 2  # no token anywhere
    assert "no admin token" in capsys.readouterr().err
    for token in (None, "", TOKEN[:-1], TOKEN + "x", TOKEN.upper()):
        for request in (
            get("/campaigns/jaga-persatuan/pause", token, "POST"),
            get("/healthz", token),
            get("/no/such/path", token),
        ):
            status, headers, body = await raw(admin.port, request)
            assert status == 401
            assert headers["www-authenticate"].startswith("Bearer")
            assert json.loads(body) == {"error": "unauthorized"}
    status, _, _ = await raw(admin.port, get("/healthz", f"Basic {TOKEN}"))
    assert status == 401
    assert await admin.control("jaga-persatuan") == "running" and admin.changes == []


async def test_the_token_and_url_come_from_the_engine_config(
    admin: Admin,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "smsblast.yaml"
    admin_section = {"listen": f"127.0.0.1:{admin.port}", "token_env": "TEST_ADMIN_TOKEN"}
    config.write_text(yaml.safe_dump({**ENGINE, "admin": admin_section}), encoding="utf-8")
    monkeypatch.setenv("TEST_ADMIN_TOKEN", TOKEN)
    assert await ctl("pause", WAVE, "--config", str(config)) == 0
    monkeypatch.setenv("SMSBLAST_CONFIG", str(config))
    assert await ctl("resume", WAVE) == 0
    assert [control for _, control in admin.changes] == [Control.PAUSED, Control.RUNNING]
    monkeypatch.setenv("TEST_ADMIN_TOKEN", "")
    capsys.readouterr()
    assert await ctl("status") == 2
    assert "admin.token_env" in capsys.readouterr().err


async def test_an_unreachable_api_or_a_bad_config_fail_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with admin_api(tmp_path / "l.sqlite") as api:
        url = api.url  # a port that was free a moment ago and is closed now
    monkeypatch.setenv("SMSBLAST_ADMIN_TOKEN", TOKEN)
    assert await ctl("status", "--url", url) == 1
    assert "cannot reach the admin API" in capsys.readouterr().err
    (tmp_path / "bad.yaml").write_text("kafka: [", encoding="utf-8")
    assert await ctl("status", "--config", str(tmp_path / "bad.yaml")) == 2
    assert "configuration error" in capsys.readouterr().err
    assert await ctl("pause", "--url", url) == 2  # pause needs a NAME
    assert await ctl("health", "x", "--url", url) == 2


# --- persistence and readiness -------------------------------------------------------------


async def test_a_pause_survives_a_restart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMSBLAST_ADMIN_TOKEN", TOKEN)
    path = tmp_path / "ledger.sqlite"
    async with admin_api(path) as api:
        await api.ledger.open_campaign(WAVE, {"seg:0": 1})
        assert await ctl("pause", WAVE, "--url", api.url) == 0
        port = api.port
    async with admin_api(path, port) as api:
        info = await api.ledger.open_campaign(WAVE, {"seg:0": 999})  # as a restart does
        assert info.control == "paused"
        status, _, body = await raw(api.port, get(f"/campaigns/{WAVE.replace('@', '%40')}"))
        assert status == 200 and json.loads(body)["control"] == "paused"


async def test_readiness_follows_the_engine_and_health_follows_the_process(
    admin: Admin, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SMSBLAST_ADMIN_TOKEN", TOKEN)
    admin.is_ready = False
    assert (await raw(admin.port, get("/readyz")))[0] == 503
    assert (await raw(admin.port, get("/healthz")))[0] == 200
    assert await ctl("health", "--url", admin.url) == 1
    assert capsys.readouterr().out == "not ready\n"
    admin.is_ready = True
    status, _, body = await raw(admin.port, get("/readyz"))
    assert status == 200 and json.loads(body) == {"ready": True}
    assert await ctl("health", "--url", admin.url) == 0
    assert capsys.readouterr().out == "ready\n"


# --- garbage on the wire -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),  # a TLS hello
        (b"GET\r\n\r\n", 400),
        (b"GET /healthz\r\n\r\n", 400),
        (b"GET /healthz HTTP/2.0\r\n\r\n", 400),
        (b"GET http://x/healthz HTTP/1.1\r\n\r\n", 400),
        (b"GET /healthz HTTP/1.1\r\nno colon here\r\n\r\n", 400),
        (b"GET /healthz HTTP/1.1\r\nAuthorization: a\r\nAuthorization: b\r\n\r\n", 400),
        (b"GET /healthz HTTP/1.1\r\nX: " + b"a" * 20_000 + b"\r\n\r\n", 431),
        (b"GET /healthz HTTP/1.1\r\n" + b"X: 1\r\n" * 200 + b"\r\n", 431),
        (b"POST /campaigns/x/pause HTTP/1.1\r\nContent-Length: 9999999\r\n\r\n", 413),
        (b"POST /campaigns/x/pause HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST /campaigns/x/pause HTTP/1.1\r\nContent-Length: \xb2\r\n\r\n", 400),  # "²"
        (b"POST /campaigns/x/pause HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
        (get("/campaigns/%ff%fe"), 400),
        (get("/campaigns//pause", method="POST"), 400),
        (get("/campaigns/a%2Fb"), 400),
        (get("/campaigns/x/pause/now", method="POST"), 400),
        (get("/campaigns/x/explode", method="POST"), 404),
        (get("/nothing"), 404),
        (get("/campaigns/jaga-persatuan/pause"), 405),
        (get("/campaigns", method="DELETE"), 405),
    ],
)
async def test_garbage_gets_an_error_and_the_server_keeps_serving(
    admin: Admin, request_bytes: bytes, status: int
) -> None:
    answer_status, headers, body = await raw(admin.port, request_bytes)
    assert answer_status == status
    assert "error" in json.loads(body)
    if status == 405:
        assert headers["allow"]
    assert (await raw(admin.port, get("/healthz")))[0] == 200
    assert admin.changes == []


async def test_slow_clients_time_out_without_blocking_others(tmp_path: Path) -> None:
    async with admin_api(tmp_path / "l.sqlite", timeout=0.5) as api:
        slow = [await asyncio.open_connection("127.0.0.1", api.port) for _ in range(20)]
        for _, writer in slow:
            writer.write(b"GET /healthz HTTP/1.1\r\nX-Slow: ")  # and never the end
        assert (await raw(api.port, get("/healthz")))[0] == 200
        for reader, writer in slow:
            answer = await asyncio.wait_for(reader.read(), 10)
            assert answer.startswith(b"HTTP/1.1 408 ")
            writer.close()
        silent_reader, silent_writer = await asyncio.open_connection("127.0.0.1", api.port)
        assert (await asyncio.wait_for(silent_reader.read(), 10)).startswith(b"HTTP/1.1 408 ")
        silent_writer.close()
        assert (await raw(api.port, get("/healthz")))[0] == 200


async def test_connections_beyond_the_cap_are_turned_away_at_once() -> None:
    entered, release = asyncio.Semaphore(0), asyncio.Event()

    async def handler(request: Request) -> Response:
        if request.path == "/held":
            entered.release()
            await release.wait()
        return json_response(200, {"path": request.path})

    server = await serve_http(handler, "127.0.0.1", 0, timeout=5, max_connections=2)
    port = server.sockets[0].getsockname()[1]
    try:
        held = [asyncio.create_task(raw(port, get("/held"))) for _ in range(2)]
        for _ in held:
            await asyncio.wait_for(entered.acquire(), 10)
        status, _, body = await raw(port, get("/third"))
        assert status == 503 and json.loads(body) == {"error": "too many connections"}
        release.set()
        assert [answer[0] for answer in await asyncio.gather(*held)] == [200, 200]
        assert (await raw(port, get("/after")))[0] == 200
    finally:
        server.close()
        await server.wait_closed()


async def test_a_client_that_hangs_up_early_does_no_harm(admin: Admin) -> None:
    for partial in (b"", b"GET /heal", get("/campaigns/jaga-persatuan/pause", method="POST")):
        _, writer = await asyncio.open_connection("127.0.0.1", admin.port)
        writer.write(partial)
        writer.close()
    assert (await raw(admin.port, get("/healthz")))[0] == 200


# --- pure pieces ---------------------------------------------------------------------------


@given(st.binary(max_size=400))
def test_any_bytes_parse_as_a_request_or_a_bad_request(data: bytes) -> None:
    try:
        request = parse_head(data + b"\r\n\r\n")
    except BadRequest as exc:
        assert exc.status in (400, 431, 501)
    else:
        assert request.target.startswith("/")


@given(st.text(max_size=300))
def test_any_path_routes_somewhere_or_is_a_bad_path(path: str) -> None:
    try:
        route = parse_route("/campaigns/" + path)
    except BadPath:
        return
    assert route is None or route.campaign is not None or route.endpoint == "list"


def test_transitions() -> None:
    assert next_control("c", Control.RUNNING, Control.PAUSED) is Control.PAUSED
    assert next_control("c", Control.PAUSED, Control.PAUSED) is Control.PAUSED
    assert next_control("c", Control.PAUSED, Control.CANCELLED) is Control.CANCELLED
    assert next_control("c", Control.CANCELLED, Control.CANCELLED) is Control.CANCELLED
    with pytest.raises(ControlConflict, match="c is cancelled"):
        next_control("c", Control.CANCELLED, Control.RUNNING)


async def test_controller_refuses_unknown_campaigns(admin: Admin) -> None:
    controller = LedgerController(admin.ledger, lambda *_: None, dict, ready=lambda: True)
    with pytest.raises(UnknownCampaign):
        await controller.set_control("nope", Control.PAUSED)
    assert await controller.inspect("nope") is None


def test_routes() -> None:
    assert parse_route(f"/campaigns/{WAVE.replace('@', '%40')}/pause") is not None
    route = parse_route("/campaigns/a%40b/cancel")
    assert route is not None and (route.endpoint, route.campaign) == ("cancel", "a@b")
    assert parse_route("/campaigns/a@b") is not None
    for bad in ("/campaigns/%00x", "/campaigns/..", "/campaigns/x/", "/campaigns/" + "a" * 201):
        with pytest.raises(BadPath):
            parse_route(bad)


def test_ctl_formatting() -> None:
    assert base_url("0.0.0.0", 8081) == "http://127.0.0.1:8081"
    assert base_url("::", 8081) == "http://[::1]:8081"
    assert base_url("10.0.0.5", 80) == "http://10.0.0.5:80"
    assert format_table([]) == "no campaigns"


# --- configuration -------------------------------------------------------------------------


def engine(admin: dict[str, Any]) -> EngineConfig:
    return EngineConfig.model_validate({**ENGINE, "admin": admin})


def test_admin_is_off_by_default_and_a_bare_port_means_loopback() -> None:
    assert EngineConfig.model_validate(ENGINE).admin.listen_address() is None
    for listen in (8081, "8081", ":8081", "127.0.0.1:8081"):
        config = engine({"listen": listen, "token_env": "T"})
        assert config.admin.listen_address() == ("127.0.0.1", 8081)
    assert engine({"listen": "[::1]:9", "token_file": "/t"}).admin.listen_address() == ("::1", 9)


def admin_errors(tmp_path: Path, admin: dict[str, Any]) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**ENGINE, "admin": admin}), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_engine_config(path)
    return str(info.value)


def test_invalid_admin_sections_are_refused_with_the_key(tmp_path: Path) -> None:
    assert "exactly one of token_env" in admin_errors(tmp_path, {"listen": 8081})
    both = {"listen": 8081, "token_env": "T", "token_file": "/t"}
    assert "exactly one of token_env" in admin_errors(tmp_path, both)
    inline = admin_errors(tmp_path, {"listen": 8081, "token": "hunter2"})
    assert "admin.token: inline tokens are not allowed" in inline
    assert "admin.listen" in admin_errors(tmp_path, {"listen": "nohost:", "token_env": "T"})
    assert "admin.listen" in admin_errors(tmp_path, {"listen": "70000", "token_env": "T"})
    assert "admin.token_env" in admin_errors(tmp_path, {"listen": 1, "token_env": "not-a-var"})


def test_the_token_is_read_when_asked_and_must_not_be_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_ADMIN_TOKEN", "from-env")
    assert AdminConfig(listen="1", token_env="TEST_ADMIN_TOKEN").token() == "from-env"
    monkeypatch.setenv("TEST_ADMIN_TOKEN", "")
    with pytest.raises(ConfigError, match=r"admin\.token_env.*TEST_ADMIN_TOKEN"):
        AdminConfig(listen="1", token_env="TEST_ADMIN_TOKEN").token()
    secret = tmp_path / "token"
    secret.write_text("from-file\n", encoding="utf-8")
    assert AdminConfig(listen="1", token_file=str(secret)).token() == "from-file"
    secret.write_text("\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"admin\.token_file.*is empty"):
        AdminConfig(listen="1", token_file=str(secret)).token()
    with pytest.raises(ConfigError, match=r"admin\.token_file.*cannot read"):
        AdminConfig(listen="1", token_file=str(tmp_path / "missing")).token()


async def test_serve_admin_follows_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = AsyncLedger(tmp_path / "l.sqlite")
    controller = LedgerController(ledger, lambda *_: None, dict, ready=lambda: True)
    try:
        assert await serve_admin(AdminConfig(), controller) is None  # off by default
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        config = AdminConfig(listen=str(port), token_env="TEST_ADMIN_TOKEN")
        monkeypatch.delenv("TEST_ADMIN_TOKEN", raising=False)
        with pytest.raises(ConfigError, match=r"admin\.token_env"):
            await serve_admin(config, controller)
        monkeypatch.setenv("TEST_ADMIN_TOKEN", "tok")
        server = await serve_admin(config, controller)
        assert server is not None
        try:
            assert (await raw(port, get("/healthz", "tok")))[0] == 200
            assert (await raw(port, get("/healthz", TOKEN)))[0] == 401
        finally:
            server.close()
            await server.wait_closed()
    finally:
        await ledger.close()


def test_check_secrets_includes_the_admin_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_TSEL_PASSWORD", "pw")
    monkeypatch.delenv("TEST_ADMIN_TOKEN", raising=False)
    config = engine({"listen": 8081, "token_env": "TEST_ADMIN_TOKEN"})
    with pytest.raises(ConfigError, match=r"admin\.token_env"):
        config.check_secrets()
    monkeypatch.setenv("TEST_ADMIN_TOKEN", "t")
    config.check_secrets()
    engine({}).check_secrets()  # admin off: no token needed


def test_a_pruned_campaign_says_when_it_was_pruned() -> None:
    info = CampaignInfo("wave", {"seg:0": 5}, "running", 1_700_000_000.0, 1_700_086_400.5)
    entry = campaign_entry(info, None)
    assert entry["pruned_at"] == "2023-11-15T22:13:20.500000+00:00"
    assert campaign_entry(replace(info, pruned_at=None), None)["pruned_at"] is None
