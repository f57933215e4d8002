"""Live control end to end: `smsblast ctl` against the admin API of a real engine.

Tansu, the simulator, the engine and its admin server all run in this process (the
admin server is the one `smsblast run` starts: ``serve_admin(config.admin, ...)``);
`smsblast ctl` runs through the CLI entry point on a thread (it blocks) or as a
separate process. The submit count is sampled every 10 ms on the simulator's side,
so the figures below are what the SMSC saw, not what the engine believes it did.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from smsblast.admin.control import LedgerController
from smsblast.admin.server import serve_admin
from smsblast.cli import main
from smsblast.config import EngineConfig
from smsblast.engine.engine import Engine
from smsblast.engine.jobs import Job, WorkItem
from smsblast.engine.pool import ARM_BATCH, RoutePool, never_written
from smsblast.ledger import AsyncLedger
from smsblast.simulator import Simulator
from smsblast.smpp.parts import submit_parts
from smsblast.smpp.text import split_message
from tests.conftest import TopicFactory
from tests.engine_stack import (
    RouteSpec,
    campaign,
    engine_config,
    fill,
    make_engine,
    simulator_profile,
)

log = logging.getLogger("tests.control")

REPO = Path(__file__).resolve().parent.parent
TOKEN = "ctl-test-token"
NAME = "jaga"
N = 5_000
ROUTE = RouteSpec("telkomsel", ("811", "812", "813"), tps=1000, window=50)
#: Submits before the operator acts (~2 s at 500/s).
FIRST = 1_000


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMSBLAST_CONFIG", raising=False)
    monkeypatch.delenv("SMSBLAST_ADMIN_TOKEN", raising=False)


def numbers(n: int) -> list[str]:
    return [f"6281{1 + i % 3}{i:08d}" for i in range(n)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SubmitWatch:
    """The simulator's submit_sm count, sampled every 10 ms, with when it last grew."""

    def __init__(self, smsc: Simulator) -> None:
        self.smsc = smsc
        self.loop = asyncio.get_running_loop()
        self.count = self._read()
        self.last_change = self.loop.time()
        self._task = asyncio.create_task(self._sample())

    def _read(self) -> int:
        return int(self.smsc.stats()["totals"]["submits_received"])

    async def _sample(self) -> None:
        while True:
            await asyncio.sleep(0.01)
            count = self._read()
            if count != self.count:
                self.count = count
                self.last_change = self.loop.time()

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


@dataclass
class Stack:
    """One engine with its admin server (as `smsblast run` wires them)."""

    engine: Engine
    ledger: AsyncLedger
    server: asyncio.Server
    task: asyncio.Task[None]

    async def close(self) -> None:
        self.engine.stop()
        await asyncio.wait_for(self.task, 60)
        self.server.close()
        await self.server.wait_closed()
        await self.ledger.close()


async def start(
    config: EngineConfig, topic: str, patch: Callable[[AsyncLedger], None] | None = None
) -> Stack:
    engine, ledger = make_engine(config, [campaign(NAME, [topic], registered_delivery=False)])
    if patch is not None:
        patch(ledger)
    controller = LedgerController(ledger, engine.on_control, engine.status, ready=engine.ready)
    server = await serve_admin(config.admin, controller)
    assert server is not None
    task = asyncio.create_task(engine.run(until_done=True), name="engine")
    return Stack(engine, ledger, server, task)


