"""Safe message templates: ``{name}`` placeholders and nothing else.

Theory of operation
-------------------
A campaign's text is written by an operator and filled with values that come from Kafka
records, so neither side may reach Python's formatting machinery: ``str.format`` would let a
template read attributes (``{0.__class__}``), index containers and apply format specs, and a
value could never be trusted to stay inert. Here a template is parsed once, by
:func:`compile_template`, into alternating literal text and field names:

* ``{name}`` is a placeholder; ``name`` matches ``[A-Za-z_][A-Za-z0-9_]*`` (ASCII).
* ``{{`` and ``}}`` are a literal ``{`` and ``}``.
* Anything else with a brace (``{}``, ``{0}``, ``{a.b}``, ``{a[0]}``, ``{a!r}``, ``{a:>10}``,
  ``{ a }``, a lone ``{`` or ``}``) raises :class:`TemplateError` with the 0-based position of
  the offending brace.

:meth:`Template.render` then only joins strings: each value goes through ``str()`` (``None``
becomes the empty string) and is inserted verbatim, so a value containing braces is never
parsed again. A template without placeholders renders to its (unescaped) text with no work.

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final, Literal

__all__ = [
    "MissingField",
    "OnMissing",
    "Template",
    "TemplateError",
    "compile_template",
]

OnMissing = Literal["reject", "empty"]
"""What :meth:`Template.render` does with a field the values lack: raise, or insert ``""``."""

_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BRACE: Final = re.compile(r"[{}]")


class TemplateError(ValueError):
    """The template text is not valid; ``position`` is the 0-based index of the bad brace."""

    def __init__(self, problem: str, position: int) -> None:
        self.problem = problem
        self.position = position
        super().__init__(f"position {position}: {problem}")


class MissingField(KeyError):
    """A placeholder's field is absent from the values and ``on_missing`` is ``"reject"``."""

    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field

    def __str__(self) -> str:  # KeyError's own str() is the repr of its argument
        return f"template field {self.field!r} is missing"


class Template:
    """A compiled template; build it with :func:`compile_template`.

    ``text`` is the source as written, ``fields`` the distinct placeholder names, and
    ``is_static`` is true when there are no placeholders (the rendered text is then fixed).
    """

    __slots__ = ("_pieces", "_slots", "_static", "fields", "is_static", "text")

    text: str
    fields: frozenset[str]
    is_static: bool

    def __init__(self, text: str, literals: tuple[str, ...], names: tuple[str, ...]) -> None:
        # literals[0] names[0] literals[1] ... names[-1] literals[-1]
        if len(literals) != len(names) + 1:
            raise ValueError("a template has exactly one more literal than placeholders")
        self.text = text
        # The render buffer: literals at even indexes, placeholder slots (initially "", which
        # is also what a missing field gives under on_missing="empty") at odd indexes.
        self._pieces: list[str] = [""] * (2 * len(names) + 1)
        self._pieces[::2] = literals
        self._slots: tuple[tuple[int, str], ...] = tuple(
            (2 * index + 1, name) for index, name in enumerate(names)
        )
        self.fields = frozenset(names)
        self.is_static = not names
        self._static: str = literals[0] if self.is_static else ""

    def render(self, values: Mapping[str, object], on_missing: OnMissing = "reject") -> str:
        """Fill the placeholders from ``values``.

        Each value is converted with ``str()``; ``None`` gives ``""``. Values are inserted
        verbatim (never formatted, never parsed as a template).

        Raises:
            MissingField: a placeholder's field is not in ``values`` and ``on_missing`` is
                ``"reject"``.
            ValueError: a field is missing and ``on_missing`` is neither ``"reject"`` nor
                ``"empty"``.
        """
        if self.is_static:
            return self._static
        pieces = self._pieces.copy()
        for index, name in self._slots:
            try:
                value = values[name]
            except KeyError:
                if on_missing == "empty":
                    continue  # the slot already holds ""
                if on_missing == "reject":
                    raise MissingField(name) from None
                raise ValueError(
                    f"on_missing must be 'reject' or 'empty', not {on_missing!r}"
                ) from None
            if value is not None:
                pieces[index] = value if type(value) is str else str(value)
        return "".join(pieces)

    def __repr__(self) -> str:
        return f"compile_template({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Template) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


def _bad_placeholder(inner: str) -> str:
    """Why ``{inner}`` is not a placeholder, in words an operator can act on."""
    if not inner:
        return "empty placeholder '{}'; write '{{}}' for literal braces"
    shown = "{" + inner + "}"
    if inner[0].isdigit():
        return f"positional placeholder {shown!r} is not allowed; use a field name"
    for char, what in (
        (".", "attribute access"),
        ("[", "indexing"),
        ("!", "a conversion"),
        (":", "a format spec"),
    ):
        if char in inner:
            return f"{what} in placeholder {shown!r} is not allowed, only plain {{name}}"
    return (
        f"invalid placeholder {shown!r}: a field name is letters, digits and '_', "
        "not starting with a digit"
    )


def compile_template(text: str) -> Template:
    """Parse ``text`` into a :class:`Template`.

    Raises:
        TemplateError: a placeholder that is not a plain ``{name}``, or an unbalanced brace;
            the error's ``position`` is the 0-based index of the brace that starts it.
    """
    literals: list[str] = []
    names: list[str] = []
    literal: list[str] = []
    length = len(text)
    position = 0
    while True:
        brace = _BRACE.search(text, position)
        if brace is None:
            literal.append(text[position:])
            break
        at = brace.start()
        literal.append(text[position:at])
        char = text[at]
        if at + 1 < length and text[at + 1] == char:  # "{{" or "}}"
            literal.append(char)
            position = at + 2
            continue
        if char == "}":
            raise TemplateError("single '}' is not allowed; write '}}' for a literal brace", at)
        close = text.find("}", at + 1)
        reopen = text.find("{", at + 1)
        if close == -1 or (reopen != -1 and reopen < close):
            raise TemplateError("unclosed '{'; write '{{' for a literal brace", at)
        inner = text[at + 1 : close]
        if not _NAME.fullmatch(inner):
            raise TemplateError(_bad_placeholder(inner), at)
        literals.append("".join(literal))
        names.append(inner)
        literal = []
        position = close + 1
    literals.append("".join(literal))
    return Template(text, tuple(literals), tuple(names))
