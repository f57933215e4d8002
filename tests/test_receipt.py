"""Delivery receipt parsing, TLV precedence and message-id correlation keys."""

from __future__ import annotations

import contextlib
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsblast.smpp.receipt import (
    IdFormat,
    Receipt,
    ReceiptParseError,
    ReceiptState,
    id_normalizer,
    is_final,
    normalize_message_id,
    parse_receipt_text,
    receipt_from_deliver,
    stat_from_text,
    stat_text,
)

CANONICAL = (
    "id:0221067780 sub:001 dlvrd:001 submit date:2401151230 done date:2401151231 "
    "stat:DELIVRD err:000 text:Promo akhir tahun"
)


# --- states -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "code", "value"),
    [
        (ReceiptState.ENROUTE, "ENROUTE", 1),
        (ReceiptState.DELIVERED, "DELIVRD", 2),
        (ReceiptState.EXPIRED, "EXPIRED", 3),
        (ReceiptState.DELETED, "DELETED", 4),
        (ReceiptState.UNDELIVERABLE, "UNDELIV", 5),
        (ReceiptState.ACCEPTED, "ACCEPTD", 6),
        (ReceiptState.UNKNOWN, "UNKNOWN", 7),
        (ReceiptState.REJECTED, "REJECTD", 8),
    ],
)
def test_state_numbers_and_codes_round_trip(state: ReceiptState, code: str, value: int) -> None:
    assert int(state) == value
    assert stat_text(state) == code
    assert len(code) == 7
    assert stat_from_text(code) is state
    assert stat_from_text(code.lower()) is state


def test_full_state_names_are_accepted_as_stat_codes() -> None:
    assert stat_from_text("DELIVERED") is ReceiptState.DELIVERED
    assert stat_from_text("undeliverable") is ReceiptState.UNDELIVERABLE


def test_unrecognised_stat_code_is_unknown() -> None:
    assert stat_from_text("FAILED") is ReceiptState.UNKNOWN
    assert stat_from_text("") is ReceiptState.UNKNOWN


def test_kannel_buffered_codes_are_intermediate() -> None:
    for code in ("BUFFRED", "BUFFERD", "ACKED"):
        assert stat_from_text(code) is ReceiptState.ENROUTE
        assert not is_final(stat_from_text(code))


def test_only_enroute_and_accepted_are_not_final() -> None:
    not_final = {s for s in ReceiptState if not is_final(s)}
    assert not_final == {ReceiptState.ENROUTE, ReceiptState.ACCEPTED}


# --- parse_receipt_text: the usual shape --------------------------------------------------


def test_canonical_receipt_parses_every_field() -> None:
    assert parse_receipt_text(CANONICAL) == Receipt(
        message_id="0221067780",
        state=ReceiptState.DELIVERED,
        submitted=1,
        delivered=1,
        submit_date=datetime(2024, 1, 15, 12, 30),
        done_date=datetime(2024, 1, 15, 12, 31),
        error="000",
        text="Promo akhir tahun",
    )


def test_dates_are_naive() -> None:
    r = parse_receipt_text(CANONICAL)
    assert r.submit_date is not None
    assert r.submit_date.tzinfo is None


def test_twelve_digit_dates_carry_seconds() -> None:
    r = parse_receipt_text(
        "id:1 submit date:240115123005 done date:240115123159 stat:DELIVRD err:000 text:"
    )
    assert r.submit_date == datetime(2024, 1, 15, 12, 30, 5)
    assert r.done_date == datetime(2024, 1, 15, 12, 31, 59)


@pytest.mark.parametrize(
    "bad", ["2413151230", "24011512", "240115123", "abcdefghij", "", "2402301200"]
)
def test_unparseable_date_is_none_not_an_error(bad: str) -> None:
    r = parse_receipt_text(f"id:7 submit date:{bad} done date:2401151231 stat:EXPIRED")
    assert r.submit_date is None
    assert r.done_date == datetime(2024, 1, 15, 12, 31)
    assert r.state is ReceiptState.EXPIRED


