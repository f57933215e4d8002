"""PDU types: frozen dataclasses, one per SMPP operation, plus typed TLVs.

Each class carries its ``command_id`` and its body layout (``BODY``) as class
data: the codec walks that one table to encode and decode, so the field order
of an operation is written exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NamedTuple

from smsblast.smpp.constants import (
    INTERFACE_VERSION_34,
    RESPONSE_BIT,
    CommandId,
    Tag,
)

#: Field kinds of a PDU body: ("cstr", max_octets_with_nul) | ("u8", 0) | ("sm", 0).
FieldSpec = tuple[str, str, int]

_BIND_BODY: tuple[FieldSpec, ...] = (
    ("system_id", "cstr", 16),
    ("password", "cstr", 9),
    ("system_type", "cstr", 13),
    ("interface_version", "u8", 0),
    ("addr_ton", "u8", 0),
    ("addr_npi", "u8", 0),
    ("address_range", "cstr", 41),
)

_SM_BODY: tuple[FieldSpec, ...] = (
    ("service_type", "cstr", 6),
    ("source_addr_ton", "u8", 0),
    ("source_addr_npi", "u8", 0),
    ("source_addr", "cstr", 21),
    ("dest_addr_ton", "u8", 0),
    ("dest_addr_npi", "u8", 0),
    ("destination_addr", "cstr", 21),
    ("esm_class", "u8", 0),
    ("protocol_id", "u8", 0),
    ("priority_flag", "u8", 0),
    ("schedule_delivery_time", "cstr", 17),
    ("validity_period", "cstr", 17),
    ("registered_delivery", "u8", 0),
    ("replace_if_present_flag", "u8", 0),
    ("data_coding", "u8", 0),
    ("sm_default_msg_id", "u8", 0),
    ("short_message", "sm", 0),
)


class Tlvs(NamedTuple):
    """Optional parameters: known tags typed, unknown tags kept raw and in order.

    A NamedTuple rather than a frozen dataclass: every deliver_sm receipt builds
    one, and a 14-field frozen dataclass costs ~3 us to construct (one
    ``object.__setattr__`` per field) against ~0.3 us for a tuple.
    """

    receipted_message_id: str | None = None
    message_state: int | None = None
    network_error_code: bytes | None = None
    message_payload: bytes | None = None
    user_message_reference: int | None = None
    sar_msg_ref_num: int | None = None
    sar_total_segments: int | None = None
    sar_segment_seqnum: int | None = None
    congestion_state: int | None = None
    sc_interface_version: int | None = None
    source_port: int | None = None
    destination_port: int | None = None
    dest_addr_subunit: int | None = None
    unknown: tuple[tuple[int, bytes], ...] = ()

    def is_empty(self) -> bool:
        return self == NO_TLVS


NO_TLVS = Tlvs()

#: tag -> (attribute, kind, fixed length or 0). Kinds: u8/u16/u32, cstr, octets.
TLV_SPECS: dict[int, tuple[str, str, int]] = {
    Tag.RECEIPTED_MESSAGE_ID: ("receipted_message_id", "cstr", 0),
    Tag.MESSAGE_STATE: ("message_state", "u8", 1),
    Tag.NETWORK_ERROR_CODE: ("network_error_code", "octets", 3),
    Tag.MESSAGE_PAYLOAD: ("message_payload", "octets", 0),
    Tag.USER_MESSAGE_REFERENCE: ("user_message_reference", "u16", 2),
    Tag.SAR_MSG_REF_NUM: ("sar_msg_ref_num", "u16", 2),
    Tag.SAR_TOTAL_SEGMENTS: ("sar_total_segments", "u8", 1),
    Tag.SAR_SEGMENT_SEQNUM: ("sar_segment_seqnum", "u8", 1),
    Tag.CONGESTION_STATE: ("congestion_state", "u8", 1),
    Tag.SC_INTERFACE_VERSION: ("sc_interface_version", "u8", 1),
    Tag.SOURCE_PORT: ("source_port", "u16", 2),
    Tag.DESTINATION_PORT: ("destination_port", "u16", 2),
    Tag.DEST_ADDR_SUBUNIT: ("dest_addr_subunit", "u8", 1),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Pdu:
    """Common header fields. ``command_length`` is derived by the encoder."""

    command_id: ClassVar[int]
    BODY: ClassVar[tuple[FieldSpec, ...]] = ()
    HAS_TLVS: ClassVar[bool] = False

    sequence_number: int = 0
    command_status: int = 0

    @classmethod
    def is_response(cls) -> bool:
        return bool(cls.command_id & RESPONSE_BIT)


@dataclass(frozen=True, slots=True, kw_only=True)
class GenericNack(Pdu):
    command_id: ClassVar[int] = CommandId.GENERIC_NACK


@dataclass(frozen=True, slots=True, kw_only=True)
class EnquireLink(Pdu):
    command_id: ClassVar[int] = CommandId.ENQUIRE_LINK


@dataclass(frozen=True, slots=True, kw_only=True)
class EnquireLinkResp(Pdu):
    command_id: ClassVar[int] = CommandId.ENQUIRE_LINK_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class Unbind(Pdu):
    command_id: ClassVar[int] = CommandId.UNBIND


@dataclass(frozen=True, slots=True, kw_only=True)
class UnbindResp(Pdu):
    command_id: ClassVar[int] = CommandId.UNBIND_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class _BindRequest(Pdu):
    BODY: ClassVar[tuple[FieldSpec, ...]] = _BIND_BODY

    system_id: str = ""
    password: str = ""
    system_type: str = ""
    interface_version: int = INTERFACE_VERSION_34
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class BindTransmitter(_BindRequest):
    command_id: ClassVar[int] = CommandId.BIND_TRANSMITTER


@dataclass(frozen=True, slots=True, kw_only=True)
class BindReceiver(_BindRequest):
    command_id: ClassVar[int] = CommandId.BIND_RECEIVER


@dataclass(frozen=True, slots=True, kw_only=True)
class BindTransceiver(_BindRequest):
    command_id: ClassVar[int] = CommandId.BIND_TRANSCEIVER


@dataclass(frozen=True, slots=True, kw_only=True)
class _BindResponse(Pdu):
    BODY: ClassVar[tuple[FieldSpec, ...]] = (("system_id", "cstr", 16),)
    HAS_TLVS: ClassVar[bool] = True

    system_id: str = ""
    tlvs: Tlvs = NO_TLVS


@dataclass(frozen=True, slots=True, kw_only=True)
class BindTransmitterResp(_BindResponse):
    command_id: ClassVar[int] = CommandId.BIND_TRANSMITTER_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class BindReceiverResp(_BindResponse):
    command_id: ClassVar[int] = CommandId.BIND_RECEIVER_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class BindTransceiverResp(_BindResponse):
    command_id: ClassVar[int] = CommandId.BIND_TRANSCEIVER_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class Outbind(Pdu):
    command_id: ClassVar[int] = CommandId.OUTBIND
    BODY: ClassVar[tuple[FieldSpec, ...]] = (("system_id", "cstr", 16), ("password", "cstr", 9))

    system_id: str = ""
    password: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class _ShortMessage(Pdu):
    BODY: ClassVar[tuple[FieldSpec, ...]] = _SM_BODY
    HAS_TLVS: ClassVar[bool] = True

    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""
    tlvs: Tlvs = NO_TLVS


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitSm(_ShortMessage):
    command_id: ClassVar[int] = CommandId.SUBMIT_SM


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliverSm(_ShortMessage):
    command_id: ClassVar[int] = CommandId.DELIVER_SM


@dataclass(frozen=True, slots=True, kw_only=True)
class _MessageIdResponse(Pdu):
    BODY: ClassVar[tuple[FieldSpec, ...]] = (("message_id", "cstr", 65),)
    HAS_TLVS: ClassVar[bool] = True  # SMPP v5.0 lets responses carry TLVs

    message_id: str = ""
    tlvs: Tlvs = NO_TLVS


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitSmResp(_MessageIdResponse):
    command_id: ClassVar[int] = CommandId.SUBMIT_SM_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliverSmResp(_MessageIdResponse):
    command_id: ClassVar[int] = CommandId.DELIVER_SM_RESP


ALL_PDU_TYPES: tuple[type[Pdu], ...] = (
    GenericNack,
    EnquireLink,
    EnquireLinkResp,
    Unbind,
    UnbindResp,
    BindTransmitter,
    BindTransmitterResp,
    BindReceiver,
    BindReceiverResp,
    BindTransceiver,
    BindTransceiverResp,
    Outbind,
    SubmitSm,
    SubmitSmResp,
    DeliverSm,
    DeliverSmResp,
)

PDU_BY_COMMAND_ID: dict[int, type[Pdu]] = {cls.command_id: cls for cls in ALL_PDU_TYPES}

BindRequest = BindTransmitter | BindReceiver | BindTransceiver
BindResponse = BindTransmitterResp | BindReceiverResp | BindTransceiverResp
