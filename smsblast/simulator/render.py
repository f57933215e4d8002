"""Pure byte builders for the simulator's hot path: message ids, submit_sm_resp, receipt
text, deliver_sm bodies, and the (destination, text) key used for duplicate counting.

Everything here is deterministic and free of I/O; ``tests/test_simulator_unit.py`` checks the
bytes against the generic codec (:func:`smsblast.smpp.codec.encode`).
"""

from __future__ import annotations

import struct
import time
from typing import Literal

from smsblast.smpp.constants import ESM_CLASS_DELIVERY_RECEIPT, ESM_CLASS_UDHI, CommandId, Tag

__all__ = [
    "MinuteClock",
    "ReceiptFactory",
    "deliver_sm_body",
    "format_id",
    "guess_ton_npi",
    "id_format_spec",
    "message_key",
    "receipt_text",
    "receipt_text_sample",
    "submit_sm_resp",
]

_HEADER = struct.Struct(">IIII")
_pack_header = _HEADER.pack
_SUBMIT_SM_RESP = int(CommandId.SUBMIT_SM_RESP)
_TLV_HEADER = struct.Struct(">HH")
_MESSAGE_STATE_TLV = _TLV_HEADER.pack(Tag.MESSAGE_STATE, 1)
_RECEIPTED_ID_TAG = int(Tag.RECEIPTED_MESSAGE_ID)

#: Octets kept as they are in a receipt's ``text:`` field; the rest become ``?``.
_PRINTABLE = bytes(b if 0x20 <= b < 0x7F else 0x3F for b in range(256))


def id_format_spec(fmt: Literal["hex", "dec"], hex_width: int, dec_width: int) -> str:
    """The :func:`format` spec that writes a message-id counter in ``fmt``."""
    if fmt == "hex":
        return f"0{hex_width}X"
    return f"0{dec_width}d" if dec_width else "d"


def format_id(counter: int, spec: str) -> str:
    """``format_id(0x04000000086ECD50, "016X") == "04000000086ECD50"``."""
    return format(counter, spec)


def submit_sm_resp(sequence_number: int, status: int, message_id: bytes) -> bytes:
    """A whole submit_sm_resp; error responses carry no body (SMPP v3.4 section 4.4.2)."""
    if status:
        return _pack_header(16, _SUBMIT_SM_RESP, status, sequence_number)
    return _pack_header(17 + len(message_id), _SUBMIT_SM_RESP, 0, sequence_number) + (
        message_id + b"\x00"
    )


def guess_ton_npi(addr: str) -> tuple[int, int]:
    """TON/NPI for an address: digits -> international/ISDN, text -> alphanumeric."""
    if not addr:
        return 0, 0
    if addr.isdigit() or (addr[0] == "+" and addr[1:].isdigit()):
        return 1, 1
    return 5, 0


def _ton_npi_bytes(addr: str) -> bytes:
    return _TON_NPI_BYTES[guess_ton_npi(addr)]


_TON_NPI_BYTES = {pair: bytes(pair) for pair in ((0, 0), (1, 1), (5, 0))}


def _udh_split(sm: bytes, esm_class: int) -> tuple[bytes, bytes]:
    """(segment tag, payload) of a short_message: the UDH is dropped and its
    concatenation element (8- or 16-bit reference) becomes ``b"seq/total"``."""
    if not esm_class & ESM_CLASS_UDHI or not sm:
        return b"", sm
    udhl = sm[0]
    udh = sm[1 : 1 + udhl]
    tag = b""
    i = 0
    while i + 2 <= len(udh):
        iei, iel = udh[i], udh[i + 1]
        data = udh[i + 2 : i + 2 + iel]
        if iei == 0x00 and iel == 3 and len(data) == 3:
            tag = b"%d/%d" % (data[2], data[1])
        elif iei == 0x08 and iel == 4 and len(data) == 4:
            tag = b"%d/%d" % (data[3], data[2])
        i += 2 + iel
    return tag, sm[1 + udhl :]


def message_key(
    destination: bytes,
    short_message: bytes,
    esm_class: int,
    payload: bytes | None = None,
    segment: tuple[int, int] | None = None,
) -> bytes:
    """What makes two submissions "the same message to the same number".

    The destination, the segment position (from the UDH or the sar_* TLVs) and the text
    without its UDH: a resend of a concatenated message with a fresh reference number is
    still a duplicate, while the segments of one message are not duplicates of each other.
    ``payload`` (the message_payload TLV) is used when the short_message is empty.
    """
    text = short_message if short_message or payload is None else payload
    tag, body = _udh_split(text, esm_class)
    if segment is not None:
        tag = b"%d/%d" % segment
    return b"".join((destination, b"\x00", tag, b"\x00", body))


