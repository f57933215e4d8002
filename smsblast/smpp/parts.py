"""From a split message (smpp.text) to what each submit_sm carries.

A part becomes its short_message, the esm_class (UDHI set when the part carries
a UDH), the data_coding and its encoded TLVs (SAR numbering or
message_payload). ``smsblast send`` and the engine both send through this.
"""

from __future__ import annotations

from typing import NamedTuple

from smsblast.smpp.codec import encode_tlvs
from smsblast.smpp.constants import ESM_CLASS_UDHI
from smsblast.smpp.pdu import Tlvs
from smsblast.smpp.text import EncodedMessage


class PartSpec(NamedTuple):
    """One submit_sm's worth of a message."""

    short_message: bytes
    esm_class: int
    data_coding: int
    tlvs: bytes


def submit_parts(encoded: EncodedMessage) -> tuple[PartSpec, ...]:
    specs = []
    for part in encoded.parts:
        tlvs = b""
        if part.sar is not None:
            ref, total, seq = part.sar
            tlvs = encode_tlvs(
                Tlvs(sar_msg_ref_num=ref, sar_total_segments=total, sar_segment_seqnum=seq)
            )
        elif part.payload is not None:
            tlvs = encode_tlvs(Tlvs(message_payload=part.payload))
        specs.append(
            PartSpec(
                part.short_message,
                ESM_CLASS_UDHI if part.esm_class_udhi else 0,
                encoded.data_coding,
                tlvs,
            )
        )
    return tuple(specs)
