"""The hot-path codec must be indistinguishable from the generic one.

* ``SubmitTemplate.encode`` is byte-identical to ``codec.encode`` of the same SubmitSm.
* ``parse_submit_sm`` agrees with ``decode_pdu`` on valid input, and raises PduError
  on exactly the mutated inputs where ``decode_pdu`` raises.
* ``submit_sm_resp_message_id`` reads the same message_id as ``decode_pdu``.
"""

from __future__ import annotations

import dataclasses
import random
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smsblast.smpp.codec import Frame, decode_pdu, encode, encode_tlvs
from smsblast.smpp.constants import CommandId, Status
from smsblast.smpp.errors import LocalProtocolError, PduError
from smsblast.smpp.fast import (
    DeliverFields,
    SubmitTemplate,
    SubmitView,
    decode_short_message,
    deliver_fields,
    parse_submit_sm,
    submit_sm_resp_message_id,
)
from smsblast.smpp.pdu import TLV_SPECS, DeliverSm, SubmitSm, SubmitSmResp, Tlvs

PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ALPHABET = string.ascii_letters + string.digits + string.punctuation + " "


def cstr(limit: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=ALPHABET, max_size=limit - 1)


u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
time_field = st.one_of(st.just(""), st.text(alphabet=ALPHABET, min_size=16, max_size=16))


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


tlvs_strategy = st.builds(
    Tlvs,
    receipted_message_id=optional(cstr(65)),
    message_state=optional(u8),
    network_error_code=optional(st.binary(min_size=3, max_size=3)),
    message_payload=optional(st.binary(max_size=400)),
    user_message_reference=optional(u16),
    sar_msg_ref_num=optional(u16),
    sar_total_segments=optional(u8),
    sar_segment_seqnum=optional(u8),
    congestion_state=optional(st.integers(0, 100)),
    sc_interface_version=optional(u8),
    source_port=optional(u16),
    destination_port=optional(u16),
    dest_addr_subunit=optional(u8),
    unknown=st.lists(
        st.tuples(
            st.integers(0, 0xFFFF).filter(lambda t: t not in TLV_SPECS),
            st.binary(max_size=20),
        ),
        max_size=3,
    ).map(tuple),
)

submit_strategy = st.builds(
    SubmitSm,
    sequence_number=st.integers(0, 0xFFFFFFFF),
    service_type=cstr(6),
    source_addr_ton=u8,
    source_addr_npi=u8,
    source_addr=cstr(21),
    dest_addr_ton=u8,
    dest_addr_npi=u8,
    destination_addr=cstr(21),
    esm_class=u8,
    protocol_id=u8,
    priority_flag=u8,
    schedule_delivery_time=time_field,
    validity_period=time_field,
    registered_delivery=u8,
    replace_if_present_flag=u8,
    data_coding=u8,
    sm_default_msg_id=u8,
    short_message=st.binary(max_size=254),
    tlvs=st.one_of(st.just(Tlvs()), tlvs_strategy),
)


def frame_of(data: bytes) -> Frame:
    return Frame(
        int.from_bytes(data[4:8], "big"),
        int.from_bytes(data[8:12], "big"),
        int.from_bytes(data[12:16], "big"),
        data[16:],
    )


def expected_view(pdu: SubmitSm) -> SubmitView:
    return SubmitView(
        pdu.sequence_number,
        pdu.source_addr,
        pdu.destination_addr,
        pdu.esm_class,
        pdu.registered_delivery,
        pdu.data_coding,
        pdu.short_message,
        pdu.tlvs,
    )


# -------------------------------------------------------------------- SubmitTemplate


