"""Golden wire images for every PDU type the core knows.

Every hex string below was written out by hand, field by field, from the SMPP v3.4
layout (sections 3.2 and 4): never produced by our encoder. Each case checks both
directions, ``encode(pdu) == wire`` and ``decode_pdu(wire) == pdu``, and the
command_length written by hand is checked against the real length of the hex
(so a slip in the hand-written reference cannot silently pass).

TLVs in the reference images follow the encoder's documented order (known tags in
``TLV_SPECS`` order, unknown tags after them in their original order), so that the
same image serves both directions; decoding a different order is tested separately.
"""

from __future__ import annotations

import pytest

from smsblast.smpp.codec import Frame, FrameDecoder, decode_pdu, encode
from smsblast.smpp.constants import Status
from smsblast.smpp.pdu import (
    ALL_PDU_TYPES,
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
    Outbind,
    Pdu,
    SubmitSm,
    SubmitSmResp,
    Tlvs,
    Unbind,
    UnbindResp,
)


def h(*parts: str) -> bytes:
    """Join hex fragments (spaces allowed) into bytes."""
    return bytes.fromhex("".join(parts).replace(" ", ""))


def frame_of(wire: bytes) -> Frame:
    """Cut one frame out of a wire image with the real FrameDecoder."""
    decoder = FrameDecoder()
    decoder.feed(wire)
    frames = list(decoder.frames())
    assert len(frames) == 1
    assert decoder.buffered == 0
    return frames[0]


# ------------------------------------------------------------------ reference images

