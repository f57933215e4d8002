"""smpplib (a real, independent ESME) against node-smpp (a real, independent SMSC).

Proves the test peer in tests/peers/nodesmpp works before smsblast is pointed at it.
"""

from __future__ import annotations

import re
import socket
import struct
import time
from collections.abc import Iterator
from typing import Any

import pytest
import smpplib.client
import smpplib.consts
import smpplib.exceptions

try:  # works whether or not tests/ is a package / on sys.path
    from tests.peers.nodesmpp import NodeSmpp, node_available, start_nodesmpp
except ModuleNotFoundError:  # pragma: no cover - depends on the pytest import mode
    from peers.nodesmpp import NodeSmpp, node_available, start_nodesmpp

pytestmark = [
    pytest.mark.skipif(not node_available(), reason="node is not on PATH (node-smpp peer)"),
    pytest.mark.timeout(120),
]

SYSTEM_ID = "smsblast"
PASSWORD = "s3cret"
RECEIPT_RE = re.compile(
    r"^id:(?P<id>[0-9A-F]{16}) sub:001 dlvrd:001 submit date:\d{10} done date:\d{10} "
    r"stat:DELIVRD err:000 text:(?P<text>.*)$"
)
ESME_RINVPASWD = 0x0E


@pytest.fixture
def smsc() -> Iterator[NodeSmpp]:
    with start_nodesmpp(SYSTEM_ID, PASSWORD) as server:
        yield server


def make_client(smsc: NodeSmpp) -> smpplib.client.Client:
    return smpplib.client.Client(smsc.host, smsc.port, timeout=2, allow_unknown_opt_params=True)


def pump_until(clients: list[smpplib.client.Client], done: Any, timeout: float = 15.0) -> None:
    """read_once() on each client until done() is true; bounded by `timeout`."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for PDUs from node-smpp")
        for client in clients:
            client.poll()
        time.sleep(0.01)


def wait_for_stat(smsc: NodeSmpp, key: str, want: int, timeout: float = 5.0) -> int:
    """The server's counter `key` once it reaches `want`, or its value at the timeout."""
    deadline = time.monotonic() + timeout
    while (value := int(smsc.snapshot()[key])) != want and time.monotonic() < deadline:
        time.sleep(0.02)
    return value


def submit(client: smpplib.client.Client, i: int, text: bytes) -> None:
    client.send_message(
        source_addr_ton=smpplib.consts.SMPP_TON_ALNUM,
        source_addr_npi=smpplib.consts.SMPP_NPI_UNK,
        source_addr="SMSBLAST",
        dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
        dest_addr_npi=smpplib.consts.SMPP_NPI_ISDN,
        destination_addr=f"4915100000{i:03d}",
        short_message=text,
        data_coding=0,
        registered_delivery=1,
    )


def test_transceiver_submit_and_receipts(smsc: NodeSmpp) -> None:
    sent: list[str] = []
    receipts: list[Any] = []
    client = make_client(smsc)
    client.set_message_sent_handler(lambda pdu: sent.append(pdu.message_id.decode()))

    def on_deliver(pdu: Any) -> int:
        receipts.append(pdu)
        return smpplib.consts.SMPP_ESME_ROK

    client.set_message_received_handler(on_deliver)
    client.connect()
    try:
        resp = client.bind_transceiver(system_id=SYSTEM_ID, password=PASSWORD)
        assert resp.command == "bind_transceiver_resp"
        assert resp.status == 0

        texts = [f"msg-{i} hello_world $5 @ smsblast".encode() for i in range(5)]
        for i, text in enumerate(texts):
            submit(client, i, text)
        pump_until([client], lambda: len(sent) == 5 and len(receipts) == 5)

        # message_id: a %016X counter, unique, in submit order.
        assert sent == [f"{n:016X}" for n in range(1, 6)]
        by_id = {}
        for pdu in receipts:
            assert pdu.esm_class & 0x3C == 0x04  # SMSC delivery receipt
            assert pdu.message_state == 2  # DELIVERED TLV
            body = pdu.short_message.decode("latin-1")
            m = RECEIPT_RE.match(body)
            assert m, body
            assert pdu.receipted_message_id.decode() == m["id"]
            by_id[m["id"]] = (m["text"], pdu)
        assert sorted(by_id) == sorted(sent)
        for i, msg_id in enumerate(sent):
            text, pdu = by_id[msg_id]
            assert text == texts[i].decode()[:20]  # raw octets, not GSM-mangled
            # addresses swapped relative to the submit
            assert pdu.source_addr.decode() == f"4915100000{i:03d}"
            assert pdu.destination_addr.decode() == "SMSBLAST"

        unbind = client.unbind()
        assert unbind.command == "unbind_resp"
        assert unbind.status == 0
    finally:
        client.disconnect()

    stats = smsc.stop()
    assert stats["submits"] == 5
    assert stats["binds"] == 1
    assert stats["receipts_sent"] == 5
    assert stats["receipt_acks"] == 5
    assert stats["unbinds"] == 1