@PROPS
@given(proto=submit_strategy, message=submit_strategy)
def test_template_encode_is_byte_identical_to_codec_encode(
    proto: SubmitSm, message: SubmitSm
) -> None:
    # ``proto`` supplies the fixed fields (its per-message fields must be ignored);
    # ``message`` supplies the per-message ones.
    template = SubmitTemplate(proto)
    wire = template.encode(
        message.sequence_number,
        message.destination_addr.encode("ascii"),
        message.short_message,
        esm_class=message.esm_class,
        data_coding=message.data_coding,
        tlvs=encode_tlvs(message.tlvs),
    )
    equivalent = SubmitSm(
        sequence_number=message.sequence_number,
        service_type=proto.service_type,
        source_addr_ton=proto.source_addr_ton,
        source_addr_npi=proto.source_addr_npi,
        source_addr=proto.source_addr,
        dest_addr_ton=proto.dest_addr_ton,
        dest_addr_npi=proto.dest_addr_npi,
        destination_addr=message.destination_addr,
        esm_class=message.esm_class,
        protocol_id=proto.protocol_id,
        priority_flag=proto.priority_flag,
        schedule_delivery_time=proto.schedule_delivery_time,
        validity_period=proto.validity_period,
        registered_delivery=proto.registered_delivery,
        replace_if_present_flag=proto.replace_if_present_flag,
        data_coding=message.data_coding,
        sm_default_msg_id=proto.sm_default_msg_id,
        short_message=message.short_message,
        tlvs=message.tlvs,
    )
    assert wire == encode(equivalent)
    assert decode_pdu(frame_of(wire)) == equivalent


def test_template_golden_submit_sm() -> None:
    template = SubmitTemplate(
        SubmitSm(
            source_addr_ton=5,
            source_addr="SMSBLAST",
            dest_addr_ton=1,
            dest_addr_npi=1,
            validity_period="000001000000000R",
            registered_delivery=1,
        )
    )
    wire = template.encode(0x2A, b"6281234567890", b"Hello")
    # Same hand-written image as test_codec_golden's "submit_sm".
    assert wire.hex().upper() == (
        "0000004B"
        "00000004"
        "00000000"
        "0000002A"
        "00"
        "0500"
        "534D53424C41535400"
        "0101"
        "3632383132333435363738393000"
        "000000"
        "00"
        "3030303030313030303030303030305200"
        "01000000"
        "0548656C6C6F"
    )


def test_template_per_message_fields_of_the_proto_are_ignored() -> None:
    plain = SubmitTemplate(SubmitSm(source_addr="A"))
    noisy = SubmitTemplate(
        SubmitSm(
            source_addr="A",
            destination_addr="999",
            esm_class=0x40,
            data_coding=8,
            short_message=b"zzz",
            tlvs=Tlvs(sar_msg_ref_num=1),
        )
    )
    assert noisy.encode(1, b"628", b"x") == plain.encode(1, b"628", b"x")


@pytest.mark.parametrize(
    ("destination", "short_message"),
    [(b"1" * 21, b""), (b"62\x00812", b""), (b"628", b"x" * 255)],
)
def test_template_rejects_what_the_codec_rejects(destination: bytes, short_message: bytes) -> None:
    template = SubmitTemplate(SubmitSm())
    with pytest.raises(LocalProtocolError):
        template.encode(1, destination, short_message)
    with pytest.raises(LocalProtocolError):
        encode(SubmitSm(destination_addr=destination.decode(), short_message=short_message))


def test_template_refuses_a_bad_proto_like_the_codec() -> None:
    with pytest.raises(LocalProtocolError):
        SubmitTemplate(SubmitSm(source_addr="x" * 21))
    with pytest.raises(LocalProtocolError):
        SubmitTemplate(SubmitSm(validity_period="1d"))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"esm_class": 256},
        {"data_coding": -1},
        {"sequence_number": 1 << 32},
    ],
    ids=["esm_class", "data_coding", "sequence_number"],
)
def test_template_out_of_range_values_raise_local_protocol_error(kwargs: dict[str, int]) -> None:
    args: dict[str, Any] = {"sequence_number": 1, "destination": b"628", "short_message": b""}
    args |= kwargs
    with pytest.raises(LocalProtocolError):
        SubmitTemplate(SubmitSm()).encode(**args)


# -------------------------------------------------------------------- parse_submit_sm