GOLDEN: list[tuple[str, Pdu, bytes]] = [
    (
        "generic_nack",
        GenericNack(sequence_number=7, command_status=Status.RINVCMDID),
        #  length     command_id status     sequence
        h("00000010", "80000000", "00000003", "00000007"),
    ),
    (
        "enquire_link",
        EnquireLink(sequence_number=1),
        h("00000010", "00000015", "00000000", "00000001"),
    ),
    (
        "enquire_link_resp",
        EnquireLinkResp(sequence_number=1),
        h("00000010", "80000015", "00000000", "00000001"),
    ),
    (
        "unbind",
        Unbind(sequence_number=0x7FFFFFFF),
        h("00000010", "00000006", "00000000", "7FFFFFFF"),
    ),
    (
        "unbind_resp",
        UnbindResp(sequence_number=0x7FFFFFFF),
        h("00000010", "80000006", "00000000", "7FFFFFFF"),
    ),
    (
        "bind_transmitter",
        BindTransmitter(sequence_number=1, system_id="smsblast", password="secret"),
        h(
            "00000025 00000002 00000000 00000001",  # 16 + 21 = 37
            "736D73626C61737400",  # system_id "smsblast\0"
            "73656372657400",  # password "secret\0"
            "00",  # system_type ""
            "34",  # interface_version 3.4
            "00 00",  # addr_ton, addr_npi
            "00",  # address_range ""
        ),
    ),
    (
        "bind_receiver",
        BindReceiver(
            sequence_number=2,
            system_id="rx1",
            password="pw",
            system_type="VMA",
            addr_ton=1,
            addr_npi=1,
            address_range="628",
        ),
        h(
            "00000022 00000001 00000000 00000002",  # 16 + 18 = 34
            "72783100",  # system_id "rx1\0"
            "707700",  # password "pw\0"
            "564D4100",  # system_type "VMA\0"
            "34 01 01",  # interface_version, addr_ton, addr_npi
            "36323800",  # address_range "628\0"
        ),
    ),
    (
        "bind_transceiver",
        BindTransceiver(sequence_number=3, system_id="trx", addr_ton=5),
        h(
            "0000001A 00000009 00000000 00000003",  # 16 + 10 = 26
            "74727800",  # system_id "trx\0"
            "00 00",  # password "", system_type ""
            "34 05 00",  # interface_version, addr_ton 5 (alphanumeric), addr_npi
            "00",  # address_range ""
        ),
    ),
    (
        "bind_transmitter_resp+sc_interface_version",
        BindTransmitterResp(
            sequence_number=1, system_id="SMSC", tlvs=Tlvs(sc_interface_version=0x34)
        ),
        h(
            "0000001A 80000002 00000000 00000001",  # 16 + 10 = 26
            "534D534300",  # system_id "SMSC\0"
            "0210 0001 34",  # TLV sc_interface_version = 0x34
        ),
    ),
    (
        "bind_receiver_resp",
        BindReceiverResp(sequence_number=2, system_id="SMSC"),
        h("00000015 80000001 00000000 00000002", "534D534300"),
    ),
    (
        "bind_transceiver_resp+sc_interface_version",
        BindTransceiverResp(sequence_number=3, tlvs=Tlvs(sc_interface_version=0x50)),
        h(
            "00000016 80000009 00000000 00000003",  # 16 + 6 = 22
            "00",  # system_id ""
            "0210 0001 50",  # sc_interface_version 5.0
        ),
    ),
    (
        "outbind",
        Outbind(sequence_number=9, system_id="smsc01", password="pw12"),
        h(
            "0000001C 0000000B 00000000 00000009",  # 16 + 12 = 28
            "736D73633031 00",  # system_id "smsc01\0"
            "7077313200",  # password "pw12\0"
        ),
    ),
    (
        "submit_sm",
        SubmitSm(
            sequence_number=0x2A,
            source_addr_ton=5,
            source_addr="SMSBLAST",
            dest_addr_ton=1,
            dest_addr_npi=1,
            destination_addr="6281234567890",
            validity_period="000001000000000R",
            registered_delivery=1,
            short_message=b"Hello",
        ),
        h(
            "0000004B 00000004 00000000 0000002A",  # 16 + 59 = 75
            "00",  # service_type ""
            "05 00",  # source_addr_ton 5, source_addr_npi 0
            "534D53424C41535400",  # source_addr "SMSBLAST\0"
            "01 01",  # dest_addr_ton 1, dest_addr_npi 1
            "3632383132333435363738393000",  # destination_addr "6281234567890\0"
            "00 00 00",  # esm_class, protocol_id, priority_flag
            "00",  # schedule_delivery_time ""
            "30303030303130303030303030303052 00",  # validity_period "000001000000000R\0"
            "01 00 00 00",  # registered_delivery, replace_if_present, data_coding, default id
            "05 48656C6C6F",  # sm_length 5, "Hello"
        ),
    ),
    (
        "submit_sm+sar_tlvs+unknown_tlv",
        SubmitSm(
            sequence_number=0x2B,
            service_type="CMT",
            dest_addr_ton=1,
            dest_addr_npi=1,
            destination_addr="628123",
            priority_flag=1,
            data_coding=8,
            short_message="Hi".encode("utf-16-be"),
            tlvs=Tlvs(
                user_message_reference=0x0102,
                sar_msg_ref_num=0xBEEF,
                sar_total_segments=2,
                sar_segment_seqnum=1,
                unknown=((0x1400, b"\xaa\xbb"),),
            ),
        ),
        h(
            "0000004A 00000004 00000000 0000002B",  # 16 + 30 + 28 = 74
            "434D5400",  # service_type "CMT\0"
            "00 00 00",  # source_addr_ton, source_addr_npi, source_addr ""
            "01 01 36323831323300",  # dest ton/npi, destination_addr "628123\0"
            "00 00 01",  # esm_class, protocol_id, priority_flag 1
            "00 00",  # schedule_delivery_time "", validity_period ""
            "00 00 08 00",  # registered_delivery, replace, data_coding 8 (UCS-2), default id
            "04 00480069",  # sm_length 4, "Hi" in UCS-2
            "0204 0002 0102",  # user_message_reference
            "020C 0002 BEEF",  # sar_msg_ref_num
            "020E 0001 02",  # sar_total_segments
            "020F 0001 01",  # sar_segment_seqnum
            "1400 0002 AABB",  # vendor tag 0x1400, kept raw
        ),
    ),
    (
        "submit_sm+message_payload+ports",
        SubmitSm(
            sequence_number=0x2C,
            destination_addr="628",
            tlvs=Tlvs(message_payload=b"long text", destination_port=2948, dest_addr_subunit=1),
        ),
        h(
            "0000003C 00000004 00000000 0000002C",  # 16 + 20 + 24 = 60
            "00 00 00 00",  # service_type, src ton, src npi, source_addr
            "00 00 36323800",  # dest ton, dest npi, destination_addr "628\0"
            "00 00 00 00 00",  # esm, pid, priority, schedule "", validity ""
            "00 00 00 00",  # registered_delivery, replace, data_coding, default id
            "00",  # sm_length 0 (text is in message_payload)
            "0424 0009 6C6F6E672074657874",  # message_payload "long text"
            "020B 0002 0B84",  # destination_port 2948 (WAP push)
            "0005 0001 01",  # dest_addr_subunit 1
        ),
    ),
    (
        "submit_sm_resp",
        SubmitSmResp(sequence_number=0x2A, message_id="04000000086ECD50"),
        h(
            "00000021 80000004 00000000 0000002A",  # 16 + 17 = 33
            "30343030303030303038364543443530 00",  # message_id "04000000086ECD50\0"
        ),
    ),
    (
        "deliver_sm_receipt+tlvs+unknown_tlv",
        DeliverSm(
            sequence_number=0x10,
            source_addr_ton=1,
            source_addr_npi=1,
            source_addr="6281234567890",
            dest_addr_ton=5,
            destination_addr="SMSBLAST",
            esm_class=0x04,
            short_message=b"id:0221067780 stat:DELIVRD",
            tlvs=Tlvs(
                receipted_message_id="0221067780",
                message_state=2,
                network_error_code=b"\x03\x00\x00",
                unknown=((0x1501, b"\x01\x02\x03"),),
            ),
        ),
        h(
            "00000072 00000005 00000000 00000010",  # 16 + 64 + 34 = 114
            "00",  # service_type ""
            "01 01 3632383132333435363738393000",  # source ton/npi, "6281234567890\0"
            "05 00 534D53424C41535400",  # dest ton 5, npi 0, "SMSBLAST\0"
            "04 00 00",  # esm_class 0x04 (delivery receipt), protocol_id, priority_flag
            "00 00",  # schedule_delivery_time "", validity_period ""
            "00 00 00 00",  # registered_delivery, replace, data_coding, default id
            "1A",  # sm_length 26
            "69643A30323231303637373830",  # "id:0221067780"
            "20 737461743A44454C49565244",  # " stat:DELIVRD"
            "001E 000B 3032323130363737383000",  # receipted_message_id "0221067780\0"
            "0427 0001 02",  # message_state DELIVERED
            "0423 0003 030000",  # network_error_code GSM, 0
            "1501 0003 010203",  # unknown tag kept raw
        ),
    ),
    (
        "deliver_sm_resp",
        DeliverSmResp(sequence_number=0x10),
        h("00000011 80000005 00000000 00000010", "00"),  # message_id ""
    ),
    # Error responses: v3.4 says the body is not returned; the encoder sends a bare header.
    (
        "submit_sm_resp_error",
        SubmitSmResp(sequence_number=0x2A, command_status=Status.RTHROTTLED),
        h("00000010 80000004 00000058 0000002A"),
    ),
    (
        "deliver_sm_resp_error",
        DeliverSmResp(sequence_number=0x10, command_status=Status.RX_T_APPN),
        h("00000010 80000005 00000064 00000010"),
    ),
    (
        "bind_transmitter_resp_error",
        BindTransmitterResp(sequence_number=1, command_status=Status.RINVPASWD),
        h("00000010 80000002 0000000E 00000001"),
    ),
    (
        "bind_receiver_resp_error",
        BindReceiverResp(sequence_number=2, command_status=Status.RBINDFAIL),
        h("00000010 80000001 0000000D 00000002"),
    ),
    (
        "bind_transceiver_resp_error",
        BindTransceiverResp(sequence_number=3, command_status=Status.RINVSYSID),
        h("00000010 80000009 0000000F 00000003"),
    ),
]