def test_wrong_password_is_rejected(smsc: NodeSmpp) -> None:
    client = make_client(smsc)
    client.connect()
    try:
        with pytest.raises(smpplib.exceptions.PDUError) as excinfo:
            client.bind_transceiver(system_id=SYSTEM_ID, password="wrong")
        assert excinfo.value.args[1] == ESME_RINVPASWD
    finally:
        client.disconnect()
    stats = smsc.stop()
    assert stats["binds"] == 0
    assert stats["bind_failures"] == 1


def test_receipt_goes_to_receiver_session(smsc: NodeSmpp) -> None:
    """Transmitter submits, receipt arrives on a separate receiver bind of the same system_id."""
    sent: list[str] = []
    receipts: list[str] = []
    tx, rx = make_client(smsc), make_client(smsc)
    tx.set_message_sent_handler(lambda pdu: sent.append(pdu.message_id.decode()))
    rx.set_message_received_handler(lambda pdu: receipts.append(pdu.receipted_message_id.decode()))
    tx.connect()
    rx.connect()
    try:
        rx.bind_receiver(system_id=SYSTEM_ID, password=PASSWORD)
        tx.bind_transmitter(system_id=SYSTEM_ID, password=PASSWORD)
        for i in range(3):
            submit(tx, i, b"via receiver")
        pump_until([tx, rx], lambda: len(sent) == 3 and len(receipts) == 3)
        assert sorted(receipts) == sorted(sent)
        # smpplib answers each deliver_sm after its handler returns, and node-smpp
        # counts the answer when it reads it: wait for the count, bounded.
        assert wait_for_stat(smsc, "receipt_acks", 3) == 3
        tx.unbind()
        rx.unbind()
    finally:
        tx.disconnect()
        rx.disconnect()
    stats = smsc.stop()
    assert stats["binds"] == 2
    assert stats["receipts_sent"] == 3


def _raw_pdu(sock: socket.socket) -> tuple[int, int, int, bytes]:
    header = b""
    while len(header) < 16:
        chunk = sock.recv(16 - len(header))
        assert chunk, "connection closed"
        header += chunk
    length, command_id, status, seq = struct.unpack(">IIII", header)
    body = b""
    while len(body) < length - 16:
        chunk = sock.recv(length - 16 - len(body))
        assert chunk, "connection closed"
        body += chunk
    return command_id, status, seq, body


def test_enquire_link_and_generic_nack(smsc: NodeSmpp) -> None:
    with socket.create_connection((smsc.host, smsc.port), timeout=5) as sock:
        sock.sendall(struct.pack(">IIII", 16, 0x00000015, 0, 41))  # enquire_link
        assert _raw_pdu(sock) == (0x80000015, 0, 41, b"")
        sock.sendall(struct.pack(">IIII", 16, 0x000000AB, 0, 42))  # unknown command_id
        assert _raw_pdu(sock) == (0x80000000, 0x03, 42, b"")  # generic_nack ESME_RINVCMDID
        # submit_sm before bind -> ESME_RINVBNDSTS (header-only response)
        body = b"\x00" + b"\x00\x00" + b"A\x00" + b"\x00\x00" + b"B\x00" + b"\x00" * 3
        body += b"\x00\x00" + b"\x00" * 4 + b"\x00"  # times, reg, rep, dc, sm_def, sm_length
        sock.sendall(struct.pack(">IIII", 16 + len(body), 0x00000004, 0, 43) + body)
        assert _raw_pdu(sock) == (0x80000004, 0x04, 43, b"")
    stats = smsc.stop()
    assert stats["enquire_links"] == 1
    assert stats["generic_nacks"] == 1
    assert stats["submit_rejects"] == 1
