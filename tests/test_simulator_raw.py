"""Bad input from clients, sent over raw asyncio sockets: the simulator answers what it can,
closes only the connection that lost framing, and keeps serving everyone else."""

from __future__ import annotations

import asyncio
import random
import struct
from collections.abc import Callable
from typing import Any

import pytest

from smsblast.simulator import Profile, Simulator
from smsblast.smpp.codec import Frame, FrameDecoder, decode_pdu, encode
from smsblast.smpp.constants import CommandId, Status
from smsblast.smpp.pdu import (
    BindTransceiver,
    BindTransmitter,
    EnquireLink,
    GenericNack,
    Pdu,
    SubmitSm,
    SubmitSmResp,
    Unbind,
)

pytestmark = pytest.mark.timeout(30)

SYSTEM_ID = "smsblast"
PASSWORD = "secret"


def profile(**overrides: Any) -> Profile:
    data: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "accounts": [{"system_id": SYSTEM_ID, "password": PASSWORD}],
    }
    data.update(overrides)
    return Profile.model_validate(data)


class Raw:
    """A raw SMPP connection: write any bytes, read whole PDUs."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = FrameDecoder()
        self.frames: list[Frame] = []

    @classmethod
    async def connect(cls, sim: Simulator) -> Raw:
        reader, writer = await asyncio.open_connection(sim.host, sim.port)
        return cls(reader, writer)

    async def send(self, data: bytes | Pdu) -> None:
        self.writer.write(encode(data) if isinstance(data, Pdu) else data)
        await self.writer.drain()

    async def read(self, timeout: float = 5.0) -> Pdu:
        async with asyncio.timeout(timeout):
            while not self.frames:
                chunk = await self.reader.read(65536)
                if not chunk:
                    raise ConnectionError("closed by the simulator")
                self.decoder.feed(chunk)
                self.frames.extend(self.decoder.frames())
        return decode_pdu(self.frames.pop(0))

    async def closed_by_peer(self, timeout: float = 5.0) -> bool:
        """True once the simulator closes the connection (anything before is skipped)."""
        async with asyncio.timeout(timeout):
            while await self.reader.read(65536):
                pass
        return True

    async def bind(self) -> None:
        await self.send(BindTransceiver(sequence_number=1, system_id=SYSTEM_ID, password=PASSWORD))
        resp = await self.read()
        assert resp.command_status == 0

    def close(self) -> None:
        self.writer.close()


def submit(seq: int, destination: str = "628123456789") -> SubmitSm:
    return SubmitSm(
        sequence_number=seq,
        source_addr="SMSBLAST",
        source_addr_ton=5,
        destination_addr=destination,
        short_message=b"hello",
    )


def header(length: int, command_id: int, seq: int, status: int = 0) -> bytes:
    return struct.pack(">IIII", length, command_id, status, seq)


async def test_submit_before_bind_is_answered_rinvbndsts() -> None:
    async with Simulator(profile()) as sim:
        raw = await Raw.connect(sim)
        await raw.send(submit(5))
        resp = await raw.read()
        assert isinstance(resp, SubmitSmResp)
        assert (resp.sequence_number, resp.command_status) == (5, Status.RINVBNDSTS)
        await raw.send(EnquireLink(sequence_number=6))  # the connection is still usable
        assert (await raw.read()).command_id == CommandId.ENQUIRE_LINK_RESP
        raw.close()


async def test_second_bind_on_a_bound_connection_is_ralybnd() -> None:
    async with Simulator(profile()) as sim:
        raw = await Raw.connect(sim)
        await raw.bind()
        await raw.send(BindTransmitter(sequence_number=2, system_id=SYSTEM_ID, password=PASSWORD))
        resp = await raw.read()
        assert resp.command_id == CommandId.BIND_TRANSMITTER_RESP
        assert resp.command_status == Status.RALYBND
        raw.close()


async def test_malformed_submit_gets_generic_nack_and_the_stream_goes_on() -> None:
    async with Simulator(profile()) as sim:
        raw = await Raw.connect(sim)
        await raw.bind()
        body = b"\x00\x05\x00SMSBLAST"  # truncated after source_addr
        await raw.send(header(16 + len(body), CommandId.SUBMIT_SM, 7) + body)
        await raw.send(submit(8))
        nack = await raw.read()
        assert isinstance(nack, GenericNack)
        assert (nack.sequence_number, nack.command_status) == (7, Status.RINVMSGLEN)
        ok = await raw.read()
        assert isinstance(ok, SubmitSmResp) and ok.sequence_number == 8 and ok.command_status == 0
        raw.close()
    bind = next(iter(sim.stats()["binds"].values()))
    assert bind["submits"]["malformed"] == 1


async def test_malformed_reply_can_be_the_requests_own_response() -> None:
    async with Simulator(profile(malformed_reply="response")) as sim:
        raw = await Raw.connect(sim)
        await raw.bind()
        body = b"\x00\x05\x00SMSBLAST"
        await raw.send(header(16 + len(body), CommandId.SUBMIT_SM, 7) + body)
        resp = await raw.read()
        assert isinstance(resp, SubmitSmResp) and resp.command_status == Status.RINVMSGLEN
        raw.close()


async def test_unknown_command_gets_generic_nack_rinvcmdid() -> None:
    async with Simulator(profile()) as sim:
        raw = await Raw.connect(sim)
        await raw.bind()
        await raw.send(header(16, 0x00000103, 9))  # data_sm: not supported
        nack = await raw.read()
        assert isinstance(nack, GenericNack)
        assert (nack.sequence_number, nack.command_status) == (9, Status.RINVCMDID)
        await raw.send(submit(10))
        assert (await raw.read()).command_status == 0
        raw.close()


@pytest.mark.parametrize("length", [8, 10_000_000])
async def test_lost_framing_closes_only_that_connection(length: int) -> None:
    async with Simulator(profile()) as sim:
        good = await Raw.connect(sim)
        await good.bind()
        bad = await Raw.connect(sim)
        await bad.send(header(length, CommandId.SUBMIT_SM, 1) + b"\x00" * 32)
        nack = await bad.read()
        assert isinstance(nack, GenericNack) and nack.command_status == Status.RINVCMDLEN
        assert await bad.closed_by_peer()
        await good.send(submit(2))
        assert (await good.read()).command_status == 0
        good.close()
        bad.close()
        assert sim.stats()["simulator"]["framing_errors"] == 1


async def test_pdus_split_into_single_bytes_are_reassembled() -> None:
    async with Simulator(profile()) as sim:
        raw = await Raw.connect(sim)
        wire = encode(BindTransceiver(sequence_number=1, system_id=SYSTEM_ID, password=PASSWORD))
        wire += encode(submit(2)) + encode(submit(3))
        for i in range(len(wire)):
            raw.writer.write(wire[i : i + 1])
            await raw.writer.drain()
        assert (await raw.read()).command_status == 0
        assert [(await raw.read()).sequence_number for _ in range(2)] == [2, 3]
        raw.close()


async def test_garbage_from_one_client_does_not_stall_another() -> None:
    async with Simulator(profile()) as sim:
        good = await Raw.connect(sim)
        await good.bind()
        noisy = await Raw.connect(sim)
        await noisy.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # length 0x47455420: way too big
        await good.send(submit(2))
        assert (await good.read()).command_status == 0
        assert await noisy.closed_by_peer()
        good.close()
        noisy.close()


async def test_unbind_is_answered_and_frees_the_bind_slot() -> None:
    accounts = [{"system_id": SYSTEM_ID, "password": PASSWORD, "max_binds": 1}]
    async with Simulator(profile(accounts=accounts)) as sim:
        first = await Raw.connect(sim)
        await first.bind()
        await first.send(Unbind(sequence_number=2))
        assert (await first.read()).command_id == CommandId.UNBIND_RESP
        second = await Raw.connect(sim)
        await second.bind()  # the account's only slot is free again
        first.close()
        second.close()


async def test_many_pdus_in_one_write_are_all_answered_in_order() -> None:
    async with Simulator(profile()) as sim:
        raw = await Raw.connect(sim)
        await raw.bind()
        await raw.send(b"".join(encode(submit(i, f"6281{i:08d}")) for i in range(2, 1002)))
        seqs = [(await raw.read()).sequence_number for _ in range(1000)]
        assert seqs == list(range(2, 1002))
        raw.close()


async def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def deliver_sm_resp(seq: int) -> bytes:
    return header(17, CommandId.DELIVER_SM_RESP, seq) + b"\x00"


async def test_receipt_window_and_requeue_of_unacknowledged_receipts() -> None:
    async with Simulator(profile(receipts={"window": 2})) as sim:
        tx = await Raw.connect(sim)
        await tx.send(BindTransmitter(sequence_number=1, system_id=SYSTEM_ID, password=PASSWORD))
        assert (await tx.read()).command_status == 0
        rx = await Raw.connect(sim)
        await rx.bind()
        for i in range(5):
            await tx.send(
                SubmitSm(
                    sequence_number=10 + i,
                    source_addr="SMSBLAST",
                    destination_addr=f"62812{i:07d}",
                    registered_delivery=1,
                    short_message=b"hi",
                )
            )
        assert [(await tx.read()).command_status for _ in range(5)] == [0] * 5
        first = [await rx.read(), await rx.read()]  # the window is 2: no third one yet
        with pytest.raises(TimeoutError):
            await rx.read(timeout=0.3)
        await rx.send(deliver_sm_resp(first[0].sequence_number))
        third = await rx.read()  # one acknowledged, one more sent
        assert third.command_id == CommandId.DELIVER_SM
        rx.close()  # two unacknowledged receipts go back to the queue
        await wait_for(lambda: sim.stats()["accounts"][SYSTEM_ID]["binds"]["active"] == 1)
        receipts = sim.stats()["accounts"][SYSTEM_ID]["receipts"]
        assert receipts["requeued"] == 2 and receipts["pending"] == 4

        rx2 = await Raw.connect(sim)
        await rx2.bind()
        got = []
        for _ in range(4):
            pdu = await rx2.read()
            got.append(pdu)
            await rx2.send(deliver_sm_resp(pdu.sequence_number))
        ids = {p.tlvs.receipted_message_id for p in [first[0], *got]}  # type: ignore[attr-defined]
        assert len(ids) == 5  # every message got its receipt, none lost
        rx2.close()
        tx.close()


def _mutants(rng: random.Random, pdus: list[bytes], n: int) -> bytes:
    """``n`` PDUs derived from valid ones: truncated or overlong bodies, flipped octets,
    foreign command ids and statuses, with command_length kept consistent."""
    out = []
    for _ in range(n):
        wire = bytearray(rng.choice(pdus))
        body = bytearray(wire[16:])
        kind = rng.randrange(5)
        if kind == 0 and body:
            del body[rng.randrange(len(body)) :]
        elif kind == 1:
            body += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 12)))
        elif kind == 2 and body:
            for _ in range(rng.randrange(1, 4)):
                body[rng.randrange(len(body))] = rng.randrange(256)
        elif kind == 3:
            struct.pack_into(">I", wire, 4, rng.choice([0x03, 0x21, 0x103, 0x80000004, 0x0B]))
        else:
            struct.pack_into(">I", wire, 8, rng.randrange(1 << 32))
        out.append(struct.pack(">I", 16 + len(body)) + bytes(wire[4:16]) + bytes(body))
    return b"".join(out)


async def test_fuzzed_pdus_never_raise_inside_the_simulator() -> None:
    rng = random.Random(20240115)
    valid = [
        encode(BindTransceiver(sequence_number=1, system_id=SYSTEM_ID, password=PASSWORD)),
        encode(BindTransmitter(sequence_number=1, system_id=SYSTEM_ID, password="wrong")),
        encode(submit(2)),
        encode(
            SubmitSm(
                sequence_number=3,
                destination_addr="628123",
                esm_class=0x40,
                registered_delivery=1,
                short_message=bytes.fromhex("050003AA0201") + b"part",
            )
        ),
        encode(EnquireLink(sequence_number=4)),
        deliver_sm_resp(5),
        encode(GenericNack(sequence_number=6)),
        encode(Unbind(sequence_number=7)),
    ]
    marker = encode(EnquireLink(sequence_number=0x7FFFFFF0))
    faults = {"error_rates": {"RSYSERR": 0.1}, "magic_destinations": {"628123": "no_answer"}}
    async with Simulator(profile(seed=1, faults=faults, latency=1)) as sim:

        async def one_client(i: int) -> None:
            raw = await Raw.connect(sim)
            await raw.send(valid[0] + _mutants(rng, valid, 60) + marker)
            try:
                while True:
                    pdu = await raw.read()
                    if pdu.sequence_number == 0x7FFFFFF0 and pdu.command_id & 0x80000000:
                        break
            except ConnectionError:
                pass  # framing was lost: the simulator closed this connection
            raw.close()

        await asyncio.gather(*(one_client(i) for i in range(40)))
        good = await Raw.connect(sim)
        await good.bind()
        await good.send(submit(99))
        assert (await good.read()).command_status == 0
        good.close()
        counters = sim.stats()["simulator"]
        assert counters["internal_errors"] == 0
        assert counters["protocol_errors"] > 0
