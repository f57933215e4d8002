"""The admin HTTP API: health, readiness, list and inspect campaigns, pause / resume / cancel.

Every request needs ``Authorization: Bearer <token>`` (compared in constant time); without it
the answer is 401 with ``WWW-Authenticate: Bearer`` and nothing else, whatever the path. Then:

=======  ================================  ==========================================
GET      ``/healthz``                      200: the process is alive
GET      ``/readyz``                       200 when the engine is ready, else 503
GET      ``/campaigns``                    200: ``{"campaigns": [...]}``
GET      ``/campaigns/{name}``             200: the campaign in detail; 404 unknown
POST     ``/campaigns/{name}/{action}``    action pause, resume or cancel: 200 with
                                           ``{"campaign", "control"}``; 404 unknown
                                           campaign (one the engine runs but has not
                                           opened yet is known: it opens with the
                                           control); 409 pause/resume a cancelled one
=======  ================================  ==========================================

A campaign name is one percent-decoded path segment (``spring%40w2`` is ``spring@w2``). A
path that cannot be a name (empty, undecodable, a control character or a slash once decoded)
is a 400; a known path with the wrong method is a 405 with ``Allow``. Bodies are JSON.
"""

from __future__ import annotations

import asyncio
import hmac
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote

from smsblast.admin.control import ACTIONS, ControlConflict, Controller, UnknownCampaign
from smsblast.config import AdminConfig
from smsblast.minihttp import Request, Response, json_response, serve_http

__all__ = [
    "BadPath",
    "Route",
    "authorized",
    "handle",
    "parse_route",
    "serve_admin",
    "start_admin",
]

_READ: Final = ("GET", "HEAD")
_WRITE: Final = ("POST",)
_MAX_NAME: Final = 200


class BadPath(ValueError):
    """A request path that cannot name an endpoint or a campaign."""


@dataclass(frozen=True, slots=True)
class Route:
    """Where a path leads: ``endpoint`` (``health``, ``ready``, ``list``, ``inspect`` or an
    action of :data:`~smsblast.admin.control.ACTIONS`), the campaign name for the campaign
    endpoints, and the methods it accepts."""

    endpoint: str
    campaign: str | None
    methods: tuple[str, ...]


def _campaign_name(segment: str) -> str:
    try:
        name = unquote(segment, errors="strict")
    except UnicodeDecodeError:
        raise BadPath("the campaign name is not valid UTF-8 once percent-decoded") from None
    if not name:
        raise BadPath("empty campaign name")
    if len(name) > _MAX_NAME or "/" in name or not name.isprintable() or name in (".", ".."):
        raise BadPath("not a campaign name")
    return name


def parse_route(path: str) -> Route | None:
    """The :class:`Route` of ``path`` (without query string), or ``None`` when no endpoint
    lives there.

    Raises:
        BadPath: a campaign path whose name segment is empty or cannot be a name.
    """
    if path == "/healthz":
        return Route("health", None, _READ)
    if path == "/readyz":
        return Route("ready", None, _READ)
    if path in ("/campaigns", "/campaigns/"):
        return Route("list", None, _READ)
    if not path.startswith("/campaigns/"):
        return None
    segments = path.removeprefix("/campaigns/").split("/")
    name = _campaign_name(segments[0])
    if len(segments) == 1:
        return Route("inspect", name, _READ)
    if len(segments) == 2 and segments[1] in ACTIONS:
        return Route(segments[1], name, _WRITE)
    if len(segments) == 2 and segments[1]:
        return None
    raise BadPath("malformed campaign path")


def authorized(request: Request, token: bytes) -> bool:
    """Whether ``request`` carries ``Authorization: Bearer <token>`` (constant-time compare;
    the scheme is case-insensitive)."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip(" ").encode("latin-1"), token)


_UNAUTHORIZED: Final = json_response(
    401, {"error": "unauthorized"}, {"WWW-Authenticate": 'Bearer realm="smsblast"'}
)


async def handle(controller: Controller, token: bytes, request: Request) -> Response:
    """The response to one admin request (see the module docstring)."""
    if not authorized(request, token):
        return _UNAUTHORIZED
    try:
        route = parse_route(request.path)
    except BadPath as exc:
        return json_response(400, {"error": str(exc)})
    if route is None:
        return json_response(404, {"error": "not found"})
    if request.method not in route.methods:
        allow = ", ".join(route.methods)
        return json_response(405, {"error": f"use {allow}"}, {"Allow": allow})
    name = route.campaign or ""
    if route.endpoint == "health":
        return json_response(200, {"status": "ok"})
    if route.endpoint == "ready":
        ready = controller.ready()
        return json_response(200 if ready else 503, {"ready": ready})
    if route.endpoint == "list":
        return json_response(200, {"campaigns": await controller.campaigns()})
    if route.endpoint == "inspect":
        entry = await controller.inspect(name)
        if entry is None:
            return json_response(404, {"error": f"no campaign {name}"})
        return json_response(200, entry)
    try:
        control = await controller.set_control(name, ACTIONS[route.endpoint])
    except UnknownCampaign as exc:
        return json_response(404, {"error": str(exc)})
    except ControlConflict as exc:
        return json_response(409, {"error": str(exc)})
    return json_response(200, {"campaign": name, "control": control})


async def start_admin(
    controller: Controller, token: str, host: str, port: int, *, timeout: float = 10.0
) -> asyncio.Server:
    """Serve the admin API on ``host:port`` (port 0: a free one). A client has ``timeout``
    seconds to send its request and to read the answer.

    Raises:
        ValueError: ``token`` is empty.
        OSError: the address cannot be bound.
    """
    if not token:
        raise ValueError("the admin API needs a non-empty token")
    secret = token.encode()

    async def handler(request: Request) -> Response:
        return await handle(controller, secret, request)

    return await serve_http(handler, host, port, timeout=timeout)


async def serve_admin(config: AdminConfig, controller: Controller) -> asyncio.Server | None:
    """Start the admin API as configured (``admin`` of the engine config), or return ``None``
    when it is off (no ``listen``).

    Raises:
        ConfigError: the token cannot be read (unset or empty variable, unreadable or empty
            file).
        OSError: the address cannot be bound.
    """
    address = config.listen_address()
    if address is None:
        return None
    return await start_admin(controller, config.token(), *address)