def test_capitalised_text_key() -> None:
    r = parse_receipt_text(CANONICAL.replace("text:", "Text:"))
    assert r.text == "Promo akhir tahun"


def test_keys_are_case_insensitive() -> None:
    r = parse_receipt_text(
        "ID:abc SUB:001 DLVRD:000 Submit Date:2401151230 DONE DATE:2401151231 "
        "Stat:UNDELIV Err:069 TEXT:x"
    )
    assert r.message_id == "abc"
    assert r.state is ReceiptState.UNDELIVERABLE
    assert (r.submitted, r.delivered) == (1, 0)
    assert r.submit_date == datetime(2024, 1, 15, 12, 30)
    assert r.done_date == datetime(2024, 1, 15, 12, 31)
    assert r.error == "069"
    assert r.text == "x"


def test_lowercase_stat_value() -> None:
    assert parse_receipt_text("id:1 stat:delivrd").state is ReceiptState.DELIVERED


def test_fields_in_any_order_with_extra_fields() -> None:
    r = parse_receipt_text(
        "stat:REJECTD err:0x0B foo:bar id:5F3A9C01 network:51010 sub:001 "
        "done date:2401151231 dlvrd:000 text:halo"
    )
    assert r.message_id == "5F3A9C01"
    assert r.state is ReceiptState.REJECTED
    assert r.error == "0x0B"
    assert r.done_date == datetime(2024, 1, 15, 12, 31)
    assert r.submit_date is None
    assert r.text == "halo"


def test_only_id_and_stat() -> None:
    assert parse_receipt_text("id:42 stat:ACCEPTD") == Receipt(
        message_id="42", state=ReceiptState.ACCEPTED
    )
    r = parse_receipt_text("id:42 stat:ACCEPTD")
    assert (r.submitted, r.delivered, r.submit_date, r.done_date, r.error, r.text) == (
        None,
        None,
        None,
        None,
        None,
        "",
    )


def test_empty_text_field() -> None:
    r = parse_receipt_text("id:1 stat:DELIVRD err:000 text:")
    assert r.text == ""
    assert r.error == "000"


def test_leading_zeros_in_id_are_kept() -> None:
    r = parse_receipt_text("id:0000000000012345678 stat:DELIVRD")
    assert r.message_id == "0000000000012345678"


def test_hex_and_uuid_ids_are_kept_verbatim() -> None:
    assert parse_receipt_text("id:04000000086ECD50 stat:DELIVRD").message_id == ("04000000086ECD50")
    uuid = "3f2a9c1e-7b4d-4e8a-9c2f-0a1b2c3d4e5f"
    assert parse_receipt_text(f"id:{uuid} stat:DELIVRD").message_id == uuid


def test_text_runs_to_end_with_colons_and_spaces() -> None:
    body = "id:9 stat:DELIVRD err:000 text:Kode: 1234 stat:UNDELIV id:666  diskon 50%:"
    r = parse_receipt_text(body)
    assert r.message_id == "9"
    assert r.state is ReceiptState.DELIVERED
    assert r.text == "Kode: 1234 stat:UNDELIV id:666  diskon 50%:"


def test_unknown_stat_text_is_unknown_state() -> None:
    assert parse_receipt_text("id:1 stat:FAILED").state is ReceiptState.UNKNOWN


def test_empty_stat_value_is_unknown_state() -> None:
    assert parse_receipt_text("id:1 stat: err:000").state is ReceiptState.UNKNOWN


def test_non_numeric_sub_is_none() -> None:
    r = parse_receipt_text("id:1 sub:abc dlvrd:1 stat:DELIVRD")
    assert r.submitted is None
    assert r.delivered == 1


def test_err_kept_verbatim() -> None:
    assert parse_receipt_text("id:1 stat:UNDELIV err:00B").error == "00B"