@PROPS
@given(pdu=submit_strategy)
def test_parse_submit_sm_agrees_with_decode_pdu(pdu: SubmitSm) -> None:
    frame = frame_of(encode(pdu))
    assert decode_pdu(frame) == pdu
    assert parse_submit_sm(frame) == expected_view(pdu)


def outcome(fn: Any, frame: Frame, command_id: int = CommandId.SUBMIT_SM) -> Any:
    """("ok", result) or ("error", status, message) of ``fn(frame)``."""
    try:
        return ("ok", fn(frame))
    except PduError as exc:
        assert exc.command_id == command_id
        assert exc.sequence_number == frame.sequence_number
        return ("error", exc.status, str(exc))


def assert_same_verdict(frame: Frame) -> None:
    slow = outcome(decode_pdu, frame)
    fast = outcome(parse_submit_sm, frame)
    assert slow[0] == fast[0], (frame.body.hex(), slow, fast)
    if slow[0] == "ok":
        assert fast[1] == expected_view(slow[1])


def mutate(rng: random.Random, body: bytes) -> bytes:
    data = bytearray(body)
    for _ in range(rng.randint(1, 3)):
        n = len(data)
        op = rng.randrange(6)
        if op == 0 and n:
            data[rng.randrange(n)] ^= 1 << rng.randrange(8)
        elif op == 1 and n:
            del data[rng.randrange(n) :]
        elif op == 2:
            i = rng.randint(0, n)
            data[i:i] = rng.choice([b"\x00", b"A", b"\xff", rng.randbytes(rng.randint(1, 24))])
        elif op == 3 and n:
            i = rng.randrange(n)
            del data[i : i + rng.randint(1, 8)]
        elif op == 4 and n:
            data[rng.randrange(n)] = rng.choice([0x00, 0x30, 0xFF, 0x10, 0xFE])
        elif op == 5 and n:  # turn a NUL into a character: stretches a C-string
            nuls = [i for i, b in enumerate(data) if b == 0]
            if nuls:
                data[rng.choice(nuls)] = 0x31
    return bytes(data)


@PROPS
@given(pdu=submit_strategy, seed=st.integers(0, 2**32 - 1))
def test_parse_submit_sm_rejects_exactly_what_decode_pdu_rejects(pdu: SubmitSm, seed: int) -> None:
    frame = frame_of(encode(pdu))
    mutated = Frame(
        frame.command_id, 0, frame.sequence_number, mutate(random.Random(seed), frame.body)
    )
    assert_same_verdict(mutated)


def test_parse_submit_sm_verdicts_on_20k_seeded_mutations() -> None:
    rng = random.Random(4711)
    bases = [
        SubmitSm(sequence_number=1),
        SubmitSm(
            sequence_number=2,
            service_type="CMT",
            source_addr_ton=5,
            source_addr="SMSBLAST",
            dest_addr_ton=1,
            dest_addr_npi=1,
            destination_addr="6281234567890",
            schedule_delivery_time="250101120000028+",
            validity_period="000001000000000R",
            registered_delivery=1,
            data_coding=8,
            short_message="Halo".encode("utf-16-be"),
        ),
        SubmitSm(
            sequence_number=3,
            source_addr="1" * 20,
            destination_addr="6" * 20,
            short_message=b"x" * 254,
            tlvs=Tlvs(
                sar_msg_ref_num=9,
                sar_total_segments=3,
                sar_segment_seqnum=2,
                unknown=((0x1400, b"ab"),),
            ),
        ),
        SubmitSm(sequence_number=4, tlvs=Tlvs(message_payload=b"p" * 100)),
    ]
    frames = [frame_of(encode(p)) for p in bases]
    errors = 0
    for _ in range(20_000):
        base = rng.choice(frames)
        body = mutate(rng, base.body)
        mutated = Frame(base.command_id, 0, base.sequence_number, body)
        assert_same_verdict(mutated)
        errors += outcome(decode_pdu, mutated)[0] == "error"
    assert 2_000 < errors < 19_000  # both verdicts well exercised