GOLDEN_PARAMS = [pytest.param(pdu, wire, id=name) for name, pdu, wire in GOLDEN]


def test_golden_covers_every_pdu_type() -> None:
    assert {type(pdu) for _, pdu, _ in GOLDEN} == set(ALL_PDU_TYPES)


@pytest.mark.parametrize(("pdu", "wire"), GOLDEN_PARAMS)
def test_hand_written_command_length_matches_hex(pdu: Pdu, wire: bytes) -> None:
    # Guards the reference data itself, independently of the code under test.
    assert int.from_bytes(wire[:4], "big") == len(wire)
    assert int.from_bytes(wire[4:8], "big") == pdu.command_id


@pytest.mark.parametrize(("pdu", "wire"), GOLDEN_PARAMS)
def test_encode_matches_golden_hex(pdu: Pdu, wire: bytes) -> None:
    assert encode(pdu).hex().upper() == wire.hex().upper()


@pytest.mark.parametrize(("pdu", "wire"), GOLDEN_PARAMS)
def test_decode_golden_hex_gives_pdu(pdu: Pdu, wire: bytes) -> None:
    decoded = decode_pdu(frame_of(wire))
    assert type(decoded) is type(pdu)
    assert decoded == pdu


# ------------------------------------------------------------- decode-only images


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        pytest.param(
            h("00000011 80000004 00000058 0000002A", "00"),
            SubmitSmResp(sequence_number=0x2A, command_status=Status.RTHROTTLED),
            id="submit_sm_resp_error_with_empty_message_id",
        ),
        pytest.param(
            h("00000014 80000004 00000045 0000002A", "61626300"),
            SubmitSmResp(sequence_number=0x2A, command_status=Status.RSUBMITFAIL, message_id="abc"),
            id="submit_sm_resp_error_with_message_id",
        ),
        pytest.param(
            h("00000011 80000005 00000064 00000010", "00"),
            DeliverSmResp(sequence_number=0x10, command_status=Status.RX_T_APPN),
            id="deliver_sm_resp_error_with_body",
        ),
        pytest.param(
            h("0000001A 80000002 0000000E 00000001", "534D534300", "0210 0001 34"),
            BindTransmitterResp(
                sequence_number=1,
                command_status=Status.RINVPASWD,
                system_id="SMSC",
                tlvs=Tlvs(sc_interface_version=0x34),
            ),
            id="bind_transmitter_resp_error_with_body_and_tlv",
        ),
        pytest.param(
            h("00000011 80000009 0000000D 00000003", "00"),
            BindTransceiverResp(sequence_number=3, command_status=Status.RBINDFAIL),
            id="bind_transceiver_resp_error_with_empty_system_id",
        ),
    ],
)
def test_error_response_with_full_body_decodes(wire: bytes, expected: Pdu) -> None:
    assert int.from_bytes(wire[:4], "big") == len(wire)
    assert decode_pdu(frame_of(wire)) == expected


