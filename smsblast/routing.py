"""Prefix routing: which operator route a normalised MSISDN goes to.

Routes map to national-number prefixes (``"812"``: the national number without the trunk
``0``). :meth:`Router.route` strips the country code from a normalised MSISDN
(``6281234567890`` -> ``81234567890``) and picks the route of the longest prefix the number
starts with, so a route owning ``"8123"`` wins over one owning ``"812"``.

The table is one dict from prefix to route; a lookup tries each distinct prefix length once,
longest first, so routing costs a handful of slices and dict probes whatever the table size.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from smsblast.config import EngineConfig

__all__ = ["Router"]


class Router:
    """Longest-prefix router over ``{route_name: prefixes}``.

    Raises ``ValueError`` at construction when a prefix is empty or not all digits, or when
    one prefix is given to two routes (the message names both).
    """

    __slots__ = ("_country_code", "_lengths", "_routes", "_table")

    def __init__(self, routes: Mapping[str, Iterable[str]], country_code: str = "62") -> None:
        if not country_code.isdigit():
            raise ValueError(f"country code must be digits, not {country_code!r}")
        table: dict[str, str] = {}
        for route, prefixes in routes.items():
            for prefix in prefixes:
                if not (prefix.isascii() and prefix.isdigit()):
                    raise ValueError(f"route {route!r}: prefix {prefix!r} is not all digits")
                owner = table.setdefault(prefix, route)
                if owner != route:
                    raise ValueError(f"prefix {prefix!r} is in both routes {owner!r} and {route!r}")
        self._country_code = country_code
        self._table = table
        self._lengths = tuple(sorted({len(prefix) for prefix in table}, reverse=True))
        self._routes = tuple(routes)

    @classmethod
    def from_config(cls, cfg: EngineConfig) -> Router:
        """The router for an engine configuration's routes and country code."""
        return cls(
            {name: route.prefixes for name, route in cfg.routes.items()},
            country_code=cfg.country_code,
        )

    @property
    def country_code(self) -> str:
        return self._country_code

    @property
    def routes(self) -> tuple[str, ...]:
        """Route names in configuration order (routes without prefixes included)."""
        return self._routes

    def prefixes(self) -> dict[str, str]:
        """A copy of the table: prefix -> route name."""
        return dict(self._table)

    def route(self, msisdn: str) -> str | None:
        """The route for a normalised MSISDN (``"6281234567890"``), or ``None``.

        ``None`` when the number does not start with the country code or when no prefix
        matches its national part. The input is not validated: normalise it first with
        :func:`smsblast.msisdn.normalize_msisdn`.
        """
        country_code = self._country_code
        if not msisdn.startswith(country_code):
            return None
        national = msisdn[len(country_code) :]
        table = self._table
        available = len(national)
        for length in self._lengths:
            if length <= available:
                route = table.get(national[:length])
                if route is not None:
                    return route
        return None

    def __repr__(self) -> str:
        return f"Router(routes={list(self._routes)!r}, prefixes={len(self._table)})"
