"""Text encoding and segmentation for SMPP short messages.

Pure functions only: no I/O, no clocks, no network.

* GSM 03.38 default alphabet (+ extension table) as *unpacked* septets, one septet per
  octet, which is what SMPP ``data_coding = 0`` carries in ``short_message``. An extension
  character is the two octets ``ESC (0x1B), code``.
* UCS-2 as UTF-16BE (``data_coding = 8``); characters outside the BMP become surrogate pairs
  and therefore cost two code units.
* Segmentation into concatenated parts with an 8-bit or 16-bit reference UDH, SAR TLVs, or a
  single ``message_payload`` TLV. Extension pairs and surrogate pairs are never split.

Capacities (units are septets for GSM-7 and UTF-16 code units for UCS-2):

=========  ==========  ===================================================
encoding   one part    per part of a concatenated message
=========  ==========  ===================================================
GSM-7      160         153 (udh8, 6-octet UDH = 7 septets), 152 (udh16,
                       7-octet UDH = 8 septets), 153 (sar)
UCS-2      70          67 (udh8), 66 (udh16), 67 (sar)
=========  ==========  ===================================================

SAR parts carry no UDH in the PDU, but the SMSC has to add a concatenation UDH to every
segment it sends over the air (TP-UD is at most 140 octets), so SAR parts are sized like
``udh8`` parts. This matches what Jasmin does for ``long_content_split = sar``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "GSM7_BASIC_CHARS",
    "GSM7_ESCAPE",
    "GSM7_EXTENSION_CHARS",
    "MAX_PARTS",
    "MAX_PAYLOAD_OCTETS",
    "ConcatMode",
    "EncodedMessage",
    "Encoding",
    "EncodingPolicy",
    "Part",
    "PayloadTooLongError",
    "TextDecodingError",
    "TextEncodingError",
    "TooManyPartsError",
    "choose_encoding",
    "count_parts",
    "gsm7_decode",
    "gsm7_encode",
    "gsm7_length",
    "is_gsm7",
    "split_message",
    "ucs2_decode",
    "ucs2_encode",
    "ucs2_length",
]

EncodingPolicy = Literal["auto", "gsm7", "ucs2"]
ConcatMode = Literal["udh8", "udh16", "sar", "payload"]

GSM7_ESCAPE: Final = 0x1B
"""The escape septet that introduces an extension-table character."""

MAX_PARTS: Final = 255
"""Hard limit of the concatenation schemes: total and seq are single octets."""

MAX_PAYLOAD_OCTETS: Final = 0xFFFF
"""The message_payload TLV length field is 16 bits."""

# GSM 03.38 default alphabet, indexed by septet value. Position 0x1B is the escape code and
# has no character of its own; the placeholder below is never used for lookups.
_GSM7_BASIC_TABLE: Final = (
    "@\u00a3$\u00a5\u00e8\u00e9\u00f9\u00ec\u00f2\u00c7\n\u00d8\u00f8\r\u00c5\u00e5"
    "\u0394_\u03a6\u0393\u039b\u03a9\u03a0\u03a8\u03a3\u0398\u039e\x1b\u00c6\u00e6\u00df\u00c9"
    " !\"#\u00a4%&'()*+,-./"
    "0123456789:;<=>?"
    "\u00a1ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZ\u00c4\u00d6\u00d1\u00dc\u00a7"
    "\u00bfabcdefghijklmno"
    "pqrstuvwxyz\u00e4\u00f6\u00f1\u00fc\u00e0"
)
assert len(_GSM7_BASIC_TABLE) == 128

# Extension table: character -> code that follows ESC.
_GSM7_EXTENSION: Final[dict[str, int]] = {
    "\x0c": 0x0A,  # form feed
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "\u20ac": 0x65,  # euro sign
}

GSM7_BASIC_CHARS: Final[frozenset[str]] = frozenset(
    ch for code, ch in enumerate(_GSM7_BASIC_TABLE) if code != GSM7_ESCAPE
)
"""Characters of the default alphabet (one septet each)."""

GSM7_EXTENSION_CHARS: Final[frozenset[str]] = frozenset(_GSM7_EXTENSION)
"""Characters of the extension table (two septets each)."""

_GSM7_ALL_CHARS: Final[frozenset[str]] = GSM7_BASIC_CHARS | GSM7_EXTENSION_CHARS

# str.translate table: character -> its septet(s) as code points 0..127, so the result can
# be turned into bytes with a plain latin-1 encode.
_ENCODE_TABLE: Final[dict[int, str]] = {
    **{ord(ch): chr(code) for code, ch in enumerate(_GSM7_BASIC_TABLE) if code != GSM7_ESCAPE},
    **{ord(ch): chr(GSM7_ESCAPE) + chr(code) for ch, code in _GSM7_EXTENSION.items()},
}

# Decoding tables: septet -> character, and extension code -> character.
_DECODE_BASIC: Final[dict[int, str]] = {
    code: ch for code, ch in enumerate(_GSM7_BASIC_TABLE) if code != GSM7_ESCAPE
}
_DECODE_EXTENSION: Final[dict[int, str]] = {code: ch for ch, code in _GSM7_EXTENSION.items()}

# What a receiver shows for a lone ESC (no extension table / nothing follows) and for
# ESC ESC (reserved for a further extension table): a space, per GSM 03.38 6.2.1.
_ESC_DISPLAY: Final = " "


class TextEncodingError(ValueError):
    """A character cannot be represented in the requested encoding."""

    def __init__(self, char: str, index: int, encoding: str) -> None:
        self.char = char
        self.index = index
        self.encoding = encoding
        super().__init__(
            f"character {char!r} (U+{ord(char):04X}) at index {index} "
            f"is not representable in {encoding}"
        )


class TextDecodingError(ValueError):
    """Octets that are not a valid encoding of any text."""

    def __init__(self, reason: str, index: int) -> None:
        self.reason = reason
        self.index = index
        super().__init__(f"{reason} at octet {index}")


class TooManyPartsError(ValueError):
    """The message would need more parts than allowed."""

    def __init__(self, parts: int, limit: int) -> None:
        self.parts = parts
        self.limit = limit
        super().__init__(f"message needs {parts} parts, limit is {limit}")


class PayloadTooLongError(ValueError):
    """The encoded message does not fit in one message_payload TLV."""

    def __init__(self, octets: int) -> None:
        self.octets = octets
        super().__init__(
            f"encoded message is {octets} octets, message_payload holds {MAX_PAYLOAD_OCTETS}"
        )


class Encoding(enum.IntEnum):
    """Message encodings; the value is the SMPP ``data_coding``."""

    GSM7 = 0x00
    UCS2 = 0x08


# Capacity of a message sent as one part, in units (septets / UTF-16 code units).
_SINGLE_CAPACITY: Final[dict[Encoding, int]] = {Encoding.GSM7: 160, Encoding.UCS2: 70}

# Per-part capacity of a concatenated message, in units. A UDH of N octets (length octet
# included) costs ceil(8 * N / 7) septets in GSM-7 and ceil(N / 2) code units in UCS-2.
_PART_CAPACITY: Final[dict[tuple[Encoding, str], int]] = {
    (Encoding.GSM7, "udh8"): 160 - 7,  # 6-octet UDH
    (Encoding.GSM7, "udh16"): 160 - 8,  # 7-octet UDH
    (Encoding.GSM7, "sar"): 160 - 7,  # SMSC adds an 8-bit-ref UDH over the air
    (Encoding.UCS2, "udh8"): 70 - 3,
    (Encoding.UCS2, "udh16"): 70 - 4,
    (Encoding.UCS2, "sar"): 70 - 3,
}


@dataclass(frozen=True, slots=True)
class Part:
    """One submit_sm worth of message.

    ``short_message`` is what goes into the PDU's short_message field (UDH first when
    ``esm_class_udhi`` is set). ``sar`` is ``(ref, total, seq)`` for the SAR TLVs.
    ``payload`` is the message_payload TLV value (``short_message`` is then empty).
    """

    short_message: bytes
    esm_class_udhi: bool = False
    sar: tuple[int, int, int] | None = None
    payload: bytes | None = None


@dataclass(frozen=True, slots=True)
class EncodedMessage:
    """A message encoded and split into the parts to submit, in order."""

    encoding: Encoding
    data_coding: int
    parts: tuple[Part, ...]


# --------------------------------------------------------------------------- GSM 03.38


def _first_non_gsm7(text: str) -> int:
    for index, ch in enumerate(text):
        if ch not in _GSM7_ALL_CHARS:
            return index
    return -1


def is_gsm7(text: str) -> bool:
    """True when every character of ``text`` is in the GSM 03.38 alphabet or extension."""
    return _GSM7_ALL_CHARS.issuperset(text)


def _require_gsm7(text: str) -> None:
    if not is_gsm7(text):
        index = _first_non_gsm7(text)
        raise TextEncodingError(text[index], index, "GSM 03.38")


def gsm7_length(text: str) -> int:
    """Length of ``text`` in septets (extension characters count two).

    Raises TextEncodingError when ``text`` is not GSM-7 representable.
    """
    _require_gsm7(text)
    return len(text) + sum(text.count(ch) for ch in _GSM7_EXTENSION)


def gsm7_encode(text: str) -> bytes:
    """Encode to unpacked GSM 03.38 septets, one per octet (extension chars as ESC, code).

    Raises TextEncodingError naming the first character that is not representable.
    """
    _require_gsm7(text)
    return text.translate(_ENCODE_TABLE).encode("latin-1")


def gsm7_decode(data: bytes) -> str:
    """Decode unpacked GSM 03.38 septets (one per octet).

    ``ESC`` followed by a code that is not in the extension table decodes to the default
    alphabet character for that code (GSM 03.38 6.2.1.1); ``ESC ESC`` (reserved for a
    further extension table) and a trailing lone ``ESC`` decode to a space.
    Raises TextDecodingError for an octet above 0x7F.
    """
    out: list[str] = []
    append = out.append
    n = len(data)
    i = 0
    while i < n:
        code = data[i]
        if code > 0x7F:
            raise TextDecodingError(f"octet 0x{code:02X} is not a GSM-7 septet", i)
        if code != GSM7_ESCAPE:
            append(_DECODE_BASIC[code])
            i += 1
            continue
        if i + 1 >= n:
            append(_ESC_DISPLAY)
            break
        nxt = data[i + 1]
        if nxt > 0x7F:
            raise TextDecodingError(f"octet 0x{nxt:02X} is not a GSM-7 septet", i + 1)
        if nxt == GSM7_ESCAPE:
            append(_ESC_DISPLAY)
        else:
            append(_DECODE_EXTENSION.get(nxt) or _DECODE_BASIC[nxt])
        i += 2
    return "".join(out)


# --------------------------------------------------------------------------- UCS-2


def ucs2_encode(text: str) -> bytes:
    """Encode as UTF-16BE (astral characters become surrogate pairs).

    Raises TextEncodingError for a lone surrogate code point in ``text``.
    """
    try:
        return text.encode("utf-16-be")
    except UnicodeEncodeError as exc:
        raise TextEncodingError(text[exc.start], exc.start, "UTF-16") from exc


def ucs2_decode(data: bytes) -> str:
    """Decode UTF-16BE. Raises TextDecodingError for odd length or broken surrogates."""
    try:
        return data.decode("utf-16-be")
    except UnicodeDecodeError as exc:
        raise TextDecodingError(f"invalid UTF-16BE ({exc.reason})", exc.start) from exc


def ucs2_length(text: str) -> int:
    """Length of ``text`` in UTF-16 code units (astral characters count two).

    Raises TextEncodingError for a lone surrogate code point in ``text``.
    """
    return len(ucs2_encode(text)) // 2


# --------------------------------------------------------------------------- choice/split


def choose_encoding(text: str, policy: EncodingPolicy = "auto") -> Encoding:
    """Pick the encoding for ``text``.

    ``auto``: GSM-7 when representable, else UCS-2. ``gsm7``: GSM-7 or TextEncodingError.
    ``ucs2``: always UCS-2.
    """
    if policy == "auto":
        return Encoding.GSM7 if is_gsm7(text) else Encoding.UCS2
    if policy == "gsm7":
        _require_gsm7(text)
        return Encoding.GSM7
    if policy == "ucs2":
        return Encoding.UCS2
    raise ValueError(f"unknown encoding policy {policy!r}")


def _encode(text: str, encoding: Encoding) -> bytes:
    return gsm7_encode(text) if encoding is Encoding.GSM7 else ucs2_encode(text)


def _cut_points(encoded: bytes, encoding: Encoding, concat: str) -> list[int]:
    """Octet offsets at which ``encoded`` is cut: [0, c1, ..., len]. One part -> [0, len]."""
    total = len(encoded)
    unit = 1 if encoding is Encoding.GSM7 else 2
    if concat == "payload" or total <= _SINGLE_CAPACITY[encoding] * unit:
        return [0, total]
    step = _PART_CAPACITY[(encoding, concat)] * unit
    cuts = [0]
    start = 0
    while total - start > step:
        end = start + step
        if encoding is Encoding.GSM7:
            # An ESC octet is always the first half of a pair in our own output.
            if encoded[end - 1] == GSM7_ESCAPE:
                end -= 1
        elif 0xD8 <= encoded[end - 2] <= 0xDB:
            # The last code unit is a high surrogate: keep the pair together.
            end -= 2
        cuts.append(end)
        start = end
    cuts.append(total)
    return cuts


def _check_concat(concat: str) -> None:
    if concat not in ("udh8", "udh16", "sar", "payload"):
        raise ValueError(f"unknown concatenation mode {concat!r}")


def count_parts(text: str, policy: EncodingPolicy = "auto", concat: ConcatMode = "udh8") -> int:
    """Number of parts :func:`split_message` produces for ``text``.

    Unlike split_message this returns the count even above 255 (it does not raise
    TooManyPartsError); ``payload`` always counts one. Raises TextEncodingError like
    :func:`choose_encoding`.
    """
    _check_concat(concat)
    encoding = choose_encoding(text, policy)
    if concat == "payload":
        return 1
    return len(_cut_points(_encode(text, encoding), encoding, concat)) - 1


def _udh(concat: str, ref: int, total: int, seq: int) -> bytes:
    if concat == "udh8":
        return bytes((0x05, 0x00, 0x03, ref & 0xFF, total, seq))
    return bytes((0x06, 0x08, 0x04, (ref >> 8) & 0xFF, ref & 0xFF, total, seq))


def split_message(
    text: str,
    *,
    policy: EncodingPolicy = "auto",
    concat: ConcatMode = "udh8",
    ref: int = 0,
    max_parts: int | None = None,
) -> EncodedMessage:
    """Encode ``text`` and split it into the parts to submit.

    A message that fits one part (160 septets / 70 code units) is a single part with no
    UDH and no SAR. Longer messages are cut into parts of at most 153/152 septets or 67/66
    code units (see module docstring), never inside an ESC pair or a surrogate pair.

    * ``udh8``: UDH ``05 00 03 ref total seq`` prepended, ``esm_class_udhi`` set; ref is
      taken modulo 256.
    * ``udh16``: UDH ``06 08 04 refHi refLo total seq``; ref modulo 65536.
    * ``sar``: no UDH, ``sar = (ref, total, seq)`` with ref modulo 65536.
    * ``payload``: always one part, the whole encoded text in ``payload`` and an empty
      ``short_message`` (PayloadTooLongError above 65535 octets).

    Empty text gives one empty part. Raises TooManyPartsError when more than 255 parts or
    more than ``max_parts`` would be needed, TextEncodingError per :func:`choose_encoding`.
    """
    _check_concat(concat)
    if ref < 0:
        raise ValueError(f"ref must be >= 0, got {ref}")
    if max_parts is not None and max_parts < 1:
        raise ValueError(f"max_parts must be >= 1, got {max_parts}")
    encoding = choose_encoding(text, policy)
    encoded = _encode(text, encoding)

    if concat == "payload":
        if len(encoded) > MAX_PAYLOAD_OCTETS:
            raise PayloadTooLongError(len(encoded))
        part = Part(short_message=b"", payload=encoded)
        return EncodedMessage(encoding, int(encoding), (part,))

    cuts = _cut_points(encoded, encoding, concat)
    total = len(cuts) - 1
    limit = MAX_PARTS if max_parts is None else min(max_parts, MAX_PARTS)
    if total > limit:
        raise TooManyPartsError(total, limit)
    if total == 1:
        return EncodedMessage(encoding, int(encoding), (Part(short_message=encoded),))

    parts: list[Part] = []
    for seq in range(1, total + 1):
        body = encoded[cuts[seq - 1] : cuts[seq]]
        if concat == "sar":
            parts.append(Part(short_message=body, sar=(ref & 0xFFFF, total, seq)))
        else:
            udh = _udh(concat, ref, total, seq)
            parts.append(Part(short_message=udh + body, esm_class_udhi=True))
    return EncodedMessage(encoding, int(encoding), tuple(parts))