def receipt_text_sample(short_message: bytes, esm_class: int, data_coding: int) -> bytes:
    """The first 20 characters of a message, as printable ASCII, for ``text:``."""
    _tag, body = _udh_split(short_message, esm_class)
    if data_coding == 8:  # UCS-2
        chars = body[:40].decode("utf-16-be", "replace")[:20]
        return chars.encode("ascii", "replace")
    return body[:20].translate(_PRINTABLE)


def receipt_text(
    message_id: str,
    stat: str,
    err: str,
    submit_date: str,
    done_date: str,
    text: bytes,
) -> bytes:
    """``id:<id> sub:001 dlvrd:001 submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DELIVRD
    err:000 text:<first 20 chars>`` (one line; ``dlvrd`` is 001 only for DELIVRD)."""
    dlvrd = "001" if stat == "DELIVRD" else "000"
    head = (
        f"id:{message_id} sub:001 dlvrd:{dlvrd} submit date:{submit_date} "
        f"done date:{done_date} stat:{stat} err:{err} text:"
    )
    return head.encode("ascii") + text


def deliver_sm_body(
    source_addr: str,
    destination_addr: str,
    short_message: bytes,
    receipted_message_id: str | None,
    message_state: int | None,
) -> bytes:
    """Body of a delivery receipt deliver_sm (esm_class 0x04), header not included.

    ``source_addr`` is the handset (the original destination), ``destination_addr`` the
    original sender. TON/NPI come from :func:`guess_ton_npi`. The TLVs are added when given.
    """
    parts = [
        b"\x00",  # service_type
        _ton_npi_bytes(source_addr),
        source_addr.encode("latin-1"),
        b"\x00",
        _ton_npi_bytes(destination_addr),
        destination_addr.encode("latin-1"),
        _FIXED_MIDDLE,
        bytes((len(short_message),)),
        short_message,
    ]
    if receipted_message_id is not None:
        raw = receipted_message_id.encode("ascii") + b"\x00"
        parts.append(_TLV_HEADER.pack(_RECEIPTED_ID_TAG, len(raw)) + raw)
    if message_state is not None:
        parts.append(_MESSAGE_STATE_TLV + bytes((message_state,)))
    return b"".join(parts)


# NUL of destination_addr, esm_class, protocol_id, priority_flag, schedule_delivery_time,
# validity_period, registered_delivery, replace_if_present_flag, data_coding,
# sm_default_msg_id
_FIXED_MIDDLE = b"\x00" + bytes((ESM_CLASS_DELIVERY_RECEIPT,)) + b"\x00" * 8


class MinuteClock:
    """``b"YYMMDDhhmm"`` of a wall-clock time (local time), formatted once per minute."""

    __slots__ = ("_minute", "_text")

    def __init__(self) -> None:
        self._minute = -1
        self._text = b""

    def __call__(self, wall: float) -> bytes:
        minute = int(wall // 60)
        if minute != self._minute:
            self._minute = minute
            self._text = time.strftime("%y%m%d%H%M", time.localtime(minute * 60)).encode()
        return self._text


class ReceiptFactory:
    """Hot-path twin of :func:`receipt_text` + :func:`deliver_sm_body` (same bytes).

    One ``%`` format per receipt; the sender-dependent middle of the body (TON/NPI,
    address, fixed fields) is cached per sender, since a campaign has few.
    """

    __slots__ = ("_senders", "tlvs")

    _CACHE_MAX = 4096

    def __init__(self, tlvs: bool) -> None:
        self.tlvs = tlvs
        self._senders: dict[str, bytes] = {}

    def _middle(self, sender: str) -> bytes:
        middle = self._senders.get(sender)
        if middle is None:
            if len(self._senders) >= self._CACHE_MAX:
                self._senders.clear()
            middle = b"\x00" + _ton_npi_bytes(sender) + sender.encode("latin-1") + _FIXED_MIDDLE
            self._senders[sender] = middle
        return middle

    def body(
        self,
        handset: str,
        sender: str,
        message_id: bytes,
        stat: bytes,
        err: bytes,
        submit_date: bytes,
        done_date: bytes,
        text: bytes,
        state: int,
    ) -> bytes:
        """The deliver_sm body for one receipt (``handset`` = original destination)."""
        short_message = _RECEIPT_FORMAT % (
            message_id,
            b"001" if stat == b"DELIVRD" else b"000",
            submit_date,
            done_date,
            stat,
            err,
            text,
        )
        head = b"\x00\x01\x01" if handset.isdigit() else b"\x00" + _ton_npi_bytes(handset)
        parts = [
            head,
            handset.encode("latin-1"),
            self._middle(sender),
            bytes((len(short_message),)),
            short_message,
        ]
        if self.tlvs:
            parts.append(_TLV_HEADER.pack(_RECEIPTED_ID_TAG, len(message_id) + 1))
            parts.append(message_id)
            parts.append(b"\x00" + _MESSAGE_STATE_TLV + bytes((state,)))
        return b"".join(parts)


_RECEIPT_FORMAT = b"id:%s sub:001 dlvrd:%s submit date:%s done date:%s stat:%s err:%s text:%s"
