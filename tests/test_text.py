"""Tests for smsblast.smpp.text: GSM 03.38 / UCS-2 encoding and segmentation."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsblast.smpp.text import (
    EncodedMessage,
    Encoding,
    Part,
    PayloadTooLongError,
    TextDecodingError,
    TextEncodingError,
    TooManyPartsError,
    choose_encoding,
    count_parts,
    gsm7_decode,
    gsm7_encode,
    gsm7_length,
    is_gsm7,
    split_message,
    ucs2_decode,
    ucs2_encode,
    ucs2_length,
)

# Reference data written out independently of the module (3GPP TS 23.038 section 6.2.1).
GSM_BASIC: dict[int, str] = {
    0x00: "@", 0x01: "\u00a3", 0x02: "$", 0x03: "\u00a5", 0x04: "\u00e8", 0x05: "\u00e9",
    0x06: "\u00f9", 0x07: "\u00ec", 0x08: "\u00f2", 0x09: "\u00c7", 0x0A: "\n",
    0x0B: "\u00d8", 0x0C: "\u00f8", 0x0D: "\r", 0x0E: "\u00c5", 0x0F: "\u00e5",
    0x10: "\u0394", 0x11: "_", 0x12: "\u03a6", 0x13: "\u0393", 0x14: "\u039b",
    0x15: "\u03a9", 0x16: "\u03a0", 0x17: "\u03a8", 0x18: "\u03a3", 0x19: "\u0398",
    0x1A: "\u039e", 0x1C: "\u00c6", 0x1D: "\u00e6", 0x1E: "\u00df", 0x1F: "\u00c9",
    0x20: " ", 0x21: "!", 0x22: '"', 0x23: "#", 0x24: "\u00a4", 0x25: "%", 0x26: "&",
    0x27: "'", 0x28: "(", 0x29: ")", 0x2A: "*", 0x2B: "+", 0x2C: ",", 0x2D: "-", 0x2E: ".",
    0x2F: "/", 0x3A: ":", 0x3B: ";", 0x3C: "<", 0x3D: "=", 0x3E: ">", 0x3F: "?",
    0x40: "\u00a1", 0x5B: "\u00c4", 0x5C: "\u00d6", 0x5D: "\u00d1", 0x5E: "\u00dc",
    0x5F: "\u00a7", 0x60: "\u00bf", 0x7B: "\u00e4", 0x7C: "\u00f6", 0x7D: "\u00f1",
    0x7E: "\u00fc", 0x7F: "\u00e0",
}  # fmt: skip
GSM_BASIC.update({0x30 + i: str(i) for i in range(10)})
GSM_BASIC.update({0x41 + i: chr(ord("A") + i) for i in range(26)})
GSM_BASIC.update({0x61 + i: chr(ord("a") + i) for i in range(26)})

GSM_EXTENSION: dict[str, int] = {
    "\x0c": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F,
    "[": 0x3C, "~": 0x3D, "]": 0x3E, "|": 0x40, "\u20ac": 0x65,
}  # fmt: skip

SEED = "Jaga Persatuan Indonesia, datang ke TPS dan gunakan hak pilih"
EMOJI = "\U0001f600"  # grinning face, a surrogate pair in UTF-16
HAN = "\u4e2d"  # a BMP character outside GSM 03.38

# Per-part capacities in units (septets or UTF-16 code units).
SINGLE = {Encoding.GSM7: 160, Encoding.UCS2: 70}
PER_PART = {
    (Encoding.GSM7, "udh8"): 153,
    (Encoding.GSM7, "udh16"): 152,
    (Encoding.GSM7, "sar"): 153,
    (Encoding.UCS2, "udh8"): 67,
    (Encoding.UCS2, "udh16"): 66,
    (Encoding.UCS2, "sar"): 67,
}


def body(part: Part) -> bytes:
    """short_message with any UDH stripped."""
    sm = part.short_message
    return sm[1 + sm[0] :] if part.esm_class_udhi else sm


def udh(part: Part) -> bytes:
    sm = part.short_message
    return sm[: 1 + sm[0]] if part.esm_class_udhi else b""


def decode(msg: EncodedMessage, data: bytes) -> str:
    return gsm7_decode(data) if msg.encoding is Encoding.GSM7 else ucs2_decode(data)


def units(msg: EncodedMessage, data: bytes) -> int:
    """Capacity units a body uses: septets (one per octet) or 16-bit code units."""
    return len(data) if msg.encoding is Encoding.GSM7 else len(data) // 2


# --------------------------------------------------------------------------- GSM 03.38


def test_reference_table_is_complete() -> None:
    assert len(GSM_BASIC) == 127  # 128 codes minus ESC
    assert len(set(GSM_BASIC.values())) == 127


@pytest.mark.parametrize(("code", "char"), sorted(GSM_BASIC.items()))
def test_every_basic_char_encodes_to_its_septet_and_back(code: int, char: str) -> None:
    assert is_gsm7(char)
    assert gsm7_length(char) == 1
    assert gsm7_encode(char) == bytes([code])
    assert gsm7_decode(bytes([code])) == char


@pytest.mark.parametrize(("char", "code"), sorted(GSM_EXTENSION.items()))
def test_every_extension_char_is_an_esc_pair_and_back(char: str, code: int) -> None:
    assert is_gsm7(char)
    assert gsm7_length(char) == 2
    assert gsm7_encode(char) == bytes([0x1B, code])
    assert gsm7_decode(bytes([0x1B, code])) == char


def test_whole_alphabet_round_trips_in_one_string() -> None:
    text = "".join(GSM_BASIC.values()) + "".join(GSM_EXTENSION)
    assert gsm7_decode(gsm7_encode(text)) == text
    assert gsm7_length(text) == 127 + 2 * len(GSM_EXTENSION)
    assert len(gsm7_encode(text)) == gsm7_length(text)


def test_euro_costs_two_septets() -> None:
    assert gsm7_length("\u20ac") == 2
    assert gsm7_length("5\u20ac") == 3
    assert gsm7_encode("5\u20ac") == b"\x35\x1b\x65"


def test_ascii_text_is_plain_septets() -> None:
    assert gsm7_encode("Hello, World!") == b"Hello, World!"
    assert gsm7_encode("a@b") == b"a\x00b"


def test_encode_error_names_first_offending_char_and_index() -> None:
    with pytest.raises(TextEncodingError) as info:
        gsm7_encode("ab" + HAN + "c" + EMOJI)
    assert isinstance(info.value, ValueError)
    assert info.value.char == HAN
    assert info.value.index == 2
    assert HAN in str(info.value)
    assert "2" in str(info.value)


@pytest.mark.parametrize("char", [HAN, EMOJI, "`", "\x1b", "\t", "\u00e7", "\u00a0"])
def test_chars_outside_gsm7(char: str) -> None:
    assert not is_gsm7("abc" + char)
    with pytest.raises(TextEncodingError):
        gsm7_length(char)


def test_empty_gsm7() -> None:
    assert is_gsm7("")
    assert gsm7_encode("") == b""
    assert gsm7_decode(b"") == ""
    assert gsm7_length("") == 0


def test_decode_esc_with_unknown_code_gives_base_char() -> None:
    assert gsm7_decode(b"\x1bA") == "A"
    assert gsm7_decode(b"x\x1b\x00y") == "x@y"


def test_decode_lone_trailing_esc_and_esc_esc_give_space() -> None:
    assert gsm7_decode(b"ab\x1b") == "ab "
    assert gsm7_decode(b"\x1b") == " "
    assert gsm7_decode(b"a\x1b\x1bb") == "a b"


def test_decode_rejects_octets_above_0x7f() -> None:
    with pytest.raises(TextDecodingError):
        gsm7_decode(b"ab\x80")
    with pytest.raises(TextDecodingError):
        gsm7_decode(b"\x1b\xff")


gsm_chars = st.sampled_from(sorted(set(GSM_BASIC.values()) | set(GSM_EXTENSION)))


@given(st.text(alphabet=gsm_chars, max_size=400))
def test_gsm7_round_trip_property(text: str) -> None:
    encoded = gsm7_encode(text)
    assert gsm7_decode(encoded) == text
    assert len(encoded) == gsm7_length(text)
    assert all(b < 0x80 for b in encoded)


# --------------------------------------------------------------------------- UCS-2


def test_ucs2_bmp_and_astral() -> None:
    assert ucs2_encode("A" + HAN) == b"\x00\x41\x4e\x2d"
    assert ucs2_encode(EMOJI) == b"\xd8\x3d\xde\x00"
    assert ucs2_length(EMOJI) == 2
    assert ucs2_length("A" + HAN + EMOJI) == 4
    assert ucs2_decode(b"\xd8\x3d\xde\x00") == EMOJI


def test_ucs2_lone_surrogate_is_an_encoding_error() -> None:
    with pytest.raises(TextEncodingError) as info:
        ucs2_encode("ab\ud83d")
    assert info.value.index == 2


def test_ucs2_decode_rejects_odd_length() -> None:
    with pytest.raises(TextDecodingError):
        ucs2_decode(b"\x00A\x00")


@given(st.text(max_size=200))
def test_ucs2_round_trip_property(text: str) -> None:
    encoded = ucs2_encode(text)
    assert ucs2_decode(encoded) == text
    assert len(encoded) == 2 * ucs2_length(text)


# --------------------------------------------------------------------------- encoding choice


def test_encoding_values_are_data_coding() -> None:
    assert int(Encoding.GSM7) == 0x00
    assert int(Encoding.UCS2) == 0x08


def test_choose_encoding() -> None:
    assert choose_encoding(SEED, "auto") is Encoding.GSM7
    assert choose_encoding(SEED + "\u20ac", "auto") is Encoding.GSM7
    assert choose_encoding(SEED + HAN, "auto") is Encoding.UCS2
    assert choose_encoding(SEED, "ucs2") is Encoding.UCS2
    assert choose_encoding(SEED, "gsm7") is Encoding.GSM7


def test_gsm7_policy_with_chinese_char_raises() -> None:
    with pytest.raises(TextEncodingError) as info:
        choose_encoding("Halo " + HAN, "gsm7")
    assert info.value.char == HAN
    assert info.value.index == 5
    with pytest.raises(TextEncodingError):
        split_message("Halo " + HAN, policy="gsm7")
    with pytest.raises(TextEncodingError):
        count_parts("Halo " + HAN, "gsm7", "udh8")


def test_unknown_policy_or_concat_rejected() -> None:
    with pytest.raises(ValueError):
        choose_encoding("x", "latin1")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        split_message("x", concat="udh32")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- segmentation


def test_indonesian_seed_is_one_gsm7_part() -> None:
    msg = split_message(SEED)
    assert msg.encoding is Encoding.GSM7
    assert msg.data_coding == 0
    assert len(msg.parts) == 1
    (part,) = msg.parts
    assert part.short_message == SEED.encode("ascii")
    assert not part.esm_class_udhi
    assert part.sar is None
    assert part.payload is None
    assert count_parts(SEED, "auto", "udh8") == 1


@pytest.mark.parametrize("concat", ["udh8", "udh16", "sar", "payload"])
def test_empty_text_is_one_empty_part(concat: str) -> None:
    msg = split_message("", concat=concat)  # type: ignore[arg-type]
    assert len(msg.parts) == 1
    part = msg.parts[0]
    assert part.short_message == b""
    assert not part.esm_class_udhi
    assert part.sar is None
    assert part.payload in (None, b"")
    assert count_parts("", "auto", concat) == 1  # type: ignore[arg-type]


@pytest.mark.parametrize("concat", ["udh8", "udh16", "sar"])
def test_gsm7_160_is_single_161_is_concatenated(concat: str) -> None:
    single = split_message("a" * 160, concat=concat)  # type: ignore[arg-type]
    assert len(single.parts) == 1
    assert single.parts[0].short_message == b"a" * 160
    assert not single.parts[0].esm_class_udhi
    assert single.parts[0].sar is None

    multi = split_message("a" * 161, concat=concat)  # type: ignore[arg-type]
    cap = PER_PART[(Encoding.GSM7, concat)]
    assert [len(body(p)) for p in multi.parts] == [cap, 161 - cap]


@pytest.mark.parametrize("concat", ["udh8", "udh16", "sar"])
def test_ucs2_70_is_single_71_is_concatenated(concat: str) -> None:
    single = split_message(HAN * 70, concat=concat)  # type: ignore[arg-type]
    assert single.encoding is Encoding.UCS2
    assert single.data_coding == 8
    assert len(single.parts) == 1
    assert single.parts[0].short_message == ucs2_encode(HAN * 70)

    multi = split_message(HAN * 71, concat=concat)  # type: ignore[arg-type]
    cap = PER_PART[(Encoding.UCS2, concat)]
    assert [len(body(p)) // 2 for p in multi.parts] == [cap, 71 - cap]


def test_exact_multiples_of_part_capacity() -> None:
    assert count_parts("a" * 306, "auto", "udh8") == 2
    assert count_parts("a" * 307, "auto", "udh8") == 3
    assert count_parts("a" * 304, "auto", "udh16") == 2
    assert count_parts("a" * 305, "auto", "udh16") == 3
    assert count_parts(HAN * 134, "auto", "udh8") == 2
    assert count_parts(HAN * 135, "auto", "udh8") == 3


def test_extension_char_at_single_part_limit() -> None:
    # 158 + 2 = 160 septets: still one part.
    fits = split_message("a" * 158 + "\u20ac")
    assert len(fits.parts) == 1
    assert fits.parts[0].short_message == b"a" * 158 + b"\x1b\x65"
    # 159 + 2 = 161 septets: needs concatenation even though it is 160 characters.
    over = split_message("a" * 159 + "\u20ac")
    assert len(over.parts) == 2
    assert "".join(gsm7_decode(body(p)) for p in over.parts) == "a" * 159 + "\u20ac"


@pytest.mark.parametrize("concat", ["udh8", "udh16", "sar"])
def test_extension_char_straddling_part_boundary_moves_to_next_part(concat: str) -> None:
    cap = PER_PART[(Encoding.GSM7, concat)]
    text = "a" * (cap - 1) + "\u20ac" + "b" * 20
    msg = split_message(text, concat=concat)  # type: ignore[arg-type]
    first, second = (body(p) for p in msg.parts)
    assert first == b"a" * (cap - 1)
    assert second.startswith(b"\x1b\x65")
    assert gsm7_decode(second) == "\u20ac" + "b" * 20


def test_extension_char_ending_exactly_at_boundary_stays() -> None:
    text = "a" * 151 + "[" + "b" * 20  # the pair occupies septets 152 and 153
    first, second = (body(p) for p in split_message(text).parts)
    assert first == b"a" * 151 + b"\x1b\x3c"
    assert second == b"b" * 20


@pytest.mark.parametrize("concat", ["udh8", "udh16", "sar"])
def test_emoji_at_part_boundary_is_not_split(concat: str) -> None:
    cap = PER_PART[(Encoding.UCS2, concat)]
    text = HAN * (cap - 1) + EMOJI + HAN * 10
    msg = split_message(text, concat=concat)  # type: ignore[arg-type]
    first, second = (body(p) for p in msg.parts)
    assert ucs2_decode(first) == HAN * (cap - 1)
    assert ucs2_decode(second) == EMOJI + HAN * 10


def test_emoji_in_gsm_text_switches_to_ucs2_and_counts_two_units() -> None:
    text = "a" * 68 + EMOJI  # 70 code units
    assert split_message(text).encoding is Encoding.UCS2
    assert count_parts(text, "auto", "udh8") == 1
    assert count_parts("a" * 69 + EMOJI, "auto", "udh8") == 2


def test_udh8_bytes() -> None:
    msg = split_message("x" * 400, concat="udh8", ref=0x1234)
    assert [udh(p) for p in msg.parts] == [
        bytes([0x05, 0x00, 0x03, 0x34, 3, 1]),
        bytes([0x05, 0x00, 0x03, 0x34, 3, 2]),
        bytes([0x05, 0x00, 0x03, 0x34, 3, 3]),
    ]
    assert all(p.esm_class_udhi and p.sar is None and p.payload is None for p in msg.parts)


def test_udh16_bytes() -> None:
    msg = split_message("x" * 400, concat="udh16", ref=0x1234)
    assert [udh(p) for p in msg.parts] == [
        bytes([0x06, 0x08, 0x04, 0x12, 0x34, 3, 1]),
        bytes([0x06, 0x08, 0x04, 0x12, 0x34, 3, 2]),
        bytes([0x06, 0x08, 0x04, 0x12, 0x34, 3, 3]),
    ]


def test_sar_parts_carry_tlv_values_and_no_udh() -> None:
    msg = split_message("x" * 400, concat="sar", ref=0x1234)
    assert [p.sar for p in msg.parts] == [(0x1234, 3, 1), (0x1234, 3, 2), (0x1234, 3, 3)]
    assert not any(p.esm_class_udhi for p in msg.parts)
    assert b"".join(p.short_message for p in msg.parts) == b"x" * 400


def test_payload_is_one_part_with_whole_message() -> None:
    text = "Halo " * 100 + "\u20ac"
    msg = split_message(text, concat="payload")
    assert len(msg.parts) == 1
    (part,) = msg.parts
    assert part.short_message == b""
    assert part.payload is not None
    assert gsm7_decode(part.payload) == text
    assert not part.esm_class_udhi
    assert part.sar is None
    assert count_parts(text, "auto", "payload") == 1

    ucs = split_message(HAN * 500, concat="payload")
    assert ucs.data_coding == 8
    assert ucs.parts[0].payload == ucs2_encode(HAN * 500)


def test_payload_over_tlv_limit() -> None:
    with pytest.raises(PayloadTooLongError):
        split_message(HAN * 40000, concat="payload")


def test_255_parts_allowed_256_rejected() -> None:
    assert len(split_message("a" * (153 * 255)).parts) == 255
    with pytest.raises(TooManyPartsError) as info:
        split_message("a" * (153 * 255 + 1))
    assert isinstance(info.value, ValueError)
    assert info.value.parts == 256
    assert "256" in str(info.value)
    assert count_parts("a" * (153 * 255 + 1), "auto", "udh8") == 256


def test_max_parts() -> None:
    assert len(split_message("a" * 306, max_parts=2).parts) == 2
    with pytest.raises(TooManyPartsError) as info:
        split_message("a" * 307, max_parts=2)
    assert info.value.parts == 3
    assert len(split_message("a" * 160, max_parts=1).parts) == 1


def test_ref_is_reduced_to_field_width() -> None:
    text = "x" * 200
    assert udh(split_message(text, concat="udh8", ref=0x1FF).parts[0])[3] == 0xFF
    assert udh(split_message(text, concat="udh16", ref=0x12345).parts[0])[3:5] == b"\x23\x45"
    assert split_message(text, concat="sar", ref=0x12345).parts[0].sar == (0x2345, 2, 1)


def test_results_are_immutable() -> None:
    msg = split_message(SEED)
    with pytest.raises(AttributeError):
        msg.parts = ()  # type: ignore[misc]
    with pytest.raises(AttributeError):
        msg.parts[0].short_message = b""  # type: ignore[misc]


# --------------------------------------------------------------------------- properties

mixed_chars = st.one_of(
    gsm_chars,
    st.sampled_from(sorted(GSM_EXTENSION)),
    st.sampled_from([HAN, "\u00e7", "\u0101", "\u2019", EMOJI, "\U0001f1ee", "\U0001f1e9"]),
    st.characters(exclude_categories=["Cs"]),
)
texts = st.one_of(
    st.text(alphabet=gsm_chars, max_size=700),
    st.text(alphabet=mixed_chars, max_size=400),
)


@settings(max_examples=300, deadline=None)
@given(
    text=texts,
    concat=st.sampled_from(["udh8", "udh16", "sar"]),
    policy=st.sampled_from(["auto", "ucs2"]),
    ref=st.integers(min_value=0, max_value=0xFFFF),
)
def test_split_property(text: str, concat: str, policy: str, ref: int) -> None:
    msg = split_message(text, policy=policy, concat=concat, ref=ref)  # type: ignore[arg-type]
    parts = msg.parts
    total = len(parts)
    assert total >= 1
    assert msg.data_coding == int(msg.encoding)
    if policy == "auto":
        assert msg.encoding is (Encoding.GSM7 if is_gsm7(text) else Encoding.UCS2)
    else:
        assert msg.encoding is Encoding.UCS2

    # Each body decodes on its own, and the bodies concatenate back to the text.
    assert "".join(decode(msg, body(p)) for p in parts) == text
    assert count_parts(text, policy, concat) == total  # type: ignore[arg-type]

    if total == 1:
        part = parts[0]
        assert not part.esm_class_udhi
        assert part.sar is None
        assert units(msg, part.short_message) <= SINGLE[msg.encoding]
        return

    cap = PER_PART[(msg.encoding, concat)]
    sizes = [units(msg, body(p)) for p in parts]
    assert all(0 < size <= cap for size in sizes)
    # Greedy: a part is only short of capacity by the one unit a kept-together pair needs.
    assert all(size >= cap - 1 for size in sizes[:-1])
    # The total was really needed: it did not fit one part.
    assert sum(sizes) > SINGLE[msg.encoding]

    for seq, part in enumerate(parts, start=1):
        assert part.payload is None
        header = udh(part)
        if concat == "sar":
            assert part.sar == (ref, total, seq)
            assert not part.esm_class_udhi
        else:
            assert part.sar is None
            assert part.esm_class_udhi
            if concat == "udh8":
                assert header == bytes([5, 0, 3, ref & 0xFF, total, seq])
            else:
                assert header == bytes([6, 8, 4, ref >> 8, ref & 0xFF, total, seq])
        # Over the air a segment holds 140 octets of TP-UD, UDH included.
        body_units = units(msg, body(part))
        if msg.encoding is Encoding.GSM7:
            assert math.ceil(len(header) * 8 / 7) + body_units <= 160
        else:
            assert len(header) + 2 * body_units <= 140


@settings(max_examples=200, deadline=None)
@given(text=texts, concat=st.sampled_from(["udh8", "udh16", "sar", "payload"]))
def test_count_parts_agrees_with_split_message(text: str, concat: str) -> None:
    expected = len(split_message(text, concat=concat).parts)  # type: ignore[arg-type]
    assert count_parts(text, "auto", concat) == expected  # type: ignore[arg-type]
