"""smpplib 2.2.4 as an independent oracle for the codec, in both directions.

(a) PDUs we encode are parsed by ``smpplib.smpp.parse_pdu`` to the same values.
(b) PDUs smpplib generates (``make_pdu(...).generate()``) are decoded by us to the
    same values.

Strategies stay inside what both libraries accept: ASCII C-strings within the
v3.4 limits, short_message <= 254 octets, and only the TLVs smpplib's command
class knows for that PDU (smpplib raises on a TLV its class does not list).

smpplib quirks worked around here, read from its source:
* parsed C-strings are ``bytes``; absent fields and TLVs are ``None``;
* ``parse_params`` stops as soon as the body is exhausted, so an empty
  short_message with no TLVs after it stays ``None``;
* ``Command.__init__`` ignores a ``sequence=`` keyword when the client already has
  a ``sequence`` attribute, so the sequence number is assigned after construction;
* bind requests always carry interface_version 0x34;
* empty string/octet TLVs are silently dropped by smpplib's generator.
"""

from __future__ import annotations

import string
import struct
from typing import Any

import smpplib.smpp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smsblast.smpp.codec import Frame, decode_pdu, encode
from smsblast.smpp.pdu import (
    BindReceiver,
    BindReceiverResp,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Pdu,
    SubmitSm,
    SubmitSmResp,
    Tlvs,
    Unbind,
    UnbindResp,
)

ORACLE = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class DummyClient:
    """What smpplib's Command needs from a client: a sequence source."""

    sequence = 0

    def next_sequence(self) -> int:
        return 0


CLIENT = DummyClient()

# ------------------------------------------------------------------------ strategies

ALPHABET = string.ascii_letters + string.digits + string.punctuation + " "


def cstr(limit: int, *, min_size: int = 0) -> st.SearchStrategy[str]:
    """An ASCII C-string value that fits ``limit`` octets including the NUL."""
    return st.text(alphabet=ALPHABET, min_size=min_size, max_size=limit - 1)


u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
seqs = st.integers(1, 0x7FFFFFFF)
time_field = st.one_of(st.just(""), st.text(alphabet=ALPHABET, min_size=16, max_size=16))
short_message = st.binary(max_size=254)
error_status = st.integers(1, 0xFFFFFFFF)


def sm_fields() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "service_type": cstr(6),
            "source_addr_ton": u8,
            "source_addr_npi": u8,
            "source_addr": cstr(21),
            "dest_addr_ton": u8,
            "dest_addr_npi": u8,
            "destination_addr": cstr(21),
            "esm_class": u8,
            "protocol_id": u8,
            "priority_flag": u8,
            "schedule_delivery_time": time_field,
            "validity_period": time_field,
            "registered_delivery": u8,
            "replace_if_present_flag": u8,
            "data_coding": u8,
            "sm_default_msg_id": u8,
            "short_message": short_message,
        }
    )


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


#: TLVs both smpplib's SubmitSM and our Tlvs know.
submit_tlvs = st.fixed_dictionaries(
    {
        "user_message_reference": optional(u16),
        "source_port": optional(u16),
        "destination_port": optional(u16),
        "dest_addr_subunit": optional(u8),
        "sar_msg_ref_num": optional(u16),
        "sar_total_segments": optional(u8),
        "sar_segment_seqnum": optional(u8),
        "message_payload": optional(st.binary(min_size=1, max_size=300)),
    }
)

#: TLVs both smpplib's DeliverSM and our Tlvs know.
deliver_tlvs = st.fixed_dictionaries(
    {
        "user_message_reference": optional(u16),
        "source_port": optional(u16),
        "destination_port": optional(u16),
        "sar_msg_ref_num": optional(u16),
        "sar_total_segments": optional(u8),
        "sar_segment_seqnum": optional(u8),
        "message_payload": optional(st.binary(min_size=1, max_size=300)),
        "network_error_code": optional(st.binary(min_size=3, max_size=3)),
        "message_state": optional(u8),
        "receipted_message_id": optional(cstr(65, min_size=1)),
    }
)

BIND_REQUESTS: dict[str, type[BindTransmitter | BindReceiver | BindTransceiver]] = {
    "bind_transmitter": BindTransmitter,
    "bind_receiver": BindReceiver,
    "bind_transceiver": BindTransceiver,
}
BIND_RESPONSES: dict[str, type[BindTransmitterResp | BindReceiverResp | BindTransceiverResp]] = {
    "bind_transmitter_resp": BindTransmitterResp,
    "bind_receiver_resp": BindReceiverResp,
    "bind_transceiver_resp": BindTransceiverResp,
}
EMPTY_BODY: dict[str, type[Pdu]] = {
    "generic_nack": GenericNack,
    "enquire_link": EnquireLink,
    "enquire_link_resp": EnquireLinkResp,
    "unbind": Unbind,
    "unbind_resp": UnbindResp,
}

