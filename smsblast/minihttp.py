"""A minimal HTTP/1.1 server for small JSON and text endpoints (the simulator's QA endpoint,
the engine's admin API).

Theory of operation
-------------------
One request per connection, then ``Connection: close``. The parsing and the response bytes
are pure functions (:func:`parse_head`, :func:`encode_response`); :func:`serve_http` is the
only code that touches a socket. It reads the request head (bounded by ``max_head`` bytes and
``timeout`` seconds, so a client sending huge headers or one byte a minute costs nothing but a
short wait, and at most ``max_connections`` such clients at a time), a body only when
``Content-Length`` announces one of at most ``max_body`` bytes, hands a :class:`Request` to
the caller's handler and writes back its :class:`Response`.

A malformed request gets a 4xx answer (JSON, ``{"error": ...}``) without reaching the handler;
a handler that raises gets a 500 (logged); nothing a client sends can stop the server.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Final

__all__ = [
    "BadRequest",
    "Handler",
    "Request",
    "Response",
    "encode_response",
    "json_response",
    "parse_head",
    "serve_http",
    "text_response",
]

log = logging.getLogger(__name__)

MAX_HEAD: Final = 16 * 1024
MAX_BODY: Final = 64 * 1024
MAX_CONNECTIONS: Final = 100
LINGER_S: Final = 1.0
TIMEOUT_S: Final = 10.0
_MAX_HEADERS: Final = 100
# Headers a request may carry once at most: two values would be ambiguous.
_SINGLE: Final = frozenset({"authorization", "content-length", "host", "transfer-encoding"})
_TOKEN_CHARS: Final = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz")


class BadRequest(Exception):
    """The client sent something that is not an acceptable HTTP/1.1 request.

    ``status`` is the response code to answer with (400, 413, 431 or 501).
    """

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Request:
    """One parsed request. ``headers`` has lowercase names; ``path`` is the target without
    its query string, still percent-encoded."""

    method: str
    target: str
    headers: Mapping[str, str]
    body: bytes = b""

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: Mapping[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Awaitable[Response]]


def text_response(status: int, text: str, headers: Mapping[str, str] | None = None) -> Response:
    """A ``text/plain`` response (a newline is appended)."""
    return Response(status, text.encode() + b"\n", headers=headers or {})


def json_response(status: int, data: Any, headers: Mapping[str, str] | None = None) -> Response:
    """An ``application/json`` response (indented, newline-terminated; values JSON cannot
    represent are written as their ``str()``)."""
    body = json.dumps(data, indent=2, sort_keys=True, default=str).encode() + b"\n"
    return Response(status, body, "application/json", headers or {})


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def encode_response(response: Response, *, head_only: bool = False) -> bytes:
    """The bytes of ``response`` (status line, headers, body unless ``head_only``), with
    ``Content-Length`` and ``Connection: close``."""
    lines = [
        f"HTTP/1.1 {response.status} {_reason(response.status)}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in response.headers.items()),
    ]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + response.body


def parse_head(head: bytes) -> Request:
    """Parse a request head (request line and headers, up to and including the blank line).

    Returns a :class:`Request` without a body.

    Raises:
        BadRequest: not an HTTP/1.x request line, a target that is not an absolute path,
            a malformed or repeated header line, more than 100 headers.
    """
    text = head.decode("latin-1")
    request_line, _, rest = text.partition("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3 or not request_line.isascii() or not request_line.isprintable():
        raise BadRequest("malformed request line")
    method, target, version = parts
    if not method or not set(method.lower()) <= _TOKEN_CHARS:
        raise BadRequest("malformed method")
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise BadRequest(f"unsupported protocol version {version[:16]!r}")
    if not target.startswith("/"):
        raise BadRequest("the request target must be an absolute path")
    headers: dict[str, str] = {}
    lines = [line for line in rest.split("\r\n") if line]
    if len(lines) > _MAX_HEADERS:
        raise BadRequest("too many headers", 431)
    for line in lines:
        name, sep, value = line.partition(":")
        name = name.lower()
        if not sep or not name or not set(name) <= _TOKEN_CHARS:
            raise BadRequest("malformed header line")
        if name in headers and name in _SINGLE:
            raise BadRequest(f"header {name} is repeated")
        headers[name] = value.strip(" \t")
    return Request(method, target, headers)


def _body_length(request: Request, max_body: int) -> int:
    if "transfer-encoding" in request.headers:
        raise BadRequest("Transfer-Encoding is not supported: send Content-Length", 501)
    text = request.headers.get("content-length", "0")
    if not (text.isascii() and text.isdigit()) or len(text) > 12:
        raise BadRequest("malformed Content-Length")
    length = int(text)
    if length > max_body:
        raise BadRequest(f"the body is larger than {max_body} bytes", 413)
    return length


async def _read_request(
    reader: asyncio.StreamReader, max_body: int, timeout: float
) -> Request | Response:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        request = parse_head(head)
        length = _body_length(request, max_body)
        if length:
            body = await asyncio.wait_for(reader.readexactly(length), timeout)
            request = Request(request.method, request.target, request.headers, body)
    except asyncio.LimitOverrunError:
        return json_response(431, {"error": "request head too large"})
    except TimeoutError:
        return json_response(408, {"error": "request timeout"})
    except BadRequest as exc:
        return json_response(exc.status, {"error": str(exc)})
    return request


async def _linger(reader: asyncio.StreamReader, budget: int, seconds: float) -> None:
    """After the answer: read and drop what the client still sends (a body never read, the
    rest of a refused request) until it hangs up, ``budget`` bytes or ``seconds`` pass.
    Closing a socket with unread input resets the connection, and the client could lose the
    answer."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while budget > 0:
        chunk = await asyncio.wait_for(reader.read(budget), max(0.0, deadline - loop.time()))
        if not chunk:
            return
        budget -= len(chunk)


async def serve_http(
    handler: Handler,
    host: str,
    port: int,
    *,
    max_head: int = MAX_HEAD,
    max_body: int = MAX_BODY,
    timeout: float = TIMEOUT_S,
    max_connections: int = MAX_CONNECTIONS,
) -> asyncio.Server:
    """Serve ``handler`` on ``host:port`` (port 0: a free one), one request per connection.

    ``HEAD`` requests are passed to the handler as they are; the body of the answer is left
    out. Beyond ``max_connections`` open connections, a new one is answered 503 at once.
    Returns the listening server (close it with ``close()`` and ``wait_closed()``).
    """
    open_connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal open_connections
        open_connections += 1
        try:
            if open_connections > max_connections:
                parsed: Request | Response = json_response(503, {"error": "too many connections"})
            else:
                parsed = await _read_request(reader, max_body, timeout)
            head_only = False
            if isinstance(parsed, Request):
                head_only = parsed.method == "HEAD"
                try:
                    response = await handler(parsed)
                except Exception:
                    log.exception("http %s %s: handler failed", parsed.method, parsed.path[:200])
                    response = json_response(500, {"error": "internal error"})
            else:
                response = parsed
            writer.write(encode_response(response, head_only=head_only))
            await asyncio.wait_for(writer.drain(), timeout)
            if writer.can_write_eof():
                writer.write_eof()
            await _linger(reader, max_head + max_body, LINGER_S)
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass  # the client went away or stopped reading
        except Exception:  # an endpoint must never take its process down
            log.exception("http: request failed")
        finally:
            open_connections -= 1
            # no wait_closed(): a handler still waiting there when the loop shuts down
            # would be cancelled and logged as an error
            writer.close()

    return await asyncio.start_server(serve, host, port, limit=max_head)