async def wait_until(what: str, cond: Callable[[], bool], timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


@dataclass
class Env:
    config: EngineConfig
    url: str
    token_file: str
    wrong_token_file: str
    capsys: pytest.CaptureFixture[str]

    async def ctl(self, *argv: str, token_file: str | None = "") -> tuple[int, str, str]:
        """`smsblast ctl ...` on a thread (urllib blocks); the token file by default."""
        tf = self.token_file if token_file == "" else token_file
        args = ["ctl", *argv, "--url", self.url]
        if tf is not None:
            args += ["--token-file", tf]
        self.capsys.readouterr()
        code = await asyncio.to_thread(main, args)
        out = self.capsys.readouterr()
        return code, out.out, out.err

    async def ctl_process(self, *argv: str, token: str = TOKEN) -> tuple[int, str, str]:
        """`python -m smsblast ctl ...` as a separate process, token in the environment."""
        env = {**os.environ, "PYTHONPATH": str(REPO), "SMSBLAST_ADMIN_TOKEN": token}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "smsblast",
            "ctl",
            *argv,
            "--url",
            self.url,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    async def status(self) -> dict[str, Any]:
        code, out, err = await self.ctl("status", NAME, "--json")
        assert code == 0, err
        data: dict[str, Any] = json.loads(out)
        return data


def make_env(
    tmp_path: Path,
    bootstrap: str,
    sim_port: int,
    capsys: pytest.CaptureFixture[str],
    route: RouteSpec = ROUTE,
) -> Env:
    good = tmp_path / "admin-token"
    good.write_text(TOKEN + "\n")
    wrong = tmp_path / "wrong-token"
    wrong.write_text("not-" + TOKEN + "\n")
    port = free_port()
    config = engine_config(
        bootstrap,
        sim_port,
        [route],
        str(tmp_path / "ledger.sqlite"),
        admin={"listen": f"127.0.0.1:{port}", "token_file": str(good)},
    )
    return Env(config, f"http://127.0.0.1:{port}", str(good), str(wrong), capsys)


async def raw_post(url: str, path: str) -> tuple[int, bytes]:
    """A POST without any Authorization header: the status line and the whole answer."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode())
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return int(answer.split(b" ", 2)[1]), answer


async def pause_and_measure(env: Env, watch: SubmitWatch, quiet: float = 2.0) -> float:
    """`ctl pause`; the seconds from the request to the last submit the SMSC saw (the
    count must then hold still for ``quiet`` more seconds)."""
    loop = asyncio.get_running_loop()
    asked = loop.time()
    code, out, err = await env.ctl("pause", NAME)
    answered = loop.time()
    assert (code, out) == (0, f"campaign {NAME}: paused\n"), err
    await asyncio.sleep(1.0)  # "within one second"
    held = watch.count
    await asyncio.sleep(quiet)
    delay = watch.last_change - asked
    log.warning(
        "pause: ctl answered in %.3f s; last submit %.3f s after the request; %d submits "
        "1 s after it, %d %.0f s after it",
        answered - asked,
        delay,
        held,
        watch.count,
        1 + quiet,
    )
    assert watch.count == held, f"still sending {1 + quiet:.0f} s after the pause"
    assert delay < 1.0
    return delay


# --------------------------------------------------------------------------- the tests


async def test_pause_holds_the_sending_and_resume_completes_exactly_once(
    kafka_bootstrap: str,
    kafka_topic: TopicFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topic = await kafka_topic(partitions=3)
    await fill(kafka_bootstrap, topic, numbers(N))
    async with Simulator(simulator_profile([ROUTE])) as smsc:
        env = make_env(tmp_path, kafka_bootstrap, smsc.port, capsys)
        stack = await start(env.config, topic)
        watch = SubmitWatch(smsc)
        try:
            await wait_until(f"{FIRST} submits", lambda: watch.count >= FIRST)
            await pause_and_measure(env, watch)
            paused_at = watch.count
            assert paused_at < N

            status = await env.status()
            assert status["control"] == "paused"
            assert status["engine"]["state"] == "paused" and status["engine"]["control"] == "paused"

            # Without the token, or with a wrong one: 401, and the campaign stays paused.
            code, _, err = await env.ctl("resume", NAME, token_file=env.wrong_token_file)
            assert code == 1 and "unauthorized: check the admin token" in err
            code, _, err = await env.ctl("pause", NAME, token_file=env.wrong_token_file)
            assert code == 1 and "unauthorized: check the admin token" in err
            code, _, err = await env.ctl_process("resume", NAME, token="wrong")
            assert code == 1 and "unauthorized: check the admin token" in err
            code, _, err = await env.ctl("resume", NAME, token_file=None)
            assert code == 2 and "no admin token" in err  # ctl refuses to ask without one
            status_code, answer = await raw_post(env.url, f"/campaigns/{NAME}/resume")
            assert status_code == 401 and b"WWW-Authenticate: Bearer" in answer
            assert (await env.status())["control"] == "paused"
            await asyncio.sleep(0.5)
            assert watch.count == paused_at  # still nothing sent
            assert not stack.task.done()

            # A separate process reads the same state.
            code, out, err = await env.ctl_process("status", NAME, "--json")
            assert code == 0, err
            assert json.loads(out)["control"] == "paused"

            loop = asyncio.get_running_loop()
            resumed = loop.time()
            code, out, err = await env.ctl("resume", NAME)
            assert (code, out) == (0, f"campaign {NAME}: running\n"), err
            await wait_until("a submit after resume", lambda: watch.count > paused_at, 5)
            log.warning(
                "resume: first submit %.3f s after the request", watch.last_change - resumed
            )
            await asyncio.wait_for(asyncio.shield(stack.task), 60)
            log.warning("resume: blast complete %.1f s after the request", loop.time() - resumed)
            counts = await stack.ledger.counts(NAME)
        finally:
            await watch.close()
            await stack.close()
        totals = smsc.stats()["totals"]
    assert totals["duplicates"] == 0
    assert totals["submits_accepted"] == N
    assert counts["submitted"] == N, counts
    assert sum(counts.values()) == N, counts


async def test_paused_state_survives_a_restart(
    kafka_bootstrap: str,
    kafka_topic: TopicFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topic = await kafka_topic(partitions=3)
    await fill(kafka_bootstrap, topic, numbers(N))
    async with Simulator(simulator_profile([ROUTE])) as smsc:
        env = make_env(tmp_path, kafka_bootstrap, smsc.port, capsys)
        watch = SubmitWatch(smsc)
        try:
            first = await start(env.config, topic)
            try:
                await wait_until(f"{FIRST} submits", lambda: watch.count >= FIRST)
                await pause_and_measure(env, watch, quiet=1.0)
            finally:
                await first.close()  # engine.stop(), run returns, admin server closed
            at_stop = watch.count
            assert at_stop < N

            second = await start(env.config, topic)
            try:
                await wait_until("the new engine's bind", second.engine.ready, 15)
                await wait_until(
                    "the backlog read back",
                    lambda: second.engine.status()[NAME]["in_memory"] > 0,
                    15,
                )
                status = await env.status()  # through the new engine's admin server
                assert status["control"] == "paused"
                assert status["engine"]["state"] == "paused"
                await asyncio.sleep(2.0)
                assert watch.count == at_stop, "a restarted paused campaign sent"
                assert not second.task.done()

                code, out, err = await env.ctl_process("resume", NAME)  # a separate process
                assert (code, out) == (0, f"campaign {NAME}: running\n"), err
                await asyncio.wait_for(asyncio.shield(second.task), 60)
                counts = await second.ledger.counts(NAME)
            finally:
                await second.close()
        finally:
            await watch.close()
        totals = smsc.stats()["totals"]
    log.warning("restart: %d submits before the stop, %d after the resume", at_stop, N - at_stop)
    assert totals["duplicates"] == 0
    assert totals["submits_accepted"] == N
    assert counts["submitted"] == N, counts
    assert sum(counts.values()) == N, counts


async def test_cancel_ends_the_run_leaves_the_rest_pending_and_stays_cancelled(
    kafka_bootstrap: str,
    kafka_topic: TopicFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topic = await kafka_topic(partitions=3)
    await fill(kafka_bootstrap, topic, numbers(N))
    async with Simulator(simulator_profile([ROUTE])) as smsc:
        env = make_env(tmp_path, kafka_bootstrap, smsc.port, capsys)
        watch = SubmitWatch(smsc)
        loop = asyncio.get_running_loop()
        try:
            first = await start(env.config, topic)
            try:
                await wait_until(f"{FIRST} submits", lambda: watch.count >= FIRST)
                claimed = 0

                async def read_all() -> None:
                    nonlocal claimed
                    while claimed < N:
                        claimed = sum((await first.ledger.counts(NAME)).values())
                        await asyncio.sleep(0.05)

                await asyncio.wait_for(read_all(), 15)  # every recipient is in the ledger
                asked = loop.time()
                code, out, err = await env.ctl("cancel", NAME)
                assert (code, out) == (0, f"campaign {NAME}: cancelled\n"), err
                await asyncio.wait_for(asyncio.shield(first.task), 30)  # engine.run returns
                ended = loop.time() - asked
                await asyncio.sleep(1.0)
                last_submit = watch.last_change - asked
                log.warning(
                    "cancel: engine.run returned %.3f s after the request; last submit %.3f s "
                    "after it; %d submits",
                    ended,
                    last_submit,
                    watch.count,
                )
                assert last_submit < 1.0
                report = await first.ledger.report(NAME)
            finally:
                await first.close()
            sent = watch.count
            accepted = smsc.stats()["totals"]["submits_accepted"]
            assert sent == accepted < N
            assert report["control"] == "cancelled"
            states = report["states"]
            assert states["submitted"] == accepted, states
            assert states["pending"] == N - accepted, states  # not lost, not sent
            assert states["in_flight"] == 0 and states["unknown"] == 0, states
            assert report["total"] == N

            second = await start(env.config, topic)
            try:
                # A cancelled campaign sends nothing: the run ends at once.
                await asyncio.wait_for(asyncio.shield(second.task), 30)
                await asyncio.sleep(1.0)
                assert watch.count == sent
                assert second.engine.status()[NAME]["state"] == "cancelled"
                # cancel is final: resume is refused (409), by a separate process too
                code, _, err = await env.ctl("resume", NAME)
                assert code == 1 and "HTTP 409" in err
                code, _, err = await env.ctl_process("pause", NAME)
                assert code == 1 and "HTTP 409" in err
                status = await env.status()
                assert status["control"] == "cancelled"
                assert status["counts"]["pending"] == N - accepted
                after = await second.ledger.report(NAME)
            finally:
                await second.close()
        finally:
            await watch.close()
        totals = smsc.stats()["totals"]
    assert after["states"] == states
    assert totals["submits_accepted"] == accepted
    assert totals["duplicates"] == 0


async def test_pause_also_holds_retries(
    kafka_bootstrap: str,
    kafka_topic: TopicFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A part that got a transient error is retried with backoff (up to 10 s later): a
    retry due after the pause must wait for the resume too, not reach the SMSC."""
    topic = await kafka_topic(partitions=3)
    await fill(kafka_bootstrap, topic, numbers(N))
    profile = simulator_profile([ROUTE], faults={"error_rates": {0x08: 0.1}})  # ESME_RSYSERR
    async with Simulator(profile) as smsc:
        env = make_env(tmp_path, kafka_bootstrap, smsc.port, capsys)
        stack = await start(env.config, topic)
        watch = SubmitWatch(smsc)
        try:
            await wait_until(f"{FIRST} submits", lambda: watch.count >= FIRST)
            await pause_and_measure(env, watch, quiet=3.0)
            code, out, err = await env.ctl("resume", NAME)
            assert (code, out) == (0, f"campaign {NAME}: running\n"), err
            await asyncio.wait_for(asyncio.shield(stack.task), 90)
            counts = await stack.ledger.counts(NAME)
        finally:
            await watch.close()
            await stack.close()
        totals = smsc.stats()["totals"]
    assert totals["duplicates"] == 0
    assert totals["submits_accepted"] + counts.get("failed", 0) == N
    assert counts["submitted"] + counts.get("failed", 0) == N, counts


async def test_a_pause_while_the_run_opens_is_not_lost(
    kafka_bootstrap: str,
    kafka_topic: TopicFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The engine reads the campaign's control from the ledger when its run opens; a pause
    that lands while that read is under way must still hold (the newest control wins)."""
    topic = await kafka_topic(partitions=3)
    await fill(kafka_bootstrap, topic, numbers(N))
    async with Simulator(simulator_profile([ROUTE])) as smsc:
        env = make_env(tmp_path, kafka_bootstrap, smsc.port, capsys)
        watch = SubmitWatch(smsc)
        try:
            first = await start(env.config, topic)  # the campaign gets into the ledger
            try:
                await wait_until("a few submits", lambda: watch.count >= 200)
            finally:
                await first.close()
            at_stop = watch.count

            opened = asyncio.Event()
            release = asyncio.Event()

            def slow_open(ledger: AsyncLedger) -> None:
                real = ledger.open_campaign

                async def open_campaign(name: str, snapshot: dict[str, int] | None) -> Any:
                    info = await real(name, snapshot)  # reads control "running"
                    opened.set()
                    await release.wait()
                    return info

                ledger.open_campaign = open_campaign  # type: ignore[method-assign]

            second = await start(env.config, topic, slow_open)
            try:
                await asyncio.wait_for(opened.wait(), 30)
                code, out, err = await env.ctl("pause", NAME)
                assert (code, out) == (0, f"campaign {NAME}: paused\n"), err
                release.set()
                await wait_until("the new engine's bind", second.engine.ready, 15)
                await asyncio.sleep(2.0)
                assert watch.count == at_stop, "the pause was lost: the engine sent"
                assert (await env.status())["engine"]["state"] == "paused"
            finally:
                await second.close()
        finally:
            await watch.close()


async def test_a_pause_before_the_run_opens_holds_from_its_first_message(
    kafka_bootstrap: str,
    kafka_topic: TopicFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A campaign not in the ledger yet (its run waits for its start, or for its Kafka group)
    can be paused: the ledger keeps the control and the run opens paused."""
    topic = await kafka_topic(partitions=3)
    await fill(kafka_bootstrap, topic, numbers(N))
    async with Simulator(simulator_profile([ROUTE])) as smsc:
        env = make_env(tmp_path, kafka_bootstrap, smsc.port, capsys)
        watch = SubmitWatch(smsc)
        opening = asyncio.Event()
        release = asyncio.Event()

        def hold_open(ledger: AsyncLedger) -> None:
            real = ledger.open_campaign

            async def open_campaign(name: str, snapshot: dict[str, int] | None) -> Any:
                opening.set()
                await release.wait()  # not in the ledger until the pause is in
                return await real(name, snapshot)

            ledger.open_campaign = open_campaign  # type: ignore[method-assign]

        stack = await start(env.config, topic, hold_open)
        try:
            await asyncio.wait_for(opening.wait(), 30)
            assert [c.name for c in await stack.ledger.campaigns()] == []
            waiting = await env.status()  # listed before it opens, as the engine reports it
            assert (waiting["control"], waiting["created_at"]) == ("running", None)
            assert waiting["engine"]["state"] == "waiting" and waiting["counts"] == {}
            code, out, err = await env.ctl("pause", NAME)
            assert (code, out) == (0, f"campaign {NAME}: paused\n"), err
            assert (await env.status())["control"] == "paused"
            release.set()
            await wait_until("the engine's bind", stack.engine.ready, 15)
            await asyncio.sleep(2.0)
            assert watch.count == 0, "the run opened running: it sent"
            assert (await env.status())["engine"]["state"] == "paused"
            assert [c.control for c in await stack.ledger.campaigns()] == ["paused"]
        finally:
            await watch.close()
            await stack.close()


async def test_cancel_while_paused_ends_the_run(
    kafka_bootstrap: str,
    kafka_topic: TopicFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topic = await kafka_topic(partitions=3)
    await fill(kafka_bootstrap, topic, numbers(N))
    async with Simulator(simulator_profile([ROUTE])) as smsc:
        env = make_env(tmp_path, kafka_bootstrap, smsc.port, capsys)
        stack = await start(env.config, topic)
        watch = SubmitWatch(smsc)
        try:
            await wait_until(f"{FIRST} submits", lambda: watch.count >= FIRST)
            await pause_and_measure(env, watch, quiet=0.5)
            sent = watch.count
            loop = asyncio.get_running_loop()
            asked = loop.time()
            code, out, err = await env.ctl_process("cancel", NAME)
            assert (code, out) == (0, f"campaign {NAME}: cancelled\n"), err
            await asyncio.wait_for(asyncio.shield(stack.task), 30)
            log.warning("cancel while paused: run returned %.3f s after", loop.time() - asked)
            assert watch.count == sent
            report = await stack.ledger.report(NAME)
        finally:
            await watch.close()
            await stack.close()
        totals = smsc.stats()["totals"]
    states = report["states"]
    assert report["control"] == "cancelled"
    assert states["submitted"] == totals["submits_accepted"] == sent
    assert states["in_flight"] == 0 and states["unknown"] == 0, states
    assert states["submitted"] + states["pending"] == report["total"], states
    assert totals["duplicates"] == 0


async def test_pause_holds_within_a_second_on_a_slow_bind(
    kafka_bootstrap: str,
    kafka_topic: TopicFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """30 submits/s with a window of 50 (both within common contract limits): the parts
    already armed for the bind are more than a second of its sending, so a pause must
    take them back, not let them all go."""
    slow = RouteSpec("telkomsel", ("811", "812", "813"), tps=30, window=50)
    n = 300
    topic = await kafka_topic(partitions=3)
    await fill(kafka_bootstrap, topic, numbers(n))
    async with Simulator(simulator_profile([slow])) as smsc:
        env = make_env(tmp_path, kafka_bootstrap, smsc.port, capsys, slow)
        stack = await start(env.config, topic)
        watch = SubmitWatch(smsc)
        try:
            await wait_until("60 submits", lambda: watch.count >= 60)
            await pause_and_measure(env, watch)
            # The parts taken back had never been written: their recipients are PENDING
            # again, so a crash while paused would send them after the restart instead of
            # reporting them unknown. Only what the SMSC saw is past PENDING.
            paused = await stack.ledger.counts(NAME)
            assert paused["in_flight"] == 0, paused
            assert paused["pending"] == n - watch.count, (paused, watch.count)
            code, out, err = await env.ctl("resume", NAME)
            assert (code, out) == (0, f"campaign {NAME}: running\n"), err
            await asyncio.wait_for(asyncio.shield(stack.task), 60)
            counts = await stack.ledger.counts(NAME)
        finally:
            await watch.close()
            await stack.close()
        totals = smsc.stats()["totals"]
    assert totals["duplicates"] == 0
    assert totals["submits_accepted"] == n
    assert counts["submitted"] == n, counts


# --------------------------------------------------------------------------- the pool's gate


class FakeRun:
    name = "fake"


PARTS = submit_parts(split_message("Jaga Persatuan Indonesia"))


def items(run: object, n: int, start: int = 0) -> list[WorkItem]:
    return [
        WorkItem(Job(cast(Any, run), f"62812{i:08d}", "r", PARTS, None, -1), 0, 0)
        for i in range(start, start + n)
    ]


def msisdns(queue: Any) -> list[str]:
    return [item.job.msisdn for item in queue]


async def never_armed(batch: list[WorkItem]) -> list[WorkItem]:
    raise AssertionError("not expected to arm")


def test_never_written_keeps_only_jobs_whose_every_part_is_held_on_a_first_attempt() -> None:
    run = FakeRun()
    two = submit_parts(split_message("x" * 200))  # two parts
    whole = Job(cast(Any, run), "6281200000001", "r", two, None, -1, armed=True)
    half_sent = Job(cast(Any, run), "6281200000002", "r", two, None, -1, armed=True)
    retried = Job(cast(Any, run), "6281200000003", "r", PARTS, None, -1, armed=True)
    unarmed = Job(cast(Any, run), "6281200000004", "r", PARTS, None, -1)
    settled = Job(cast(Any, run), "6281200000005", "r", two, None, -1, armed=True)
    settled.message_ids.append((0, "a", "a"))
    held = [
        WorkItem(whole, 0, 0),
        WorkItem(whole, 1, 0),
        WorkItem(half_sent, 1, 0),  # part 0 is in a window or done
        WorkItem(retried, 0, 1),  # written once already
        WorkItem(unarmed, 0, 0),
        WorkItem(settled, 1, 0),
        WorkItem(settled, 0, 0),  # an impossible mix, still refused: an id was recorded
    ]
    assert never_written(held) == [whole]


async def test_closing_a_gate_takes_its_armed_parts_back_in_order() -> None:
    pool = RoutePool("r", 100, lambda *_: None, never_armed)
    paused, other = FakeRun(), FakeRun()
    pool.lane(paused)
    pool.lane(other)
    mine, theirs = items(paused, 3), items(other, 2, start=10)
    waiting = items(paused, 2, start=20)
    pool.lane(paused).queue.extend(waiting)
    pool.armed.extend([mine[0], theirs[0], mine[1], mine[2], theirs[1]])
    held = pool.armed
    pool.set_gate(paused, False)
    assert pool.armed is held  # the pumps keep their reference
    assert msisdns(pool.armed) == msisdns(theirs)
    assert msisdns(pool.lane(paused).queue) == msisdns(mine + waiting)
    # a retry due while closed waits at the front of the lane
    retry = WorkItem(mine[0].job, 0, 1)
    pool.retry(retry)
    assert pool.lane(paused).queue[0] is retry
    assert msisdns(pool.armed) == msisdns(theirs)
    # open again: a retry goes straight to the binds
    pool.set_gate(paused, True)
    pool.retry(WorkItem(mine[1].job, 0, 1))
    assert pool.armed[0].job is mine[1].job


class FakeWorker:
    """What the pool reads of a bind worker to size its armed queue."""

    sends = True

    def __init__(self, window: int, rate: float) -> None:
        self.is_up = True
        self.config = type("Config", (), {"window": window})()
        self.limiter = type("Limiter", (), {"rate": rate})()


async def test_new_recipients_skip_the_armer_only_while_it_would_arm_them_at_once() -> None:
    """direct_room: what the campaign may claim IN_FLIGHT and hand over itself. None while
    another lane waits (the armer shares by weight), the lane is paced or closed, or no
    bind is up; else the room left under the arm target, at most one arming batch."""
    pool = RoutePool("r", 100, lambda *_: None, never_armed)
    run, other = FakeRun(), FakeRun()
    assert pool.direct_room(run) == 0  # no lane: the run has not started on this route
    pool.lane(run)
    pool.lane(other)
    assert pool.direct_room(run) == 0  # no bind
    worker = FakeWorker(window=10, rate=100.0)
    pool.add_worker(cast(Any, worker))
    assert pool.direct_room(run) == 21  # window 10 + 100 ms at 100/s + 1
    pool.armed.extend(items(other, 5))
    assert pool.direct_room(run) == 16
    pool.lane(other).queue.extend(items(other, 1, start=50))
    assert pool.direct_room(run) == 0
    pool.lane(other).queue.clear()
    pool.set_pace(run, 50.0)
    assert pool.direct_room(run) == 0  # only the armer keeps to a pacer
    pool.set_pace(run, None)
    pool.set_gate(run, False)
    assert pool.direct_room(run) == 0
    pool.set_gate(run, True)
    worker.is_up = False
    assert pool.direct_room(run) == 0
    worker.is_up = True
    worker.limiter.rate = 10_000_000.0
    assert pool.direct_room(run) == ARM_BATCH


async def test_parts_claimed_in_flight_go_to_the_binds_or_back_to_a_closed_lane() -> None:
    disarmed: list[str] = []
    pool = RoutePool(
        "r", 100, lambda *_: None, never_armed, lambda jobs: disarmed.extend(j.msisdn for j in jobs)
    )
    run = FakeRun()
    pool.lane(run)
    first = items(run, 2)
    for item in first:
        item.job.armed = True
    pool.arm_claimed(run, first)
    assert msisdns(pool.armed) == msisdns(first)
    pool.set_gate(run, False)  # paused: the armed parts go back, PENDING again
    assert msisdns(pool.lane(run).queue) == msisdns(first) and disarmed == msisdns(first)
    late = items(run, 1, start=10)  # claimed IN_FLIGHT before the pause, started after it
    late[0].job.armed = True
    pool.arm_claimed(run, late)
    assert not pool.armed
    assert msisdns(pool.lane(run).queue) == msisdns(late + first)
    assert disarmed == msisdns(first + late)


async def test_a_gate_closing_while_the_ledger_marks_holds_that_batch() -> None:
    run = FakeRun()
    calls: list[list[str]] = []

    async def arm(batch: list[WorkItem]) -> list[WorkItem]:
        calls.append(msisdns(batch))
        for item in batch:
            item.job.armed = True
        pool.set_gate(run, False)  # the operator pauses during the ledger write
        await asyncio.sleep(0)
        return batch

    pool = RoutePool("r", 100, lambda *_: None, arm)
    queued = items(run, 3)
    for item in queued:
        pool.enqueue(item)
    pool.start()
    try:
        await wait_until("the armer's first batch", lambda: bool(calls), 5)
        await asyncio.sleep(0.1)
    finally:
        await pool.close(0.1)
    assert len(calls) == 1
    assert not pool.armed
    assert msisdns(pool.lane(run).queue) == msisdns(queued)  # all of it, in order