def test_trailing_nul_and_newlines_are_tolerated() -> None:
    r = parse_receipt_text("id:77\r\nsub:001 dlvrd:001\nstat:DELIVRD err:000\x00")
    assert r.message_id == "77"
    assert r.state is ReceiptState.DELIVERED
    assert r.error == "000"


# --- parse_receipt_text: rejects -----------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "sub:001 dlvrd:001 stat:DELIVRD err:000 text:x",
        "id: stat:DELIVRD",
        "stat:DELIVRD text:id:123",
    ],
)
def test_missing_id_raises_saying_id(body: str) -> None:
    with pytest.raises(ReceiptParseError, match=r"\bid\b"):
        parse_receipt_text(body)


@pytest.mark.parametrize(
    "body",
    [
        "id:123 sub:001 dlvrd:001 err:000 text:x",
        "id:123 text:stat:DELIVRD",
        "id:123 status:DELIVRD",
    ],
)
def test_missing_stat_raises_saying_stat(body: str) -> None:
    with pytest.raises(ReceiptParseError, match=r"\bstat\b"):
        parse_receipt_text(body)


@pytest.mark.parametrize("body", ["", "   ", "Halo, ini pesan biasa", "\x00\x00", "id"])
def test_garbage_raises_typed_error(body: str) -> None:
    with pytest.raises(ReceiptParseError):
        parse_receipt_text(body)


def test_parse_error_is_a_value_error() -> None:
    assert issubclass(ReceiptParseError, ValueError)


@given(st.text())
def test_parse_never_raises_anything_but_receipt_parse_error(body: str) -> None:
    try:
        r = parse_receipt_text(body)
    except ReceiptParseError:
        return
    assert r.message_id
    assert isinstance(r.state, ReceiptState)


_VALUE = st.text(alphabet=st.characters(blacklist_categories=("Zs", "Cc", "Zl", "Zp")), max_size=30)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                ["id", "ID", "sub", "dlvrd", "submit date", "done date", "stat", "err", "x"]
            ),
            _VALUE,
        ),
        max_size=10,
    ),
    st.one_of(st.none(), st.text()),
)
def test_parse_never_raises_on_receipt_shaped_noise(
    pairs: list[tuple[str, str]], text: str | None
) -> None:
    body = " ".join(f"{k}:{v}" for k, v in pairs)
    if text is not None:
        body += " text:" + text
    with contextlib.suppress(ReceiptParseError):
        parse_receipt_text(body)


@given(
    message_id=st.from_regex(r"[0-9A-Za-z\-]{1,40}", fullmatch=True),
    state=st.sampled_from(ReceiptState),
    text=st.text(max_size=40),
)
def test_well_formed_receipt_round_trips(message_id: str, state: ReceiptState, text: str) -> None:
    body = (
        f"id:{message_id} sub:001 dlvrd:001 submit date:2401151230 done date:2401151231 "
        f"stat:{stat_text(state)} err:000 text:{text}"
    )
    r = parse_receipt_text(body)
    assert r.message_id == message_id
    assert r.state is state
    assert r.text == text.replace("\x00", "")


# --- receipt_from_deliver -----------------------------------------------------------------


def test_deliver_without_tlvs_uses_text() -> None:
    r = receipt_from_deliver(CANONICAL.encode("ascii"), None, None)
    assert r == parse_receipt_text(CANONICAL)


def test_deliver_tlv_id_wins_over_text_id() -> None:
    r = receipt_from_deliver(CANONICAL.encode("ascii"), "0A1B2C", None)
    assert r.message_id == "0A1B2C"
    assert r.state is ReceiptState.DELIVERED  # from the text
    assert r.text == "Promo akhir tahun"


def test_deliver_message_state_tlv_wins_over_text_stat() -> None:
    r = receipt_from_deliver(CANONICAL.encode("ascii"), None, int(ReceiptState.UNDELIVERABLE))
    assert r.state is ReceiptState.UNDELIVERABLE
    assert r.message_id == "0221067780"  # from the text, zeros kept


