"""A tiny HTTP/1.1 endpoint for QA: ``GET /stats`` (JSON), ``GET /metrics`` (Prometheus),
``GET /healthz``. One request per connection; anything else is 404 or 405."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING

from smsblast.simulator.metrics import render_metrics

if TYPE_CHECKING:
    from smsblast.simulator.server import Simulator

__all__ = ["start_http"]

log = logging.getLogger(__name__)

_MAX_HEAD = 16 * 1024
_TIMEOUT_S = 10.0
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}


def _response(status: int, body: bytes, content_type: str) -> bytes:
    head = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def handle_request(sim: Simulator, request_line: str) -> bytes:
    """The whole HTTP response for one request line."""
    parts = request_line.split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        return _response(400, b"bad request\n", "text/plain")
    method, target, _version = parts
    if method not in ("GET", "HEAD"):
        return _response(405, b"only GET\n", "text/plain")
    path = target.split("?", 1)[0]
    if path == "/stats":
        body = json.dumps(sim.stats(), indent=2).encode() + b"\n"
        response = _response(200, body, "application/json")
    elif path == "/metrics":
        response = _response(200, render_metrics(sim), "text/plain; version=0.0.4; charset=utf-8")
    elif path == "/healthz":
        response = _response(200, b"ok\n", "text/plain")
    else:
        return _response(404, b"not found\n", "text/plain")
    if method == "HEAD":
        return response.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    return response


async def start_http(sim: Simulator, host: str, port: int) -> asyncio.Server:
    """Serve the QA endpoint on ``host:port`` (0 = a free port)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _TIMEOUT_S)
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            writer.write(handle_request(sim, line))
            await asyncio.wait_for(writer.drain(), _TIMEOUT_S)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        except ConnectionError:
            pass
        except Exception:  # the endpoint must never take the simulator down
            log.exception("simulator http: request failed")
        finally:
            # no wait_closed(): a handler still waiting there when the loop shuts down
            # would be cancelled and logged as an error
            writer.close()

    return await asyncio.start_server(serve, host, port, limit=_MAX_HEAD)
