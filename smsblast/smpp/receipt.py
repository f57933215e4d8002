"""Delivery receipts (deliver_sm with esm_class 0x04) and message-id correlation keys.

Theory of operation
-------------------
An SMSC reports the fate of a submitted message in a deliver_sm whose short_message is a
vendor-specific text, usually::

    id:<id> sub:001 dlvrd:001 submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DELIVRD
    err:000 text:first twenty chars

and, sometimes, the same facts in the ``receipted_message_id`` (0x001E) and ``message_state``
(0x0427) TLVs. :func:`parse_receipt_text` reads the text tolerantly (keys in any case and any
order, unknown extra fields, 10- or 12-digit dates, ``Text:``, missing optional fields);
:func:`receipt_from_deliver` combines the text with the TLVs, the TLVs winning.

Message ids are kept verbatim (leading zeros and case included) in :class:`Receipt`. To match a
receipt with its submit_sm_resp when the SMSC writes the id in hex in one and in decimal in the
other, both sides go through :func:`normalize_message_id`, which yields a correlation key.

Everything here is pure: no I/O, no clock.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

__all__ = [
    "IdFormat",
    "Receipt",
    "ReceiptParseError",
    "ReceiptState",
    "id_normalizer",
    "is_final",
    "normalize_message_id",
    "parse_receipt_text",
    "receipt_from_deliver",
    "stat_from_text",
    "stat_text",
]


class ReceiptState(enum.IntEnum):
    """SMPP ``message_state`` values (v3.4 section 5.2.28); same numbers as the TLV."""

    ENROUTE = 1
    DELIVERED = 2
    EXPIRED = 3
    DELETED = 4
    UNDELIVERABLE = 5
    ACCEPTED = 6
    UNKNOWN = 7
    REJECTED = 8


# The one table of 7-character stat codes; the reverse mapping is derived from it.
_STAT_TEXT: dict[ReceiptState, str] = {
    ReceiptState.ENROUTE: "ENROUTE",
    ReceiptState.DELIVERED: "DELIVRD",
    ReceiptState.EXPIRED: "EXPIRED",
    ReceiptState.DELETED: "DELETED",
    ReceiptState.UNDELIVERABLE: "UNDELIV",
    ReceiptState.ACCEPTED: "ACCEPTD",
    ReceiptState.UNKNOWN: "UNKNOWN",
    ReceiptState.REJECTED: "REJECTD",
}

_TEXT_STAT: dict[str, ReceiptState] = {
    **{state.name: state for state in ReceiptState},  # DELIVERED, UNDELIVERABLE, ...
    # Non-standard "still buffered" codes that Kannel treats like ENROUTE/ACCEPTD.
    "BUFFRED": ReceiptState.ENROUTE,
    "BUFFERD": ReceiptState.ENROUTE,
    "ACKED": ReceiptState.ENROUTE,
    **{text: state for state, text in _STAT_TEXT.items()},
}

# ENROUTE and ACCEPTED are followed by further receipts in practice (Kannel maps both to
# "buffered"); every other state ends the message's life, UNKNOWN included.
_NON_FINAL: frozenset[ReceiptState] = frozenset({ReceiptState.ENROUTE, ReceiptState.ACCEPTED})


def stat_text(state: ReceiptState) -> str:
    """Return the 7-character receipt code for ``state`` (``DELIVERED`` -> ``"DELIVRD"``)."""
    return _STAT_TEXT[state]


def stat_from_text(code: str) -> ReceiptState:
    """Return the state for a receipt ``stat:`` code, case-insensitively.

    Accepts the seven-character codes (``DELIVRD``, ``UNDELIV`` ...), the full state names
    (``DELIVERED``) and Kannel's buffered codes (``BUFFRED``, ``ACKED`` -> ENROUTE).
    Anything else is :attr:`ReceiptState.UNKNOWN`; this function never raises.
    """
    return _TEXT_STAT.get(code.strip().upper(), ReceiptState.UNKNOWN)


def is_final(state: ReceiptState) -> bool:
    """True when no further receipt is expected for the message.

    ENROUTE and ACCEPTED are intermediate (SMSCs commonly send ACCEPTD before DELIVRD);
    DELIVERED, EXPIRED, DELETED, UNDELIVERABLE, UNKNOWN and REJECTED are final.
    """
    return state not in _NON_FINAL


class ReceiptParseError(ValueError):
    """A delivery receipt lacks an id or a stat, so it cannot be correlated or classified."""


@dataclass(frozen=True, slots=True)
class Receipt:
    """One delivery receipt.

    ``message_id`` is the id exactly as the SMSC sent it (leading zeros kept); use
    :func:`normalize_message_id` to get a key for matching. ``submitted``/``delivered`` are
    the ``sub``/``dlvrd`` counts, ``error`` is the ``err`` field verbatim, the dates are naive
    (receipts carry no time zone) and ``None`` when absent or unparseable.
    """

    message_id: str
    state: ReceiptState
    submitted: int | None = None
    delivered: int | None = None
    submit_date: datetime | None = None
    done_date: datetime | None = None
    error: str | None = None
    text: str = ""


# --- text scanning -------------------------------------------------------------------------

# A key starts at the beginning of the body or after whitespace. "submit date"/"done date" are
# the only keys with a space; everything else is one word. The first text key ends the scan:
# the text field runs to the end of the body and may contain colons and spaces.
_KEY = re.compile(
    r"(?<!\S)(submit[\s_]*date|done[\s_]*date|[A-Za-z][A-Za-z0-9_]*)\s*:", re.IGNORECASE
)
_KEY_JUNK = re.compile(r"[\s_]+")
_DATE = re.compile(r"[0-9]{10}(?:[0-9]{2})?")
_UINT = re.compile(r"[0-9]{1,18}")  # bounded: int() refuses very long digit strings
_STATE_VALUES: frozenset[int] = frozenset(int(state) for state in ReceiptState)


class _Fields(NamedTuple):
    """Whatever the text provided; ``None`` means the key was absent."""

    message_id: str | None
    stat: str | None
    sub: str | None
    dlvrd: str | None
    submit_date: str | None
    done_date: str | None
    err: str | None
    text: str


def _scan(body: str) -> _Fields:
    body = body.replace("\x00", "")  # C-string terminators, or UCS-2 high bytes of ASCII
    values: dict[str, str] = {}
    text = ""
    previous: re.Match[str] | None = None
    previous_name = ""
    for key in _KEY.finditer(body):
        if previous is not None:
            _store(values, previous_name, body[previous.end() : key.start()])
        name = key.group(1).lower()
        if name == "text":
            text = body[key.end() :]
            previous = None
            break
        if len(name) > 5:  # "submit date", "submit_date" and "submitdate" are one key
            name = _KEY_JUNK.sub("", name)
        previous, previous_name = key, name
    if previous is not None:
        _store(values, previous_name, body[previous.end() :])

    return _Fields(
        message_id=values.get("id"),
        stat=values.get("stat"),
        sub=values.get("sub"),
        dlvrd=values.get("dlvrd"),
        submit_date=values.get("submitdate"),
        done_date=values.get("donedate"),
        err=values.get("err"),
        text=text,
    )


def _store(values: dict[str, str], name: str, raw_value: str) -> None:
    # First occurrence wins; a value is one token (anything after it is unkeyed junk).
    if name not in values:
        tokens = raw_value.split(maxsplit=1)
        values[name] = tokens[0] if tokens else ""


def _count(value: str | None) -> int | None:
    return int(value) if value is not None and _UINT.fullmatch(value) else None


def _date(value: str | None) -> datetime | None:
    """YYMMDDhhmm or YYMMDDhhmmss (years 2000-2099) as a naive datetime; None if invalid."""
    if value is None or not _DATE.fullmatch(value):
        return None
    try:
        return datetime(
            2000 + int(value[0:2]),
            int(value[2:4]),
            int(value[4:6]),
            int(value[6:8]),
            int(value[8:10]),
            int(value[10:12] or 0),
        )
    except ValueError:  # month 13, February 30, hour 25 ...
        return None


def _build(fields: _Fields, message_id: str, state: ReceiptState) -> Receipt:
    return Receipt(
        message_id=message_id,
        state=state,
        submitted=_count(fields.sub),
        delivered=_count(fields.dlvrd),
        submit_date=_date(fields.submit_date),
        done_date=_date(fields.done_date),
        error=fields.err,
        text=fields.text,
    )


def parse_receipt_text(text: str) -> Receipt:
    """Parse the text of a delivery receipt.

    Keys are matched case-insensitively, in any order, and unknown keys are ignored; each value
    is the first whitespace-separated token after its key, except ``text:``, which runs to the
    end of the body (colons and spaces included). The id is kept verbatim. A ``stat:`` value
    that is not a known code gives :attr:`ReceiptState.UNKNOWN`.

    Raises:
        ReceiptParseError: the body has no (non-empty) ``id:`` or no ``stat:`` field.
    """
    fields = _scan(text)
    if not fields.message_id:
        raise ReceiptParseError("delivery receipt has no id field")
    if fields.stat is None:
        raise ReceiptParseError("delivery receipt has no stat field")
    return _build(fields, fields.message_id, stat_from_text(fields.stat))


def receipt_from_deliver(
    short_message: bytes, receipted_message_id: str | None, message_state: int | None
) -> Receipt:
    """Build a receipt from a deliver_sm's short_message and its optional TLVs.

    The body is decoded as Latin-1 (a superset of ASCII that cannot fail). The
    ``receipted_message_id`` TLV, when present and non-empty, is used instead of the text id;
    the ``message_state`` TLV, when it holds a known state (1-8), is used instead of the text
    stat. A ``message_state`` outside 1-8 yields to a text stat, else gives UNKNOWN. With both
    TLVs present a receipt is returned even when the body is not a receipt text at all.

    Raises:
        ReceiptParseError: no id in either the TLV or the text, or no state in either.
    """
    fields = _scan(short_message.decode("latin-1"))

    tlv_id = (receipted_message_id or "").strip("\x00 \t\r\n")
    message_id = tlv_id or fields.message_id
    if not message_id:
        raise ReceiptParseError("delivery receipt has no receipted_message_id TLV and no id field")

    if message_state is not None and message_state in _STATE_VALUES:
        state = ReceiptState(message_state)
    elif fields.stat is not None:
        state = stat_from_text(fields.stat)
    elif message_state is not None:
        state = ReceiptState.UNKNOWN
    else:
        raise ReceiptParseError("delivery receipt has no message_state TLV and no stat field")
    return _build(fields, message_id, state)


# --- message-id correlation ----------------------------------------------------------------


class IdFormat(enum.StrEnum):
    """How an SMSC writes a message id in a given place (submit_sm_resp or receipt).

    A ``str`` subclass, so ``IdFormat.HEX == "hex"`` and ``str(IdFormat.HEX) == "hex"``.
    """

    HEX = "hex"
    DEC = "dec"


_DEC_ID = re.compile(r"[0-9]+")
_HEX_ID = re.compile(r"[0-9A-Fa-f]+")


def normalize_message_id(raw: str, fmt: IdFormat) -> str:
    """Return the correlation key for a message id written in format ``fmt``.

    Numeric ids become their integer value as a decimal string, so the hex and decimal
    spellings of one id meet at one key: hex ``04000000086ECD50`` and decimal
    ``288230376293190992`` both give ``"288230376293190992"``. Surrounding whitespace is
    ignored and hex digits are case-insensitive.

    Leading zeros: the key drops them, on purpose. Decimal ``0221067780`` and ``221067780``
    are the same key, because an SMSC that pads an id in one PDU and not in the other means
    the same message. The key is only for matching; store and show the raw id verbatim
    (``Receipt.message_id`` keeps the zeros).

    Ids that are not numbers in ``fmt`` (alphanumeric, UUID-like, empty) are returned
    stripped and otherwise unchanged, case included, so they still match themselves. Such a
    key always contains a non-digit (or is empty), so it can never collide with a numeric key.
    (A hex id too long for Python to print in decimal, thousands of digits, gets the key
    ``"0x" + lowercase hex``; no SMSC id is that long, as message_id is at most 64 octets.)
    """
    return _NORMALIZERS[IdFormat(fmt)](raw)  # IdFormat() also takes "hex"/"dec"; else ValueError


def id_normalizer(fmt: IdFormat) -> Callable[[str], str]:
    """:func:`normalize_message_id` for one format, as a function of the id alone: the
    engine keys two ids per part sent, and converting the format each time showed in its
    profile."""
    return _NORMALIZERS[IdFormat(fmt)]


def _normalize_dec(raw: str) -> str:
    stripped = raw.strip()
    if _DEC_ID.fullmatch(stripped):
        return stripped.lstrip("0") or "0"  # exact for any length, unlike int()
    return stripped


def _normalize_hex(raw: str) -> str:
    stripped = raw.strip()
    if _HEX_ID.fullmatch(stripped):
        try:
            return str(int(stripped, 16))
        except ValueError:  # past Python's int-to-str digit limit; no real id is this long
            return "0x" + stripped.lower()
    return stripped


_NORMALIZERS: dict[IdFormat, Callable[[str], str]] = {
    IdFormat.DEC: _normalize_dec,
    IdFormat.HEX: _normalize_hex,
}
