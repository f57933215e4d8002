"""Indonesian MSISDN normalisation and log masking."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsblast.msisdn import InvalidMsisdn, mask_msisdn, normalize_msisdn


@pytest.mark.parametrize(
    "raw",
    [
        "081234567890",
        "+6281234567890",
        "6281234567890",
        "81234567890",
        "006281234567890",
        "0812 3456 7890",
        "0812-3456-7890",
        "0812.3456.7890",
        "(0812) 3456-7890",
        "+62 812-3456-7890",
        "+62 (812) 3456 7890",
        "0062 812 3456 7890",
        "  081234567890  ",
        "62 812 3456 7890",
        "0812\u00a03456\t7890",
    ],
)
def test_every_accepted_form_normalises_to_62_national(raw: str) -> None:
    assert normalize_msisdn(raw) == "6281234567890"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0811234567", "62811234567"),  # shortest: 8 + 1 + 7 digits
        ("0811234567890", "62811234567890"),  # longest: 8 + 1 + 10 digits
        ("0821-1234-5678", "6282112345678"),  # Telkomsel
        ("0857 1234 5678", "6285712345678"),  # Indosat
        ("0877 1234 5678", "6287712345678"),  # XL
        ("0831 1234 5678", "6283112345678"),  # AXIS
        ("0881 1234 5678", "6288112345678"),  # Smartfren
        ("0895 1234 5678", "6289512345678"),  # ex-Tri
    ],
)
def test_operator_prefixes_and_length_bounds(raw: str, expected: str) -> None:
    assert normalize_msisdn(raw) == expected


def test_normalisation_is_idempotent() -> None:
    once = normalize_msisdn("0812-3456-7890")
    assert normalize_msisdn(once) == once


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("- . ()", "empty"),
        ("0812345678a", "only digits"),
        ("O81234567890", "only digits"),  # letter O, not zero
        ("0812/3456/7890", "only digits"),
        ("62+81234567890", "only digits"),
        ("++6281234567890", "only digits"),
        ("021-5551234", "start with 8"),  # Jakarta landline
        ("+62 21 5551234", "start with 8"),
        ("0221234567", "start with 8"),  # Bandung landline
        ("0841234567890", "prefix 084"),
        ("0801234567890", "prefix 080"),
        ("08123456", "digits"),  # too short
        ("081234567", "digits"),  # 8 national digits: one too few
        ("08123456789012", "digits"),  # 13 national digits: one too many
        ("+6581234567", "country code 62"),  # Singapore
        ("006581234567", "country code 62"),
        ("+081234567890", "country code 62"),
        ("062812345678", "start with 8"),  # trunk prefix then country code
    ],
)
def test_rejects_with_reason(raw: str, reason: str) -> None:
    with pytest.raises(InvalidMsisdn, match=reason) as info:
        normalize_msisdn(raw)
    assert reason in info.value.reason


def test_invalid_msisdn_is_a_value_error() -> None:
    assert issubclass(InvalidMsisdn, ValueError)


def test_reason_does_not_echo_the_number() -> None:
    with pytest.raises(InvalidMsisdn) as info:
        normalize_msisdn("0841234567890")
    assert "1234567890" not in str(info.value)


def test_unicode_digits_are_rejected() -> None:
    with pytest.raises(InvalidMsisdn):
        normalize_msisdn("\u0660\u0668\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668")


def test_unknown_country_code_is_a_configuration_error_not_invalid_msisdn() -> None:
    with pytest.raises(ValueError, match="country code") as info:
        normalize_msisdn("081234567890", country_code="65")
    assert not isinstance(info.value, InvalidMsisdn)


_NATIONAL = st.from_regex(r"8[1-35-9][0-9]{7,10}", fullmatch=True)


@given(_NATIONAL, st.sampled_from(["0", "+62", "62", "", "0062", "+62 ", "0062-"]))
def test_any_valid_national_number_in_any_prefix_form(national: str, prefix: str) -> None:
    assert normalize_msisdn(prefix + national) == "62" + national


@given(_NATIONAL, st.lists(st.sampled_from([" ", "-", ".", "(", ")"]), max_size=12), st.data())
def test_separators_anywhere_are_ignored(
    national: str, seps: list[str], data: st.DataObject
) -> None:
    raw = "0" + national
    for sep in seps:
        i = data.draw(st.integers(min_value=0, max_value=len(raw)))
        raw = raw[:i] + sep + raw[i:]
    assert normalize_msisdn(raw) == "62" + national


def test_a_normalised_number_comes_back_as_it_is_and_near_misses_are_still_refused() -> None:
    raw = "6281234567890"
    assert normalize_msisdn(raw) is raw  # the fast path: no copy, no other step
    for near in ("628123456", "628123456789012", "6284123456789", "62812345678\uff190"):
        with pytest.raises(InvalidMsisdn):
            normalize_msisdn(near)


def _outcome(raw: str) -> str:
    try:
        return normalize_msisdn(raw)
    except InvalidMsisdn as exc:
        return f"refused: {exc.reason}"


@given(st.sampled_from(["0", "+62"]), st.text(alphabet="0123456789", max_size=16))
def test_the_short_spellings_fast_path_agrees_with_the_general_steps(
    prefix: str, digits: str
) -> None:
    # "0812..." and "+62812..." take a one-match path; a dash after the prefix sends the
    # same number through the general steps (separators removed first): same answer,
    # same reason for a refusal.
    assert _outcome(prefix + digits) == _outcome(prefix + "-" + digits)


@given(st.text(max_size=30))
def test_arbitrary_text_either_normalises_or_raises_invalid_msisdn(raw: str) -> None:
    try:
        result = normalize_msisdn(raw)
    except InvalidMsisdn:
        return
    assert result.startswith("628")
    assert result.isascii()
    assert result.isdigit()
    assert 11 <= len(result) <= 14


# --- masking ------------------------------------------------------------------------------


def test_mask_keeps_first_five_and_last_three() -> None:
    assert mask_msisdn("6281234567890") == "62812*****890"


def test_mask_preserves_length_and_hides_the_middle() -> None:
    masked = mask_msisdn("62811234567")
    assert masked == "62811***567"
    assert len(masked) == len("62811234567")


def test_mask_of_shortest_and_longest_valid_numbers() -> None:
    assert mask_msisdn(normalize_msisdn("0811234567")) == "62811***567"
    assert mask_msisdn(normalize_msisdn("0811234567890")) == "62811******890"


@pytest.mark.parametrize("short", ["", "1", "12345678"])
def test_mask_hides_short_strings_completely(short: str) -> None:
    assert mask_msisdn(short) == "*" * len(short)


def test_mask_nine_chars_hides_one() -> None:
    assert mask_msisdn("123456789") == "12345*789"