bind_fields = st.fixed_dictionaries(
    {
        "system_id": cstr(16),
        "password": cstr(9),
        "system_type": cstr(13),
        "addr_ton": u8,
        "addr_npi": u8,
        "address_range": cstr(41),
    }
)

# ------------------------------------------------------------------------ helpers


def smpplib_parse(data: bytes) -> Any:
    parsed = smpplib.smpp.parse_pdu(data, client=CLIENT)
    assert parsed is not None
    return parsed


def smpplib_generate(name: str, sequence: int, status: int = 0, **fields: Any) -> bytes:
    pdu = smpplib.smpp.make_pdu(name, client=CLIENT, status=status, **fields)
    pdu.sequence = sequence  # see module docstring: the keyword would be ignored
    data: bytes = pdu.generate()
    return data


def our_decode(data: bytes) -> Pdu:
    length, command_id, status, seq = struct.unpack_from(">IIII", data)
    assert length == len(data)
    return decode_pdu(Frame(command_id, status, seq, data[16:]))


def b(value: str) -> bytes:
    return value.encode("ascii")


def assert_header(parsed: Any, pdu: Pdu, data: bytes, name: str) -> None:
    assert parsed.command == name
    assert parsed.sequence == pdu.sequence_number
    assert parsed.status == pdu.command_status
    assert parsed.length == len(data)


# ====================================================== (a) we encode, smpplib parses


@ORACLE
@given(seq=seqs, fields=sm_fields(), tlvs=submit_tlvs)
def test_smpplib_parses_our_submit_sm(
    seq: int, fields: dict[str, Any], tlvs: dict[str, Any]
) -> None:
    pdu = SubmitSm(sequence_number=seq, tlvs=Tlvs(**tlvs), **fields)
    data = encode(pdu)
    parsed = smpplib_parse(data)
    assert_header(parsed, pdu, data, "submit_sm")
    for name, value in fields.items():
        got = getattr(parsed, name)
        if name == "short_message":
            assert (got or b"") == value
            assert parsed.sm_length == len(value)
        elif isinstance(value, str):
            assert got == b(value), name
        else:
            assert got == value, name
    for name, value in tlvs.items():
        assert getattr(parsed, name) == value, name


@ORACLE
@given(seq=seqs, fields=sm_fields(), tlvs=deliver_tlvs)
def test_smpplib_parses_our_deliver_sm(
    seq: int, fields: dict[str, Any], tlvs: dict[str, Any]
) -> None:
    pdu = DeliverSm(sequence_number=seq, tlvs=Tlvs(**tlvs), **fields)
    data = encode(pdu)
    parsed = smpplib_parse(data)
    assert_header(parsed, pdu, data, "deliver_sm")
    for name, value in fields.items():
        got = getattr(parsed, name)
        if name == "short_message":
            assert (got or b"") == value
        elif isinstance(value, str):
            assert got == b(value), name
        else:
            assert got == value, name
    for name, value in tlvs.items():
        expected = b(value) if isinstance(value, str) else value
        assert getattr(parsed, name) == expected, name


@ORACLE
@given(
    name=st.sampled_from(sorted(BIND_REQUESTS)),
    seq=seqs,
    fields=bind_fields,
    interface_version=u8,
)
def test_smpplib_parses_our_bind_requests(
    name: str, seq: int, fields: dict[str, Any], interface_version: int
) -> None:
    pdu = BIND_REQUESTS[name](sequence_number=seq, interface_version=interface_version, **fields)
    data = encode(pdu)
    parsed = smpplib_parse(data)
    assert_header(parsed, pdu, data, name)
    assert parsed.interface_version == interface_version
    for field, value in fields.items():
        expected = b(value) if isinstance(value, str) else value
        assert getattr(parsed, field) == expected, field


@ORACLE
@given(
    name=st.sampled_from(sorted(BIND_RESPONSES)),
    seq=seqs,
    status=st.one_of(st.just(0), error_status),
    system_id=cstr(16),
    sc_interface_version=optional(u8),
)
def test_smpplib_parses_our_bind_responses(
    name: str, seq: int, status: int, system_id: str, sc_interface_version: int | None
) -> None:
    pdu = BIND_RESPONSES[name](
        sequence_number=seq,
        command_status=status,
        system_id=system_id,
        tlvs=Tlvs(sc_interface_version=sc_interface_version),
    )
    data = encode(pdu)
    parsed = smpplib_parse(data)
    assert_header(parsed, pdu, data, name)
    if status:
        # We send error responses without a body; smpplib leaves the fields unset.
        assert len(data) == 16
        assert parsed.system_id is None
        assert parsed.sc_interface_version is None
    else:
        assert parsed.system_id == b(system_id)
        assert parsed.sc_interface_version == sc_interface_version