@pytest.mark.parametrize("cut", range(17))
def test_parse_submit_sm_rejects_every_truncation_of_the_mandatory_part(cut: int) -> None:
    body = encode(SubmitSm(sequence_number=1))[16:]
    assert len(body) == 17
    frame = Frame(CommandId.SUBMIT_SM, 0, 1, body[:cut])
    with pytest.raises(PduError):
        parse_submit_sm(frame)
    with pytest.raises(PduError):
        decode_pdu(frame)


def submit_body(
    service: bytes = b"",
    src: bytes = b"S",
    dst: bytes = b"628",
    sched: bytes = b"",
    valid: bytes = b"",
) -> bytes:
    """A submit_sm body with raw (possibly illegal) C-string fields and sm_length 0."""
    return b"".join(
        [
            service,
            b"\x00\x00\x00",
            src,
            b"\x00\x01\x01",
            dst,
            b"\x00",
            b"\x00\x00\x00",
            sched,
            b"\x00",
            valid,
            b"\x00",
            b"\x00\x00\x00\x00",
            b"\x00",
        ]
    )


def test_submit_body_helper_builds_a_valid_body() -> None:
    assert (
        submit_body()
        == encode(
            SubmitSm(source_addr="S", dest_addr_ton=1, dest_addr_npi=1, destination_addr="628")
        )[16:]
    )


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"sched": b"7" * 5}, Status.RINVSCHED),
        ({"valid": b"7" * 15}, Status.RINVEXPIRY),
    ],
)
def test_parse_submit_sm_time_field_status_matches_codec(
    fields: dict[str, bytes], status: int
) -> None:
    frame = Frame(CommandId.SUBMIT_SM, 0, 1, submit_body(**fields))
    assert (
        outcome(decode_pdu, frame)[:2] == outcome(parse_submit_sm, frame)[:2] == ("error", status)
    )


def test_parse_submit_sm_accepts_16_character_time_fields() -> None:
    frame = Frame(CommandId.SUBMIT_SM, 0, 1, submit_body(sched=b"7" * 16, valid=b"8" * 16))
    pdu = decode_pdu(frame)
    assert isinstance(pdu, SubmitSm)
    assert parse_submit_sm(frame) == expected_view(pdu)


@pytest.mark.parametrize(
    "fields",
    [
        {"service": b"CMTXYZ"},
        {"src": b"1" * 21},
        {"dst": b"6" * 21},
        {"sched": b"7" * 17},
        {"valid": b"7" * 17},
    ],
    ids=["service_type", "source_addr", "destination_addr", "schedule", "validity"],
)
def test_parse_submit_sm_over_long_field_status_matches_codec(fields: dict[str, bytes]) -> None:
    frame = Frame(CommandId.SUBMIT_SM, 0, 1, submit_body(**fields))
    assert outcome(parse_submit_sm, frame)[:2] == outcome(decode_pdu, frame)[:2]


# ------------------------------------------------------------ submit_sm_resp_message_id


@PROPS
@given(message_id=cstr(65), status=st.sampled_from([0, 0x58, 0x45]))
def test_message_id_reader_agrees_with_decode_pdu(message_id: str, status: int) -> None:
    data = encode(SubmitSmResp(sequence_number=1, command_status=status, message_id=message_id))
    decoded = decode_pdu(frame_of(data))
    assert isinstance(decoded, SubmitSmResp)
    assert submit_sm_resp_message_id(data[16:]) == decoded.message_id
    assert decoded.message_id == (message_id if status == 0 else "")


@pytest.mark.parametrize(
    ("body", "message_id"),
    [
        (b"", ""),  # error response, no body
        (b"\x00", ""),
        (b"0221067780\x00", "0221067780"),  # leading zero survives
        (b"04000000086ECD50", "04000000086ECD50"),  # missing NUL tolerated
        (b"abc\x00junk", "abc"),
    ],
)
def test_message_id_reader_edge_cases(body: bytes, message_id: str) -> None:
    assert submit_sm_resp_message_id(body) == message_id


# -------------------------------------------------------------------- deliver_fields


