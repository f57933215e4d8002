"""Safe templates: only ``{name}`` placeholders, values inserted verbatim."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsblast.render import MissingField, Template, TemplateError, compile_template

NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
LITERALS = st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=20)
ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(),
    st.binary(max_size=8),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def test_placeholders_are_filled_and_literal_braces_unescaped() -> None:
    template = compile_template("Halo {nama}, TPS {tps} {{buka}} jam 07.00")
    assert template.fields == frozenset({"nama", "tps"})
    assert not template.is_static
    assert template.render({"nama": "Budi", "tps": 12}) == "Halo Budi, TPS 12 {buka} jam 07.00"


def test_repeated_field_is_filled_everywhere() -> None:
    template = compile_template("{a}-{a}-{b}")
    assert template.fields == frozenset({"a", "b"})
    assert template.render({"a": "x", "b": "y"}) == "x-x-y"


def test_static_template_renders_its_unescaped_text() -> None:
    template = compile_template("Jaga {{Persatuan}} Indonesia")
    assert template.is_static
    assert template.fields == frozenset()
    assert template.render({}) == "Jaga {Persatuan} Indonesia"
    assert template.render({"unused": 1}) == "Jaga {Persatuan} Indonesia"


def test_empty_template_is_static_and_empty() -> None:
    template = compile_template("")
    assert template.is_static
    assert template.render({}) == ""


def test_none_renders_empty_and_other_values_use_str() -> None:
    template = compile_template("[{a}|{b}|{c}|{d}]")
    assert template.render({"a": None, "b": 3.5, "c": True, "d": [1]}) == "[|3.5|True|[1]]"


def test_value_braces_are_inserted_verbatim_never_reparsed() -> None:
    template = compile_template("Halo {nama}")
    assert template.render({"nama": "{0.__class__} {nama} {{x}}"}) == (
        "Halo {0.__class__} {nama} {{x}}"
    )


def test_missing_field_rejects_naming_the_field() -> None:
    template = compile_template("Halo {nama} di {kota}")
    with pytest.raises(MissingField) as caught:
        template.render({"nama": "Budi"})
    assert caught.value.field == "kota"
    assert isinstance(caught.value, KeyError)
    assert "kota" in str(caught.value)


def test_missing_field_empty_policy_inserts_nothing() -> None:
    template = compile_template("Halo {nama} di {kota}")
    assert template.render({"nama": "Budi"}, on_missing="empty") == "Halo Budi di "
    # Rendering does not leak state between calls.
    assert template.render({"nama": "A", "kota": "B"}) == "Halo A di B"
    assert template.render({}, on_missing="empty") == "Halo  di "


def test_unknown_on_missing_policy_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="on_missing"):
        compile_template("{a}").render({}, on_missing="drop")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "position", "words"),
    [
        ("{0.__class__}", 0, "positional"),
        ("Halo {0.__class__.__init__.__globals__}", 5, "positional"),
        ("{nama.__class__}", 0, "attribute access"),
        ("x {a.b}", 2, "attribute access"),
        ("{a[0]}", 0, "indexing"),
        ("{a!r}", 0, "conversion"),
        ("{a:>10}", 0, "format spec"),
        ("{a:{b}}", 0, "unclosed"),
        ("{}", 0, "empty placeholder"),
        ("{0}", 0, "positional"),
        ("{ nama }", 0, "invalid placeholder"),
        ("{nama-depan}", 0, "invalid placeholder"),
        ("{naïve}", 0, "invalid placeholder"),
        ("Halo {nama", 5, "unclosed"),
        ("Halo {", 5, "unclosed"),
        ("Halo }", 5, "single '}'"),
        ("ok {a} }", 7, "single '}'"),
        ("{{a}", 3, "single '}'"),
        ("{a{b}}", 0, "unclosed"),
    ],
)
def test_unsafe_or_malformed_templates_are_rejected_with_position(
    text: str, position: int, words: str
) -> None:
    with pytest.raises(TemplateError) as caught:
        compile_template(text)
    assert caught.value.position == position
    assert words in str(caught.value)
    assert f"position {position}" in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_template_equality_and_repr() -> None:
    assert compile_template("a {b}") == compile_template("a {b}")
    assert compile_template("a {b}") != compile_template("a {c}")
    assert len({compile_template("x"), compile_template("x")}) == 1
    assert repr(compile_template("a {b}")) == "compile_template('a {b}')"


# --- properties ----------------------------------------------------------------------------


@st.composite
def templates(draw: st.DrawFn) -> tuple[str, list[str | tuple[str]]]:
    """A valid template text and its structure: literal strings and (name,) fields."""
    pieces = draw(
        st.lists(st.one_of(LITERALS, NAMES.map(lambda name: (name,)), st.sampled_from(["{", "}"])))
    )
    text = ""
    structure: list[str | tuple[str]] = []
    for piece in pieces:
        if isinstance(piece, tuple):
            text += "{" + piece[0] + "}"
            structure.append(piece)
        elif piece in ("{", "}"):
            text += piece * 2
            structure.append(piece)
        else:
            text += piece
            structure.append(piece)
    return text, structure


@given(templates(), st.dictionaries(NAMES, ANY_VALUE))
def test_render_matches_reference_and_only_raises_missing_field(
    case: tuple[str, list[str | tuple[str]]], values: dict[str, object]
) -> None:
    text, structure = case
    template = compile_template(text)
    names = {piece[0] for piece in structure if isinstance(piece, tuple)}
    assert template.fields == names
    assert template.is_static == (not names)

    def expected() -> str:
        out = ""
        for piece in structure:
            if isinstance(piece, tuple):
                value = values.get(piece[0])
                out += "" if value is None else str(value)
            else:
                out += piece
        return out

    assert template.render(values, on_missing="empty") == expected()
    if names <= values.keys():
        assert template.render(values) == expected()
    else:
        with pytest.raises(MissingField) as caught:
            template.render(values)
        assert caught.value.field in names - values.keys()


@given(st.text(alphabet=st.sampled_from("{}ab0_.[]!:x "), max_size=24) | st.text(max_size=24))
def test_compile_either_succeeds_or_raises_template_error(text: str) -> None:
    try:
        template = compile_template(text)
    except TemplateError as exc:
        assert 0 <= exc.position < len(text)
        assert text[exc.position] in "{}"
        return
    # Anything we accept, str.format reads the same way (it is a strict subset).
    values = {name: f"<{name}>" for name in template.fields}
    assert template.render(values) == text.format(**values)
    assert isinstance(template, Template)


@given(st.text(alphabet=string.printable, max_size=30))
def test_accepted_templates_never_reach_attributes_or_indexes(text: str) -> None:
    try:
        template = compile_template(text)
    except TemplateError:
        return
    for name in template.fields:
        assert name.isidentifier() and name.isascii()
