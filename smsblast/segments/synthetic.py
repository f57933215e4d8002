"""Synthetic recipients with realistic Indonesian mobile numbers, for tests and benchmarks.

:func:`synthetic_recipients` is a pure, seeded, streaming generator of ``(key, value)`` Kafka
records in the segment format. Memory stays constant whatever the count (17 million is
fine): numbers are unique without remembering them, because the i-th number drawn for a
prefix is ``perm(i)``, a seeded affine permutation ``(a*i + b) mod N`` of that prefix's
number space.

Number space of a prefix such as ``812``: the national number is ``8``, the two other prefix
digits, then 7, 8 or 9 subscriber digits (10, 11 or 12 national digits). Of the N =
210,000,000 numbers per prefix, about 5 % have 10 national digits, 47.5 % 11 and 47.5 % 12.

Records:

* fresh: ``{"msisdn": "...", "name": "..."}``; the number is spelled ``62812...`` (half of
  them), ``0812...``, ``+62812...`` or ``0812-3456-7890``; the key is the normalised number.
* duplicate: a number already generated (same name, same key) spelled differently, so
  de-duplication has to work on the normalised number.
* invalid (for dead-letter tests), key ``None``: truncated JSON (``not_json``), a record
  without ``msisdn`` (``no_msisdn``), or a Jakarta landline ``021-...`` (``invalid_msisdn``).

The counts are exact: ``round(count * invalid)`` invalid records and ``round(count *
duplicates)`` duplicates, placed uniformly at random (selection sampling), the rest fresh.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import accumulate
from typing import Final

__all__ = [
    "DEFAULT_MIX",
    "OPERATOR_PREFIXES",
    "GeneratorPlan",
    "parse_mix",
    "plan",
    "prefix_operator",
    "synthetic_recipients",
]

#: Mobile prefixes (national form without the trunk 0) per operator, from SMPP-FACTS.md.
#: AXIS (831-833, 838) belongs to XL. The engine routes by the map in its configuration;
#: this table only shapes synthetic data.
OPERATOR_PREFIXES: Final[Mapping[str, tuple[str, ...]]] = {
    "telkomsel": ("811", "812", "813", "821", "822", "823", "851", "852", "853"),
    "indosat": ("814", "815", "816", "855", "856", "857", "858", "895", "896", "897", "898", "899"),
    "xl": ("817", "818", "819", "859", "877", "878", "879", "831", "832", "833", "838"),
    "smartfren": ("881", "882", "883", "887", "888", "889"),
}
DEFAULT_MIX: Final[Mapping[str, float]] = {
    "telkomsel": 0.5,
    "indosat": 0.25,
    "xl": 0.2,
    "smartfren": 0.05,
}

_LEN7: Final = 10**7  # subscriber numbers with 7 digits: [0, 1e7)
_LEN8: Final = 10**8  # with 8 digits: [1e7, 1.1e8)
_SPACE: Final = _LEN7 + 2 * _LEN8  # plus 1e8 of the 9-digit ones: [1.1e8, 2.1e8)

_FIRST: Final = (
    "Budi", "Siti", "Agus", "Dewi", "Eko", "Sri", "Andi", "Rina", "Joko", "Wati", "Hendra",
    "Lestari", "Rudi", "Ayu", "Bambang", "Putri", "Dedi", "Indah", "Yudi", "Fitri", "Adi",
    "Nur", "Rizky", "Maya", "Arif", "Ratna", "Dimas", "Sari", "Fajar", "Wulan", "Bayu", "Intan",
)  # fmt: skip
_LAST: Final = (
    "Santoso", "Wijaya", "Saputra", "Hidayat", "Kusuma", "Pratama", "Susanto", "Lubis",
    "Nasution", "Siregar", "Setiawan", "Gunawan", "Halim", "Tanjung", "Simanjuntak", "Wibowo",
    "Purnomo", "Harahap", "Sitompul", "Nugroho", "Rahman", "Suryadi", "Hakim", "Utomo",
)  # fmt: skip
# Spelling of a fresh number by (v // 7) % 8: half normalised, then 0812..., +62..., dashed.
_SPELLING_OF: Final = (0, 0, 0, 0, 1, 1, 2, 3)
_SPELLINGS: Final = 4


def parse_mix(text: str) -> dict[str, float]:
    """Parse ``telkomsel=0.5,indosat=0.25,...`` into weights summing to 1.

    Weights need not sum to 1 (they are normalised); operators left out get none.

    Raises:
        ValueError: unknown operator, repeated operator, malformed or negative weight, or all
            weights zero.
    """
    weights: dict[str, float] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        name, sep, number = part.partition("=")
        name = name.strip().lower()
        if not sep:
            raise ValueError(f"mix entry {part.strip()!r} is not OPERATOR=WEIGHT")
        if name not in OPERATOR_PREFIXES:
            known = ", ".join(OPERATOR_PREFIXES)
            raise ValueError(f"unknown operator {name!r} in mix (known: {known})")
        if name in weights:
            raise ValueError(f"operator {name!r} appears twice in the mix")
        try:
            weight = float(number)
        except ValueError:
            raise ValueError(f"weight of {name!r} is not a number: {number.strip()!r}") from None
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"weight of {name!r} must be a non-negative number")
        weights[name] = weight
    return _normalised(weights)


def _normalised(mix: Mapping[str, float]) -> dict[str, float]:
    for name, weight in mix.items():
        if name not in OPERATOR_PREFIXES:
            raise ValueError(f"unknown operator {name!r} in mix")
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"weight of {name!r} must be a non-negative number")
    total = sum(mix.values())
    if total <= 0:
        raise ValueError("the mix has no positive weight")
    return {name: w / total for name, w in mix.items() if w > 0}


def prefix_operator(msisdn: str) -> str | None:
    """Operator of a normalised MSISDN (``62`` + national) by the synthetic prefix table."""
    return _OPERATOR_OF_PREFIX.get(msisdn[2:5])


_OPERATOR_OF_PREFIX: Final = {p: op for op, ps in OPERATOR_PREFIXES.items() for p in ps}


@dataclass(frozen=True, slots=True)
class GeneratorPlan:
    """How many records of each kind :func:`synthetic_recipients` yields for its arguments."""

    count: int
    fresh: int
    duplicates: int
    invalid: int


def plan(count: int, duplicates: float = 0.0, invalid: float = 0.0) -> GeneratorPlan:
    """Split ``count`` records into fresh, duplicate and invalid ones.

    Raises:
        ValueError: negative count, a fraction outside [0, 1], fractions summing over 1, or
            duplicates requested with no fresh record to repeat.
    """
    if count < 0:
        raise ValueError("count must not be negative")
    for label, f in (("duplicates", duplicates), ("invalid", invalid)):
        if not 0.0 <= f <= 1.0:
            raise ValueError(f"{label} must be a fraction between 0 and 1")
    n_invalid = round(count * invalid)
    n_dup = round(count * duplicates)
    n_fresh = count - n_invalid - n_dup
    if n_fresh < 0:
        raise ValueError("duplicates + invalid must not exceed 1")
    if n_dup and not n_fresh:
        raise ValueError("duplicates need at least one fresh record to repeat")
    return GeneratorPlan(count, n_fresh, n_dup, n_invalid)


class _Prefix:
    __slots__ = ("a", "b", "drawn", "head")

    def __init__(self, prefix: str, rng: random.Random) -> None:
        self.head = prefix  # national digits before the subscriber number
        self.a = _coprime_multiplier(rng)
        self.b = rng.randrange(_SPACE)
        self.drawn = 0

    def number(self, index: int) -> tuple[str, int]:
        """National number of the ``index``-th draw, and the permuted value behind it."""
        v = (self.a * index + self.b) % _SPACE
        if v < _LEN7:
            return f"{self.head}{v:07d}", v
        if v < _LEN7 + _LEN8:
            return f"{self.head}{v - _LEN7:08d}", v
        w = v - _LEN7 - _LEN8
        return f"{self.head}{w * 10 + (w // 10 + w) % 10:09d}", v


def _coprime_multiplier(rng: random.Random) -> int:
    while True:
        a = rng.randrange(_SPACE // 3, 2 * _SPACE // 3)
        if math.gcd(a, _SPACE) == 1:
            return a


def _spell(national: str, spelling: int) -> str:
    if spelling == 0:
        return "62" + national
    if spelling == 1:
        return "0" + national
    if spelling == 2:
        return "+62" + national
    return f"0{national[:3]}-{national[3:7]}-{national[7:]}"


def _name(v: int) -> str:
    return f"{_FIRST[v % len(_FIRST)]} {_LAST[(v // len(_FIRST)) % len(_LAST)]}"


def synthetic_recipients(
    count: int,
    mix: Mapping[str, float] | None = None,
    seed: int | None = 0,
    duplicates: float = 0.0,
    invalid: float = 0.0,
) -> Iterator[tuple[bytes | None, bytes]]:
    """Yield ``count`` synthetic segment records as ``(key, value)``.

    Args:
        count: total records, duplicates and invalid ones included.
        mix: operator weights (``{"telkomsel": 0.5, ...}``, normalised); default
            :data:`DEFAULT_MIX`. Each fresh number picks an operator by weight, then one of
            its prefixes uniformly.
        seed: the same seed gives the same records, byte for byte.
        duplicates: fraction of records that repeat an earlier number (exact count).
        invalid: fraction of records that fail :func:`parse_record` (exact count).

    Yields:
        ``(key, value)``: key = normalised MSISDN (``b"62812..."``) for valid records and
        ``None`` for invalid ones; value = the UTF-8 JSON record.

    Raises:
        ValueError: see :func:`plan` and :func:`parse_mix`; also if one prefix's number space
            (210 million) runs out.
    """
    counts = plan(count, duplicates, invalid)
    weights = _normalised(DEFAULT_MIX if mix is None else mix)
    rng = random.Random(seed)
    prefixes: list[_Prefix] = []
    cumulative_weights: list[float] = []
    for operator, weight in weights.items():
        for p in OPERATOR_PREFIXES[operator]:
            prefixes.append(_Prefix(p, rng))
            cumulative_weights.append(weight / len(OPERATOR_PREFIXES[operator]))
    cum = list(accumulate(cumulative_weights))
    last_cum = len(cum) - 1
    rand = rng.random

    def pick() -> _Prefix:
        return prefixes[min(bisect_right(cum, rand() * cum[-1]), last_cum)]

    fresh_left, dup_left, invalid_left = counts.fresh, counts.duplicates, counts.invalid
    last_fresh: _Prefix | None = None
    for _ in range(count):
        if invalid_left or dup_left:
            r = rand() * (fresh_left + dup_left + invalid_left)
            if r < invalid_left:
                invalid_left -= 1
                yield None, _invalid_record(rng)
                continue
            if r < invalid_left + dup_left and last_fresh is not None:
                dup_left -= 1
                prefix = pick()
                if not prefix.drawn:
                    prefix = last_fresh
                national, v = prefix.number(int(rand() * prefix.drawn))
                original = _SPELLING_OF[(v // 7) % 8]
                spelling = (original + 1 + int(rand() * (_SPELLINGS - 1))) % _SPELLINGS
                yield _record(national, spelling, v)
                continue
        # A fresh number (also when a duplicate comes up before anything could be repeated;
        # then a later fresh slot becomes the duplicate, so the counts stay exact).
        if fresh_left:
            fresh_left -= 1
        else:
            dup_left -= 1
        prefix = pick()
        if prefix.drawn >= _SPACE:
            raise ValueError(f"prefix 0{prefix.head} has no unused numbers left")
        national, v = prefix.number(prefix.drawn)
        prefix.drawn += 1
        last_fresh = prefix
        yield _record(national, _SPELLING_OF[(v // 7) % 8], v)


def _record(national: str, spelling: int, v: int) -> tuple[bytes, bytes]:
    value = f'{{"msisdn":"{_spell(national, spelling)}","name":"{_name(v)}"}}'
    return b"62" + national.encode("ascii"), value.encode("ascii")


def _invalid_record(rng: random.Random) -> bytes:
    kind = rng.randrange(3)
    v = rng.randrange(_LEN7)
    if kind == 0:  # truncated JSON
        return f'{{"msisdn":"0812{v:07d}","name":"{_name(v)}"'.encode("ascii")
    if kind == 1:  # no msisdn
        return f'{{"name":"{_name(v)}"}}'.encode("ascii")
    return f'{{"msisdn":"021-{v:07d}","name":"{_name(v)}"}}'.encode("ascii")  # a landline