def test_deliver_both_tlvs_win_and_text_fields_still_filled() -> None:
    r = receipt_from_deliver(CANONICAL.encode("ascii"), "000777", 3)
    assert r.message_id == "000777"
    assert r.state is ReceiptState.EXPIRED
    assert r.submitted == 1
    assert r.done_date == datetime(2024, 1, 15, 12, 31)
    assert r.error == "000"


def test_deliver_unparseable_body_with_both_tlvs_still_gives_receipt() -> None:
    r = receipt_from_deliver(b"\xff\xfe not a receipt at all", "00ABC", 2)
    assert r.message_id == "00ABC"
    assert r.state is ReceiptState.DELIVERED
    assert r.submit_date is None
    assert r.error is None


def test_deliver_empty_body_with_both_tlvs() -> None:
    r = receipt_from_deliver(b"", "1", 8)
    assert r == Receipt(message_id="1", state=ReceiptState.REJECTED)


def test_deliver_tlv_id_nul_terminator_is_stripped_but_zeros_kept() -> None:
    r = receipt_from_deliver(b"", "00012\x00", 2)
    assert r.message_id == "00012"


def test_deliver_empty_tlv_id_falls_back_to_text() -> None:
    assert receipt_from_deliver(CANONICAL.encode(), "", None).message_id == "0221067780"


def test_deliver_out_of_range_message_state_yields_to_text_stat() -> None:
    r = receipt_from_deliver(b"id:5 stat:ENROUTE", None, 0)
    assert r.state is ReceiptState.ENROUTE


def test_deliver_out_of_range_message_state_without_text_is_unknown() -> None:
    assert receipt_from_deliver(b"", "5", 9).state is ReceiptState.UNKNOWN


def test_deliver_body_without_tlvs_garbage_raises() -> None:
    with pytest.raises(ReceiptParseError):
        receipt_from_deliver(b"hello", None, None)


def test_deliver_only_id_tlv_and_no_stat_raises_saying_state() -> None:
    with pytest.raises(ReceiptParseError, match="message_state"):
        receipt_from_deliver(b"hello", "123", None)


def test_deliver_only_state_tlv_and_no_id_raises_saying_id() -> None:
    with pytest.raises(ReceiptParseError, match="id"):
        receipt_from_deliver(b"stat:DELIVRD", None, 2)


def test_deliver_latin1_text_is_decoded() -> None:
    r = receipt_from_deliver(b"id:1 stat:DELIVRD text:caf\xe9", None, None)
    assert r.text == "caf\u00e9"


def test_deliver_ucs2_ascii_body_is_readable() -> None:
    r = receipt_from_deliver("id:0042 stat:DELIVRD".encode("utf-16-be"), None, None)
    assert r.message_id == "0042"
    assert r.state is ReceiptState.DELIVERED


@given(
    st.binary(max_size=300),
    st.one_of(st.none(), st.text(max_size=30)),
    st.one_of(st.none(), st.integers(min_value=0, max_value=255)),
)
def test_deliver_never_raises_anything_but_receipt_parse_error(
    body: bytes, tlv_id: str | None, tlv_state: int | None
) -> None:
    try:
        r = receipt_from_deliver(body, tlv_id, tlv_state)
    except ReceiptParseError:
        assert not (tlv_id and tlv_id.strip("\x00 \t\r\n") and tlv_state is not None)
        return
    assert r.message_id


# --- normalize_message_id -----------------------------------------------------------------


def test_hex_and_decimal_vector_meet_at_one_key() -> None:
    hex_key = normalize_message_id("04000000086ECD50", IdFormat.HEX)
    dec_key = normalize_message_id("288230376293190992", IdFormat.DEC)
    assert hex_key == dec_key == "288230376293190992"


def test_hex_is_case_insensitive() -> None:
    assert normalize_message_id("04000000086ecd50", IdFormat.HEX) == normalize_message_id(
        "04000000086ECD50", IdFormat.HEX
    )