@ORACLE
@given(
    name=st.sampled_from(["submit_sm_resp", "deliver_sm_resp"]),
    seq=seqs,
    status=st.one_of(st.just(0), error_status),
    message_id=cstr(65),
)
def test_smpplib_parses_our_message_id_responses(
    name: str, seq: int, status: int, message_id: str
) -> None:
    cls = SubmitSmResp if name == "submit_sm_resp" else DeliverSmResp
    pdu = cls(sequence_number=seq, command_status=status, message_id=message_id)
    data = encode(pdu)
    parsed = smpplib_parse(data)
    assert_header(parsed, pdu, data, name)
    assert parsed.message_id == (None if status else b(message_id))


@ORACLE
@given(
    name=st.sampled_from(sorted(EMPTY_BODY)),
    seq=st.integers(0, 0xFFFFFFFF),
    status=st.integers(0, 0xFFFFFFFF),
)
def test_smpplib_parses_our_header_only_pdus(name: str, seq: int, status: int) -> None:
    pdu = EMPTY_BODY[name](sequence_number=seq, command_status=status)
    data = encode(pdu)
    assert len(data) == 16
    assert_header(smpplib_parse(data), pdu, data, name)


# ====================================================== (b) smpplib generates, we decode


@ORACLE
@given(seq=seqs, fields=sm_fields(), tlvs=submit_tlvs)
def test_we_decode_smpplib_submit_sm(
    seq: int, fields: dict[str, Any], tlvs: dict[str, Any]
) -> None:
    if tlvs["message_payload"] is not None:
        fields = {**fields, "short_message": b""}  # smpplib refuses both at once
    given_tlvs = {k: v for k, v in tlvs.items() if v is not None}
    data = smpplib_generate("submit_sm", seq, **fields, **given_tlvs)
    assert our_decode(data) == SubmitSm(sequence_number=seq, tlvs=Tlvs(**tlvs), **fields)


@ORACLE
@given(seq=seqs, fields=sm_fields(), tlvs=deliver_tlvs)
def test_we_decode_smpplib_deliver_sm(
    seq: int, fields: dict[str, Any], tlvs: dict[str, Any]
) -> None:
    if tlvs["message_payload"] is not None:
        fields = {**fields, "short_message": b""}
    given_tlvs = {k: v for k, v in tlvs.items() if v is not None}
    data = smpplib_generate("deliver_sm", seq, **fields, **given_tlvs)
    assert our_decode(data) == DeliverSm(sequence_number=seq, tlvs=Tlvs(**tlvs), **fields)


@ORACLE
@given(name=st.sampled_from(sorted(BIND_REQUESTS)), seq=seqs, fields=bind_fields)
def test_we_decode_smpplib_bind_requests(name: str, seq: int, fields: dict[str, Any]) -> None:
    data = smpplib_generate(name, seq, **fields)
    # smpplib always writes interface_version 0x34.
    assert our_decode(data) == BIND_REQUESTS[name](
        sequence_number=seq, interface_version=0x34, **fields
    )


@ORACLE
@given(
    name=st.sampled_from(sorted(BIND_RESPONSES)),
    seq=seqs,
    status=st.one_of(st.just(0), error_status),
    system_id=cstr(16),
    sc_interface_version=optional(u8),
)
def test_we_decode_smpplib_bind_responses(
    name: str, seq: int, status: int, system_id: str, sc_interface_version: int | None
) -> None:
    extra = {} if sc_interface_version is None else {"sc_interface_version": sc_interface_version}
    # smpplib sends the full body even with an error status: we must accept it.
    data = smpplib_generate(name, seq, status, system_id=system_id, **extra)
    assert our_decode(data) == BIND_RESPONSES[name](
        sequence_number=seq,
        command_status=status,
        system_id=system_id,
        tlvs=Tlvs(sc_interface_version=sc_interface_version),
    )


@ORACLE
@given(
    name=st.sampled_from(["submit_sm_resp", "deliver_sm_resp"]),
    seq=seqs,
    status=st.one_of(st.just(0), error_status),
    message_id=cstr(65),
)
def test_we_decode_smpplib_message_id_responses(
    name: str, seq: int, status: int, message_id: str
) -> None:
    cls = SubmitSmResp if name == "submit_sm_resp" else DeliverSmResp
    data = smpplib_generate(name, seq, status, message_id=message_id)
    assert our_decode(data) == cls(
        sequence_number=seq, command_status=status, message_id=message_id
    )


@ORACLE
@given(
    name=st.sampled_from(sorted(EMPTY_BODY)),
    seq=st.integers(0, 0xFFFFFFFF),
    status=st.integers(0, 0xFFFFFFFF),
)
def test_we_decode_smpplib_header_only_pdus(name: str, seq: int, status: int) -> None:
    data = smpplib_generate(name, seq, status)
    assert our_decode(data) == EMPTY_BODY[name](sequence_number=seq, command_status=status)
