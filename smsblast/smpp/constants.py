"""SMPP v3.4 numbers: command ids, command_status codes, TLV tags and field limits.

One table per fact; everything else in the package derives from these.
"""

from __future__ import annotations

import enum


class CommandId(enum.IntEnum):
    GENERIC_NACK = 0x80000000
    BIND_RECEIVER = 0x00000001
    BIND_RECEIVER_RESP = 0x80000001
    BIND_TRANSMITTER = 0x00000002
    BIND_TRANSMITTER_RESP = 0x80000002
    SUBMIT_SM = 0x00000004
    SUBMIT_SM_RESP = 0x80000004
    DELIVER_SM = 0x00000005
    DELIVER_SM_RESP = 0x80000005
    UNBIND = 0x00000006
    UNBIND_RESP = 0x80000006
    BIND_TRANSCEIVER = 0x00000009
    BIND_TRANSCEIVER_RESP = 0x80000009
    OUTBIND = 0x0000000B
    ENQUIRE_LINK = 0x00000015
    ENQUIRE_LINK_RESP = 0x80000015


RESPONSE_BIT = 0x80000000


class Status(enum.IntEnum):
    """command_status codes (SMPP v3.4 section 5.1.3)."""

    ROK = 0x00
    RINVMSGLEN = 0x01
    RINVCMDLEN = 0x02
    RINVCMDID = 0x03
    RINVBNDSTS = 0x04
    RALYBND = 0x05
    RINVPRTFLG = 0x06
    RINVREGDLVFLG = 0x07
    RSYSERR = 0x08
    RINVSRCADR = 0x0A
    RINVDSTADR = 0x0B
    RINVMSGID = 0x0C
    RBINDFAIL = 0x0D
    RINVPASWD = 0x0E
    RINVSYSID = 0x0F
    RMSGQFUL = 0x14
    RINVSERTYP = 0x15
    RINVESMCLASS = 0x43
    RSUBMITFAIL = 0x45
    RINVSRCTON = 0x48
    RINVSRCNPI = 0x49
    RINVDSTTON = 0x50
    RINVDSTNPI = 0x51
    RINVSYSTYP = 0x53
    RTHROTTLED = 0x58
    RINVSCHED = 0x61
    RINVEXPIRY = 0x62
    RX_T_APPN = 0x64
    RX_P_APPN = 0x65
    RX_R_APPN = 0x66
    RINVOPTPARSTREAM = 0xC0
    ROPTPARNOTALLWD = 0xC1
    RINVPARLEN = 0xC2
    RMISSINGOPTPARAM = 0xC3
    RINVOPTPARAMVAL = 0xC4
    RDELIVERYFAILURE = 0xFE
    RUNKNOWNERR = 0xFF


#: Retried by Kannel and Jasmin alike: the message may succeed later on the same bind.
TRANSIENT_STATUSES = frozenset(
    {Status.RTHROTTLED, Status.RMSGQFUL, Status.RSYSERR, Status.RX_T_APPN}
)
#: Bind failures: back off before reconnecting, never in a tight loop.
BIND_FAILURE_STATUSES = frozenset({Status.RBINDFAIL, Status.RINVPASWD, Status.RINVSYSID})


def status_name(code: int) -> str:
    """Return 'ESME_RTHROTTLED'-style name for a status code, or hex for vendor codes."""
    try:
        return "ESME_" + Status(code).name
    except ValueError:
        return f"0x{code:08X}"


class Tag(enum.IntEnum):
    """Optional parameter (TLV) tags this codec types; others are preserved raw."""

    DEST_ADDR_SUBUNIT = 0x0005
    SOURCE_PORT = 0x020A
    DESTINATION_PORT = 0x020B
    SC_INTERFACE_VERSION = 0x0210
    RECEIPTED_MESSAGE_ID = 0x001E
    USER_MESSAGE_REFERENCE = 0x0204
    SAR_MSG_REF_NUM = 0x020C
    SAR_TOTAL_SEGMENTS = 0x020E
    SAR_SEGMENT_SEQNUM = 0x020F
    NETWORK_ERROR_CODE = 0x0423
    MESSAGE_PAYLOAD = 0x0424
    MESSAGE_STATE = 0x0427
    CONGESTION_STATE = 0x0428


class Ton(enum.IntEnum):
    UNKNOWN = 0
    INTERNATIONAL = 1
    NATIONAL = 2
    NETWORK_SPECIFIC = 3
    SUBSCRIBER = 4
    ALPHANUMERIC = 5
    ABBREVIATED = 6


class Npi(enum.IntEnum):
    UNKNOWN = 0
    ISDN = 1


ESM_CLASS_DELIVERY_RECEIPT = 0x04
ESM_CLASS_UDHI = 0x40
INTERFACE_VERSION_34 = 0x34

HEADER_LENGTH = 16
DEFAULT_MAX_PDU_LENGTH = 64 * 1024
MAX_SEQUENCE = 0x7FFFFFFF
MAX_SHORT_MESSAGE = 254

#: C-string field limits, counting the terminating NUL (SMPP v3.4 section 4).
FIELD_MAX = {
    "system_id": 16,
    "password": 9,
    "system_type": 13,
    "address_range": 41,
    "service_type": 6,
    "source_addr": 21,
    "destination_addr": 21,
    "schedule_delivery_time": 17,
    "validity_period": 17,
    "message_id": 65,
}