def test_error_response_with_full_body_re_encodes_without_body() -> None:
    wire = h("00000014 80000004 00000045 0000002A", "61626300")
    pdu = decode_pdu(frame_of(wire))
    assert encode(pdu) == h("00000010 80000004 00000045 0000002A")


def test_tlvs_in_any_order_decode_and_unknown_tags_keep_their_order() -> None:
    # deliver_sm, all mandatory fields empty/zero, TLVs in an order the encoder
    # would never produce: unknown, known, unknown, known.
    mandatory = "00" + "0000 00" + "0000 00" + "000000" + "00 00" + "00000000" + "00"
    tlvs = (
        "1600 0001 FF"  # unknown 0x1600
        "0427 0001 05"  # message_state UNDELIVERABLE
        "1500 0000"  # unknown 0x1500, empty value
        "001E 0004 41424300"  # receipted_message_id "ABC"
    )
    body = h(mandatory, tlvs)
    assert len(body) == 17 + 5 + 5 + 4 + 8
    wire = (16 + len(body)).to_bytes(4, "big") + h("00000005 00000000 00000003") + body
    pdu = decode_pdu(frame_of(wire))
    assert pdu == DeliverSm(
        sequence_number=3,
        tlvs=Tlvs(
            receipted_message_id="ABC",
            message_state=5,
            unknown=((0x1600, b"\xff"), (0x1500, b"")),
        ),
    )
    # Re-encoding: known tags in table order, then the unknown ones in arrival order.
    assert encode(pdu)[16 + 17 :] == h(
        "001E 0004 41424300", "0427 0001 05", "1600 0001 FF", "1500 0000"
    )


def test_receipted_message_id_without_nul_terminator_is_tolerated() -> None:
    mandatory = "00" + "0000 00" + "0000 00" + "000000" + "00 00" + "00000000" + "00"
    body = h(mandatory, "001E 0003 414243")
    wire = (16 + len(body)).to_bytes(4, "big") + h("00000005 00000000 00000004") + body
    pdu = decode_pdu(frame_of(wire))
    assert isinstance(pdu, DeliverSm)
    assert pdu.tlvs == Tlvs(receipted_message_id="ABC")


def test_submit_sm_with_empty_short_message_and_no_tlvs() -> None:
    wire = h(
        "00000021 00000004 00000000 00000001",  # 16 + 17
        "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00",
    )
    assert decode_pdu(frame_of(wire)) == SubmitSm(sequence_number=1)
    assert encode(SubmitSm(sequence_number=1)) == wire


def test_max_short_message_254_octets() -> None:
    text = bytes(range(254))
    pdu = SubmitSm(sequence_number=5, short_message=text)
    wire = h("0000011F 00000004 00000000 00000005", "00" * 16, "FE") + text
    assert len(wire) == 0x11F
    assert encode(pdu) == wire
    assert decode_pdu(frame_of(wire)) == pdu
