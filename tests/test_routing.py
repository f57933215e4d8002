"""Longest-prefix routing of normalised MSISDNs."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsblast.config import load_engine_config
from smsblast.msisdn import normalize_msisdn
from smsblast.routing import Router

SHIPPED_CONFIG = Path(__file__).resolve().parent.parent / "config" / "smsblast.yaml"


@pytest.fixture(scope="module")
def shipped_router() -> Router:
    return Router.from_config(load_engine_config(SHIPPED_CONFIG))


@pytest.mark.parametrize(
    ("number", "route"),
    [
        ("0811-2345-6789", "telkomsel"),
        ("+62 812 3456 7890", "telkomsel"),
        ("0853 1234 5678", "telkomsel"),
        ("0856 1234 5678", "indosat"),
        ("0814 1234 5678", "indosat"),
        ("0899 1234 5678", "indosat"),  # ex-Tri, in Indosat's table
        ("0817 1234 5678", "xl"),
        ("0859 1234 5678", "xl"),
        ("0838 1234 5678", "xl"),  # AXIS belongs to XL
        ("0831 1234 5678", "xl"),
        ("0881 1234 5678", "smartfren"),
        ("0889 1234 5678", "smartfren"),
    ],
)
def test_shipped_indonesian_table(shipped_router: Router, number: str, route: str) -> None:
    assert shipped_router.route(normalize_msisdn(number)) == route


@pytest.mark.parametrize(
    "msisdn",
    [
        "6286012345678",  # mobile-looking prefix no operator in the table owns
        "6289112345678",  # 0891: not in the table
        "62215551234",  # Jakarta landline (normalize_msisdn refuses it; the router too)
        "6581234567",  # another country code
        "62",  # nothing after the country code
        "",
    ],
)
def test_numbers_outside_the_table_are_not_routed(shipped_router: Router, msisdn: str) -> None:
    assert shipped_router.route(msisdn) is None


def test_longest_prefix_wins() -> None:
    router = Router({"broad": ["812"], "narrow": ["8123"], "narrower": ["81234"]})
    assert router.route("6281234567890") == "narrower"
    assert router.route("6281235567890") == "narrow"
    assert router.route("6281299999999") == "broad"
    assert router.route("6281399999999") is None


def test_prefix_longer_than_the_number_is_skipped() -> None:
    router = Router({"long": ["8123456789012"], "short": ["81"]})
    assert router.route("62812") == "short"


def test_country_code_is_stripped_once() -> None:
    router = Router({"a": ["62"], "b": ["8"]}, country_code="62")
    assert router.route("62628") == "a"
    assert router.route("62812") == "b"
    assert router.route("812") is None  # not normalised: no country code


def test_other_country_code() -> None:
    router = Router({"sg": ["8", "9"]}, country_code="65")
    assert router.route("6581234567") == "sg"
    assert router.route("6281234567") is None


def test_same_prefix_in_two_routes_names_both() -> None:
    with pytest.raises(ValueError, match=r"'812'.*'telkomsel'.*'indosat'"):
        Router({"telkomsel": ["811", "812"], "indosat": ["812"]})


# "\uff18\uff11\uff12": full-width digits, which str.isdigit() accepts.
@pytest.mark.parametrize("prefix", ["", "81a", "\uff18\uff11\uff12", " 812"])
def test_non_digit_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="not all digits"):
        Router({"r": [prefix]})


def test_router_introspection() -> None:
    router = Router({"a": ["812", "8123"], "b": [], "c": ["85"]})
    assert router.routes == ("a", "b", "c")
    assert router.country_code == "62"
    assert router.prefixes() == {"812": "a", "8123": "a", "85": "c"}
    assert "prefixes=3" in repr(router)


def _reference(table: dict[str, str], msisdn: str, country_code: str) -> str | None:
    if not msisdn.startswith(country_code):
        return None
    national = msisdn[len(country_code) :]
    matches = [prefix for prefix in table if national.startswith(prefix)]
    return table[max(matches, key=len)] if matches else None


@given(
    st.dictionaries(
        st.from_regex(r"8[0-9]{0,4}", fullmatch=True),
        st.sampled_from(["tsel", "isat", "xl", "sf"]),
        max_size=30,
    ),
    st.lists(st.from_regex(r"(62)?8?[0-9]{0,12}", fullmatch=True), max_size=20),
)
def test_router_agrees_with_brute_force_longest_prefix(
    table: dict[str, str], numbers: list[str]
) -> None:
    routes: dict[str, list[str]] = {}
    for prefix, route in table.items():
        routes.setdefault(route, []).append(prefix)
    router = Router(routes)
    for msisdn in numbers:
        assert router.route(msisdn) == _reference(table, msisdn, "62")