def test_decimal_leading_zeros_give_the_same_key_by_design() -> None:
    assert normalize_message_id("0221067780", IdFormat.DEC) == "221067780"
    assert normalize_message_id("221067780", IdFormat.DEC) == "221067780"
    assert normalize_message_id("0000", IdFormat.DEC) == "0"


def test_key_does_not_change_the_stored_id() -> None:
    r = parse_receipt_text("id:0221067780 stat:DELIVRD")
    normalize_message_id(r.message_id, IdFormat.DEC)
    assert r.message_id == "0221067780"


def test_digits_declared_hex_are_read_as_hex() -> None:
    assert normalize_message_id("10", IdFormat.HEX) == "16"
    assert normalize_message_id("10", IdFormat.DEC) == "10"


@pytest.mark.parametrize(
    ("raw", "fmt", "key"),
    [
        (
            "3f2a9c1e-7b4d-4e8a-9c2f-0a1b2c3d4e5f",
            IdFormat.HEX,
            "3f2a9c1e-7b4d-4e8a-9c2f-0a1b2c3d4e5f",
        ),
        ("AbC-123", IdFormat.DEC, "AbC-123"),
        ("5F3A9C01", IdFormat.DEC, "5F3A9C01"),
        ("MSG0001xyz", IdFormat.HEX, "MSG0001xyz"),
        ("  AbC  ", IdFormat.DEC, "AbC"),
        ("", IdFormat.HEX, ""),
    ],
)
def test_non_numeric_ids_are_stripped_and_otherwise_unchanged(
    raw: str, fmt: IdFormat, key: str
) -> None:
    assert normalize_message_id(raw, fmt) == key


def test_surrounding_whitespace_is_ignored() -> None:
    assert normalize_message_id(" 00123\t", IdFormat.DEC) == "123"
    assert normalize_message_id(" 7b ", IdFormat.HEX) == "123"


def test_format_accepts_config_strings_and_rejects_unknown() -> None:
    assert normalize_message_id("ff", IdFormat("hex")) == "255"
    assert normalize_message_id("ff", "hex") == "255"  # type: ignore[arg-type]
    assert id_normalizer("dec")("0255") == "255"  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        normalize_message_id("ff", "base36")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        id_normalizer("base36")  # type: ignore[arg-type]


def test_a_bound_normalizer_keys_like_normalize_message_id() -> None:
    for raw in ("04000000086ecd50", " 0221067780 ", "AbC-123", "", "1" * 80):
        for fmt in IdFormat:
            assert id_normalizer(fmt)(raw) == normalize_message_id(raw, fmt)
    assert id_normalizer(IdFormat.HEX)("04000000086ECD50") == "288230376293190992"


@given(st.integers(min_value=0, max_value=2**256), st.integers(min_value=0, max_value=5))
def test_hex_and_decimal_spellings_of_any_number_meet(value: int, pad: int) -> None:
    hex_raw = "0" * pad + format(value, "X")
    dec_raw = "0" * pad + str(value)
    key = normalize_message_id(dec_raw, IdFormat.DEC)
    assert normalize_message_id(hex_raw, IdFormat.HEX) == key
    assert normalize_message_id(hex_raw.lower(), IdFormat.HEX) == key
    assert key == str(value)


@given(st.text(max_size=80), st.sampled_from(IdFormat))
def test_key_never_raises_and_fallback_keeps_the_raw_text(raw: str, fmt: IdFormat) -> None:
    key = normalize_message_id(raw, fmt)
    assert key == key.strip()
    if not key.isascii() or not key.isdigit():
        # Fallback keys keep the raw text and always contain a non-digit (or are empty),
        # so they cannot collide with the key of a numeric id.
        assert key == raw.strip()


def test_huge_hex_id_does_not_raise() -> None:
    key = normalize_message_id("F" * 5000, IdFormat.HEX)
    assert not key.isdigit()


def test_id_format_is_a_string_enum() -> None:
    assert IdFormat("hex") is IdFormat.HEX
    assert str(IdFormat.DEC) == "dec"
    assert isinstance(IdFormat.HEX, str)