def as_deliver(pdu: SubmitSm) -> DeliverSm:
    return DeliverSm(**{f.name: getattr(pdu, f.name) for f in dataclasses.fields(pdu)})


def expected_fields(pdu: DeliverSm) -> DeliverFields:
    return DeliverFields(
        pdu.esm_class, pdu.short_message, pdu.tlvs.receipted_message_id, pdu.tlvs.message_state
    )


def deliver_verdict(fn: Any, frame: Frame) -> Any:
    return outcome(fn, frame, CommandId.DELIVER_SM)


def assert_same_deliver_verdict(frame: Frame) -> None:
    slow = deliver_verdict(decode_pdu, frame)
    fast = deliver_verdict(deliver_fields, frame)
    if slow[0] == "ok":
        assert fast == ("ok", expected_fields(slow[1])), frame.body.hex()
    else:
        assert fast == slow, frame.body.hex()  # same status, same message


@PROPS
@given(pdu=submit_strategy)
def test_deliver_fields_agree_with_decode_pdu(pdu: SubmitSm) -> None:
    deliver = as_deliver(pdu)
    frame = frame_of(encode(deliver))
    assert decode_pdu(frame) == deliver
    assert decode_short_message(frame, DeliverSm) == deliver
    assert deliver_fields(frame) == expected_fields(deliver)


@PROPS
@given(pdu=submit_strategy, seed=st.integers(0, 2**32 - 1))
def test_deliver_fields_reject_exactly_what_decode_pdu_rejects(pdu: SubmitSm, seed: int) -> None:
    frame = frame_of(encode(as_deliver(pdu)))
    body = mutate(random.Random(seed), frame.body)
    assert_same_deliver_verdict(Frame(frame.command_id, 0, frame.sequence_number, body))


def test_deliver_fields_verdicts_on_20k_seeded_mutations_of_receipts() -> None:
    text = b"id:0A1B2C sub:001 dlvrd:001 submit date:2402140800 done date:2402140801 stat:DELIVRD"
    bases = [
        DeliverSm(sequence_number=7, esm_class=4, short_message=text),
        DeliverSm(
            sequence_number=8,
            source_addr="6281234567890",
            destination_addr="KOMINFO",
            esm_class=4,
            short_message=text,
            tlvs=Tlvs(receipted_message_id="0A1B2C", message_state=2),
        ),
        DeliverSm(
            sequence_number=9,
            esm_class=4,
            tlvs=Tlvs(
                receipted_message_id="77",
                message_state=5,
                network_error_code=b"\x03\x00\x01",
                unknown=((0x1400, b"ab"),),
            ),
        ),
    ]
    frames = [frame_of(encode(p)) for p in bases]
    rng = random.Random(1147)
    errors = 0
    for _ in range(20_000):
        base = rng.choice(frames)
        mutated = Frame(base.command_id, 0, base.sequence_number, mutate(rng, base.body))
        assert_same_deliver_verdict(mutated)
        errors += deliver_verdict(decode_pdu, mutated)[0] == "error"
    assert 2_000 < errors < 19_000  # both verdicts well exercised


@pytest.mark.parametrize(
    ("tlvs", "status"),
    [
        (b"\x04\x27\x00", Status.RINVOPTPARSTREAM),  # header cut short
        (b"\x04\x27\x00\x02\x02", Status.RINVOPTPARSTREAM),  # value runs past the PDU
        (b"\x04\x27\x00\x02\x02\x00", Status.RINVPARLEN),  # message_state is one octet
        (b"\x04\x23\x00\x01\x03", Status.RINVPARLEN),  # network_error_code is three
    ],
)
def test_deliver_fields_name_a_bad_tlv_like_the_codec(tlvs: bytes, status: int) -> None:
    body = encode(DeliverSm(sequence_number=3, esm_class=4))[16:] + tlvs
    frame = Frame(CommandId.DELIVER_SM, 0, 3, body)
    verdict = deliver_verdict(deliver_fields, frame)
    assert verdict == deliver_verdict(decode_pdu, frame)
    assert verdict[:2] == ("error", status)
