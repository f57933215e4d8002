"""The SMSC simulator driven by smpplib's blocking client, an independent SMPP implementation.

Each test starts its own simulator on an ephemeral loopback port and runs the blocking
client in a worker thread (``asyncio.to_thread``), so the simulator's loop keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import select
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import smpplib.client
import smpplib.exceptions

from smsblast.simulator import Profile, Simulator
from smsblast.smpp.receipt import (
    IdFormat,
    ReceiptState,
    normalize_message_id,
    parse_receipt_text,
)

pytestmark = pytest.mark.timeout(60)

SYSTEM_ID = "smsblast"
PASSWORD = "secret"

RECEIPT_RE = re.compile(
    r"^id:(?P<id>\S+) sub:001 dlvrd:(?P<dlvrd>\d{3}) submit date:\d{10} done date:\d{10} "
    r"stat:(?P<stat>[A-Z]{7}) err:(?P<err>\d{3}) text:(?P<text>.*)$"
)


def profile(**overrides: Any) -> Profile:
    """A loopback profile on an ephemeral port, with overrides on top."""
    data: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "accounts": [{"system_id": SYSTEM_ID, "password": PASSWORD}],
    }
    data.update(overrides)
    return Profile.model_validate(data)


class Esme:
    """smpplib client that records every response, receipt and the order they came in."""

    def __init__(self, sim: Simulator, *, timeout: float = 5.0) -> None:
        self.client = smpplib.client.Client(
            sim.host, sim.port, timeout=timeout, allow_unknown_opt_params=True
        )
        self.resps: dict[int, tuple[int, str]] = {}  # sequence -> (status, message_id)
        self.receipts: list[Any] = []
        self.events: list[tuple[str, Any]] = []
        self.client.set_message_sent_handler(self._on_resp)
        self.client.set_message_received_handler(self._on_deliver)
        self.client.set_error_pdu_handler(lambda pdu: None)  # statuses are in self.resps
        self.client.connect()

    def _on_resp(self, pdu: Any) -> None:
        message_id = pdu.message_id.decode() if pdu.message_id else ""
        self.resps[pdu.sequence] = (int(pdu.status), message_id)
        self.events.append(("resp", pdu.sequence))

    def _on_deliver(self, pdu: Any) -> int:
        self.receipts.append(pdu)
        self.events.append(("receipt", pdu.receipted_message_id))
        return 0

    def bind(
        self, kind: str = "transceiver", system_id: str = SYSTEM_ID, password: str = PASSWORD
    ) -> None:
        getattr(self.client, f"bind_{kind}")(system_id=system_id, password=password)

    def submit(
        self,
        destination: str,
        text: bytes = b"Promo smsblast",
        registered_delivery: int = 1,
        **kwargs: Any,
    ) -> int:
        pdu = self.client.send_message(
            source_addr_ton=5,
            source_addr_npi=0,
            source_addr="SMSBLAST",
            dest_addr_ton=1,
            dest_addr_npi=1,
            destination_addr=destination,
            short_message=text,
            registered_delivery=registered_delivery,
            **kwargs,
        )
        return int(pdu.sequence)

    def poll(self) -> None:
        """Handle every PDU that is already readable."""
        sock = self.client._socket
        while select.select([sock], [], [], 0)[0]:
            self.client.read_once()

    def pump(self, done: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        sock = self.client._socket
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("timed out waiting for PDUs from the simulator")
            if select.select([sock], [], [], min(left, 0.05))[0]:
                self.client.read_once()

    def statuses(self) -> list[int]:
        return [status for _seq, (status, _mid) in sorted(self.resps.items())]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.unbind()
        self.client.disconnect()


async def run(fn: Callable[[], Any]) -> Any:
    return await asyncio.to_thread(fn)


# ------------------------------------------------------------------------------ binds


@pytest.mark.parametrize("kind", ["transmitter", "receiver", "transceiver"])
async def test_each_bind_type_binds_and_unbinds(kind: str) -> None:
    async with Simulator(profile()) as sim:

        def scenario() -> Any:
            esme = Esme(sim)
            resp = getattr(esme.client, f"bind_{kind}")(system_id=SYSTEM_ID, password=PASSWORD)
            unbind = esme.client.unbind()
            esme.client.disconnect()
            return resp, unbind

        resp, unbind = await run(scenario)
        assert resp.status == 0 and resp.system_id == b"smsblast-sim"
        assert unbind.status == 0 and unbind.command == "unbind_resp"
        stats = sim.stats()["accounts"][SYSTEM_ID]["binds"]
        assert stats["by_type"] == {kind: 1} and stats["total"] == 1


@pytest.mark.parametrize(
    ("system_id", "password", "status"),
    [(SYSTEM_ID, "wrong", 0x0E), ("nobody", PASSWORD, 0x0F)],
)
async def test_bind_with_bad_credentials_is_refused(
    system_id: str, password: str, status: int
) -> None:
    async with Simulator(profile()) as sim:

        def scenario() -> int:
            esme = Esme(sim)
            try:
                esme.bind(system_id=system_id, password=password)
            except smpplib.exceptions.PDUError as exc:
                return int(exc.args[1])
            finally:
                esme.client.disconnect()
            raise AssertionError("bind succeeded")

        assert await run(scenario) == status
        stats = sim.stats()
        if system_id == SYSTEM_ID:
            assert stats["accounts"][SYSTEM_ID]["binds"]["failed"] == {"ESME_RINVPASWD": 1}
        else:
            assert stats["simulator"]["bind_failures_unknown_account"] == {"ESME_RINVSYSID": 1}


async def test_bind_type_not_allowed_and_max_binds_are_refused_with_rbindfail() -> None:
    accounts = [
        {"system_id": SYSTEM_ID, "password": PASSWORD, "bind_types": ["tx"], "max_binds": 1}
    ]
    async with Simulator(profile(accounts=accounts)) as sim:

        def scenario() -> list[int]:
            first, second, third = Esme(sim), Esme(sim), Esme(sim)
            first.bind("transmitter")
            codes = []
            for esme, kind in ((second, "receiver"), (third, "transmitter")):
                try:
                    esme.bind(kind)
                    codes.append(0)
                except smpplib.exceptions.PDUError as exc:
                    codes.append(int(exc.args[1]))
            for esme in (first, second, third):
                esme.client.disconnect()
            return codes

        assert await run(scenario) == [0x0D, 0x0D]
        assert sim.stats()["accounts"][SYSTEM_ID]["binds"]["failed"] == {"ESME_RBINDFAIL": 2}


# ------------------------------------------------------------------------------ limits


async def test_pushing_twice_the_bind_tps_gets_half_throttled_and_no_second_over_limit() -> None:
    tps = 100
    async with Simulator(profile(limits={"tps_per_bind": tps})) as sim:

        def scenario() -> list[int]:
            esme = Esme(sim)
            esme.bind("transmitter")
            start = time.monotonic()
            n = 6 * tps // 2 * 2  # 2x the limit for 3 seconds
            for i in range(n):
                delay = start + i / (2 * tps) - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                esme.submit(f"62812{i:07d}", registered_delivery=0)
                esme.poll()
            esme.pump(lambda: len(esme.resps) == n)
            esme.close()
            return esme.statuses()

        statuses = await run(scenario)
        throttled = statuses.count(0x58)
        assert set(statuses) <= {0, 0x58}
        assert 0.40 <= throttled / len(statuses) <= 0.60, throttled
        bind = next(iter(sim.stats()["binds"].values()))
        assert bind["max_accepted_1s"] == tps  # the limit is reached, never exceeded
        assert bind["throttled"] == {"bind": throttled, "account": 0}
        assert bind["submits"]["by_status"] == {
            "ESME_ROK": len(statuses) - throttled,
            "ESME_RTHROTTLED": throttled,
        }


async def test_account_tps_is_shared_by_its_binds() -> None:
    limit = 100
    async with Simulator(profile(limits={"tps_per_account": limit})) as sim:

        def scenario() -> list[int]:
            a, b = Esme(sim), Esme(sim)
            a.bind("transmitter")
            b.bind("transceiver")
            start = time.monotonic()
            n = 2 * limit * 2  # both binds together: 2x the account limit for 2 s
            for i in range(n):
                delay = start + i / (2 * limit) - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                (a if i % 2 else b).submit(f"62813{i:07d}", registered_delivery=0)
                a.poll()
                b.poll()
            a.pump(lambda: len(a.resps) == n // 2)
            b.pump(lambda: len(b.resps) == n // 2)
            a.close()
            b.close()
            return a.statuses() + b.statuses()

        statuses = await run(scenario)
        throttled = statuses.count(0x58)
        assert 0.35 <= throttled / len(statuses) <= 0.65, throttled
        account = sim.stats()["accounts"][SYSTEM_ID]
        assert account["max_accepted_1s"] == limit
        assert account["throttled"] == {"bind": 0, "account": throttled}


async def test_window_overflow_is_answered_rmsgqful_and_frees_up_after_resps() -> None:
    async with Simulator(profile(limits={"max_outstanding": 5}, latency=300)) as sim:

        def scenario() -> tuple[list[int], int, float]:
            esme = Esme(sim)
            esme.bind("transmitter")
            t0 = time.monotonic()
            seqs = [esme.submit(f"6281{i:08d}", registered_delivery=0) for i in range(8)]
            esme.pump(lambda: sum(1 for s in seqs if s in esme.resps) == 3)
            early = time.monotonic() - t0  # the 3 RMSGQFUL come at once, not after 300 ms
            esme.pump(lambda: len(esme.resps) == 8)
            again = esme.submit("628199999999", registered_delivery=0)
            esme.pump(lambda: again in esme.resps)
            statuses = [esme.resps[s][0] for s in seqs]
            esme.close()
            return statuses, esme.resps[again][0], early

        statuses, again, early = await run(scenario)
        assert statuses == [0] * 5 + [0x14] * 3
        assert again == 0
        assert early < 0.25
        bind = next(iter(sim.stats()["binds"].values()))
        assert bind["window_full"] == 3 and bind["outstanding"] == 0


async def test_latency_delays_submit_sm_resp() -> None:
    async with Simulator(profile(latency=150)) as sim:

        def scenario() -> float:
            esme = Esme(sim)
            esme.bind("transmitter")
            t0 = time.monotonic()
            seq = esme.submit("628123456789", registered_delivery=0)
            esme.pump(lambda: seq in esme.resps)
            esme.close()
            return time.monotonic() - t0

        elapsed = await run(scenario)
        assert 0.14 <= elapsed < 1.0


# ------------------------------------------------------------------------------ faults


async def test_error_rates_inject_statuses_in_proportion() -> None:
    faults = {"error_rates": {"ESME_RSYSERR": 0.3, "0x45": 0.2}}
    async with Simulator(profile(seed=11, faults=faults)) as sim:

        def scenario() -> list[int]:
            esme = Esme(sim)
            esme.bind("transmitter")
            for i in range(400):
                esme.submit(f"62814{i:07d}", registered_delivery=0)
                if i % 50 == 49:
                    esme.pump(lambda i=i: len(esme.resps) == i + 1)
            esme.pump(lambda: len(esme.resps) == 400)
            esme.close()
            return esme.statuses()

        statuses = await run(scenario)
        assert set(statuses) == {0, 0x08, 0x45}
        assert 0.22 <= statuses.count(0x08) / 400 <= 0.38
        assert 0.13 <= statuses.count(0x45) / 400 <= 0.27
        by_status = sim.stats()["accounts"][SYSTEM_ID]["submits"]["by_status"]
        assert by_status["ESME_RSYSERR"] == statuses.count(0x08)
        assert by_status["ESME_RSUBMITFAIL"] == statuses.count(0x45)


async def test_magic_destinations_force_a_status_or_no_answer() -> None:
    faults = {
        "magic_destinations": {"628000000001": "ESME_RINVDSTADR", "628000000002": "no_answer"}
    }
    async with Simulator(profile(faults=faults)) as sim:

        def scenario() -> tuple[dict[int, tuple[int, str]], list[int], int]:
            esme = Esme(sim)
            esme.bind("transceiver")
            forced = esme.submit("628000000001")
            silent = esme.submit("628000000002")
            normal = esme.submit("628000000003")
            esme.pump(lambda: forced in esme.resps and normal in esme.resps)
            time.sleep(0.3)
            esme.poll()
            receipts = len(esme.receipts)
            esme.close()
            return esme.resps, [forced, silent, normal], receipts

        resps, (forced, silent, normal), receipts = await run(scenario)
        assert resps[forced][0] == 0x0B
        assert silent not in resps
        assert resps[normal][0] == 0
        assert receipts == 1  # only the accepted message gets a receipt
        account = sim.stats()["accounts"][SYSTEM_ID]
        assert account["submits"]["no_answer"] == 1
        assert account["submits"]["received"] == 3


async def test_bind_dropped_after_n_pdus() -> None:
    async with Simulator(profile(faults={"drop_after_pdus": 5})) as sim:

        def scenario() -> tuple[int, bool]:
            esme = Esme(sim)
            esme.bind("transmitter")
            answered = 0
            dropped = False
            for i in range(10):
                seq = esme.submit(f"62815{i:07d}", registered_delivery=0)
                try:
                    esme.pump(lambda seq=seq: seq in esme.resps, timeout=3)
                    answered += 1
                except smpplib.exceptions.ConnectionError:
                    dropped = True
                    break
            esme.client.disconnect()
            return answered, dropped

        answered, dropped = await run(scenario)
        assert (answered, dropped) == (5, True)
        stats = sim.stats()
        assert stats["simulator"]["fault_drops"] == 1
        bind = next(iter(stats["binds"].values()))
        assert bind["state"] == "closed" and bind["close_reason"].startswith("fault: drop after 5")


async def test_bind_dropped_every_n_seconds() -> None:
    async with Simulator(profile(faults={"drop_every_s": 0.4})) as sim:

        def scenario() -> float:
            esme = Esme(sim)
            esme.bind("transceiver")
            t0 = time.monotonic()
            with pytest.raises(smpplib.exceptions.ConnectionError):
                esme.pump(lambda: False, timeout=5)
            esme.client.disconnect()
            return time.monotonic() - t0

        elapsed = await run(scenario)
        assert 0.3 <= elapsed < 3.0
        assert sim.stats()["simulator"]["fault_drops"] == 1


async def test_slow_reader_stops_reading_for_the_pause() -> None:
    faults = {"slow_reader": {"pause_ms": 400, "after_pdus": 3}}
    async with Simulator(profile(faults=faults)) as sim:

        def scenario() -> list[float]:
            esme = Esme(sim)
            esme.bind("transmitter")
            arrival: dict[int, float] = {}
            esme.client.set_message_sent_handler(
                lambda pdu: (esme._on_resp(pdu), arrival.setdefault(pdu.sequence, time.monotonic()))
            )
            t0 = time.monotonic()
            seqs = [esme.submit(f"62816{i:07d}", registered_delivery=0) for i in range(5)]
            esme.pump(lambda: len(esme.resps) == 5)
            esme.close()
            return [arrival[s] - t0 for s in seqs]

        times = await run(scenario)
        assert max(times[:3]) < 0.3  # the first three before the pause
        assert min(times[3:]) >= 0.35  # the rest only after it
        assert sim.stats()["simulator"]["slow_reader_pauses"] >= 1


# ------------------------------------------------------------------------------ receipts


def _collect(sim: Simulator, n: int, **submit: Any) -> tuple[Esme, list[int]]:
    esme = Esme(sim)
    esme.bind("transceiver")
    seqs = [esme.submit(f"62817{i:07d}", **submit) for i in range(n)]
    esme.pump(lambda: len(esme.resps) == n and len(esme.receipts) == n)
    esme.close()
    return esme, seqs


async def test_receipts_with_hex_ids_carry_tlvs_and_parse() -> None:
    async with Simulator(profile()) as sim:
        esme, seqs = await run(
            lambda: _collect(sim, 3, text=b"Halo dari smsblast, promo akhir tahun")
        )
        resp_ids = [esme.resps[s][1] for s in seqs]
        assert all(re.fullmatch(r"[0-9A-F]{16}", i) for i in resp_ids)
        for pdu in esme.receipts:
            assert pdu.esm_class & 0x04
            text = pdu.short_message.decode()
            match = RECEIPT_RE.match(text)
            assert match, text
            assert match["id"] == pdu.receipted_message_id.decode()
            assert match["stat"] == "DELIVRD" and match["dlvrd"] == "001"
            assert match["text"] == "Halo dari smsblast, "
            assert pdu.message_state == ReceiptState.DELIVERED
            assert pdu.destination_addr == b"SMSBLAST"
        assert sorted(p.receipted_message_id.decode() for p in esme.receipts) == sorted(resp_ids)


async def test_receipts_with_hex_resp_ids_and_decimal_receipt_ids() -> None:
    ids = {"resp_format": "hex", "receipt_format": "dec", "start": 0x04000000086ECD50}
    async with Simulator(profile(ids=ids)) as sim:
        esme, seqs = await run(lambda: _collect(sim, 2))
        assert [esme.resps[s][1] for s in seqs] == ["04000000086ECD50", "04000000086ECD51"]
        receipt_ids = sorted(
            parse_receipt_text(p.short_message.decode()).message_id for p in esme.receipts
        )
        assert receipt_ids == ["288230376293190992", "288230376293190993"]
        assert normalize_message_id("04000000086ECD50", IdFormat.HEX) == normalize_message_id(
            receipt_ids[0], IdFormat.DEC
        )


async def test_decimal_ids_keep_leading_zeros() -> None:
    ids = {"resp_format": "dec", "dec_width": 10, "start": 221067780}
    async with Simulator(profile(ids=ids)) as sim:
        esme, seqs = await run(lambda: _collect(sim, 1))
        assert esme.resps[seqs[0]][1] == "0221067780"
        assert esme.receipts[0].receipted_message_id == b"0221067780"


async def test_receipt_tlvs_can_be_turned_off() -> None:
    async with Simulator(profile(receipts={"tlvs": False})) as sim:
        esme, _ = await run(lambda: _collect(sim, 1))
        pdu = esme.receipts[0]
        assert pdu.receipted_message_id is None and pdu.message_state is None
        assert RECEIPT_RE.match(pdu.short_message.decode())


async def test_outcome_mix_and_registered_delivery_failure_only() -> None:
    receipts = {"outcomes": {"DELIVRD": 1, "UNDELIV": 1}, "err_codes": {"UNDELIV": "001"}}
    async with Simulator(profile(seed=5, receipts=receipts)) as sim:

        def scenario() -> tuple[list[Any], list[Any]]:
            esme = Esme(sim)
            esme.bind("transceiver")
            for i in range(100):
                esme.submit(f"62818{i:07d}", registered_delivery=1)
            esme.pump(lambda: len(esme.resps) == 100 and len(esme.receipts) == 100)
            all_receipts = list(esme.receipts)
            esme.receipts.clear()
            for i in range(100):
                esme.submit(f"62819{i:07d}", registered_delivery=2)
            esme.pump(lambda: len(esme.resps) == 200)
            time.sleep(0.2)
            esme.poll()
            failure_only = list(esme.receipts)
            esme.close()
            return all_receipts, failure_only

        all_receipts, failure_only = await run(scenario)
        stats = [RECEIPT_RE.match(p.short_message.decode()) for p in all_receipts]
        undeliv = [m for m in stats if m and m["stat"] == "UNDELIV"]
        assert 25 <= len(undeliv) <= 75
        assert all(m["err"] == "001" and m["dlvrd"] == "000" for m in undeliv)
        assert failure_only and all(
            p.message_state == ReceiptState.UNDELIVERABLE for p in failure_only
        )
        by_state = sim.stats()["accounts"][SYSTEM_ID]["receipts"]["by_state"]
        assert by_state["UNDELIV"] == len(undeliv) + len(failure_only)


async def test_receipts_go_to_a_receiver_bind_of_the_same_account() -> None:
    async with Simulator(profile()) as sim:

        def scenario() -> tuple[int, int]:
            tx, rx = Esme(sim), Esme(sim)
            tx.bind("transmitter")
            rx.bind("receiver")
            for i in range(5):
                tx.submit(f"62820{i:07d}")
            tx.pump(lambda: len(tx.resps) == 5)
            rx.pump(lambda: len(rx.receipts) == 5)
            tx.poll()
            tx.close()
            rx.close()
            return len(tx.receipts), len(rx.receipts)

        assert await run(scenario) == (0, 5)


async def test_receipts_wait_for_a_receiver_to_bind() -> None:
    async with Simulator(profile()) as sim:

        def submit_only() -> None:
            tx = Esme(sim)
            tx.bind("transmitter")
            for i in range(4):
                tx.submit(f"62821{i:07d}")
            tx.pump(lambda: len(tx.resps) == 4)
            tx.close()

        await run(submit_only)
        assert sim.stats()["accounts"][SYSTEM_ID]["receipts"]["pending"] == 4

        def receive() -> int:
            rx = Esme(sim)
            rx.bind("receiver")
            rx.pump(lambda: len(rx.receipts) == 4)
            rx.close()
            return len(rx.receipts)

        assert await run(receive) == 4
        receipts = sim.stats()["accounts"][SYSTEM_ID]["receipts"]
        assert receipts["pending"] == 0 and receipts["acked"] == 4


@pytest.mark.parametrize("race", [True, False])
async def test_receipt_before_resp_race(race: bool) -> None:
    receipts = {"delay": 0, "receipt_before_resp": race}
    async with Simulator(profile(latency=200, receipts=receipts)) as sim:
        esme, seqs = await run(lambda: _collect(sim, 1))
        kinds = [kind for kind, _ in esme.events]
        assert kinds == (["receipt", "resp"] if race else ["resp", "receipt"])
        assert esme.receipts[0].receipted_message_id.decode() == esme.resps[seqs[0]][1]


# ------------------------------------------------------------------------------ stats


async def test_duplicates_and_unique_destinations_are_counted() -> None:
    async with Simulator(profile()) as sim:

        def scenario() -> None:
            esme = Esme(sim)
            esme.bind("transmitter")
            esme.submit("628111", b"hello", registered_delivery=0)
            esme.submit("628111", b"hello", registered_delivery=0)  # duplicate
            esme.submit("628111", b"other", registered_delivery=0)
            esme.submit("628222", b"hello", registered_delivery=0)
            esme.pump(lambda: len(esme.resps) == 4)
            esme.close()

        await run(scenario)
        account = sim.stats()["accounts"][SYSTEM_ID]
        assert account["duplicates"] == 1
        assert account["unique_destinations"] == 2
        assert account["unique_messages"] == 3


def _seeded_run_profile(seed: int) -> Profile:
    return profile(
        seed=seed,
        latency={"dist": "lognormal", "median_ms": 2, "sigma": 0.8, "max_ms": 20},
        receipts={
            "delay": {"dist": "uniform", "min_ms": 0, "max_ms": 10},
            "outcomes": {"DELIVRD": 70, "UNDELIV": 10, "EXPIRED": 10, "REJECTD": 10},
        },
        faults={"error_rates": {"RSYSERR": 0.1, "RX_T_APPN": 0.05}},
    )


async def _seeded_run(seed: int) -> tuple[dict[str, Any], list[tuple[int, int | None]]]:
    async with Simulator(_seeded_run_profile(seed)) as sim:

        def scenario() -> list[tuple[int, int | None]]:
            esme = Esme(sim)
            esme.bind("transceiver")
            seqs = []
            for i in range(300):
                seqs.append(esme.submit(f"62822{i % 250:07d}"))
                esme.poll()
            accepted = 0
            esme.pump(lambda: len(esme.resps) == 300)
            accepted = sum(1 for s, _ in esme.resps.values() if s == 0)
            esme.pump(lambda: len(esme.receipts) == accepted)
            states = {p.receipted_message_id.decode(): p.message_state for p in esme.receipts}
            esme.close()
            return [(esme.resps[s][0], states.get(esme.resps[s][1])) for s in seqs]

        outcome = await run(scenario)
        account = sim.stats()["accounts"][SYSTEM_ID]
        for volatile in ("max_accepted_1s", "max_accepted_1s_per_bind"):
            account.pop(volatile)
        return account, outcome


async def test_seeded_runs_are_reproducible() -> None:
    first, outcome1 = await _seeded_run(42)
    second, outcome2 = await _seeded_run(42)
    _other, outcome3 = await _seeded_run(43)
    assert first == second
    assert outcome1 == outcome2
    assert outcome1 != outcome3
    seen: set[int] = set()
    duplicates = 0
    for i, (status, _state) in enumerate(outcome1):
        if status == 0:
            duplicates += i % 250 in seen
            seen.add(i % 250)
    assert first["duplicates"] == duplicates > 0
    assert first["unique_destinations"] == len(seen)
    assert set(first["receipts"]["by_state"]) == {"DELIVRD", "UNDELIV", "EXPIRED", "REJECTD"}


async def test_http_stats_and_metrics(tmp_path: Path) -> None:
    stats_file = tmp_path / "stats.json"
    prof = profile(http={"port": 0}, stats_file=str(stats_file))
    async with Simulator(prof) as sim:
        await run(lambda: _collect(sim, 2))

        def fetch(path: str) -> bytes:
            url = f"http://127.0.0.1:{sim.http_port}{path}"
            with urllib.request.urlopen(url, timeout=5) as resp:
                return bytes(resp.read())

        stats = json.loads(await run(lambda: fetch("/stats")))
        metrics = (await run(lambda: fetch("/metrics"))).decode()
        missing = await run(lambda: _status_of(f"http://127.0.0.1:{sim.http_port}/nope"))
    assert stats["accounts"][SYSTEM_ID]["submits"]["accepted"] == 2
    assert 'smsblast_sim_submits_total{account="smsblast",status="ESME_ROK"} 2.0' in metrics
    assert 'smsblast_sim_receipts_total{account="smsblast",state="DELIVRD"} 2.0' in metrics
    assert 'smsblast_sim_binds_total{account="smsblast",bind_type="transceiver"} 1.0' in metrics
    assert "smsblast_sim_throttled_total" in metrics
    assert missing == 404
    written = json.loads(stats_file.read_text())
    assert written["accounts"][SYSTEM_ID]["receipts"]["acked"] == 2


def _status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


async def test_simulators_use_their_own_prometheus_registry() -> None:
    from prometheus_client import REGISTRY

    async with Simulator(profile()) as a, Simulator(profile()) as b:
        assert a.registry is not b.registry
    assert not any(name.startswith("smsblast_sim") for name in REGISTRY._names_to_collectors)
