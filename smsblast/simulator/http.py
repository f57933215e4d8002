"""A tiny HTTP/1.1 endpoint for QA: ``GET /stats`` (JSON), ``GET /metrics`` (Prometheus),
``GET /healthz``. One request per connection (:mod:`smsblast.minihttp`); anything else is
404 or 405."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

from smsblast.minihttp import Request, Response, serve_http, text_response
from smsblast.simulator.metrics import render_metrics

if TYPE_CHECKING:
    from smsblast.simulator.server import Simulator

__all__ = ["handle_request", "start_http"]


def handle_request(sim: Simulator, request: Request) -> Response:
    """The response to one request."""
    if request.method not in ("GET", "HEAD"):
        return text_response(405, "only GET", {"Allow": "GET, HEAD"})
    path = request.path
    if path == "/stats":
        body = json.dumps(sim.stats(), indent=2).encode() + b"\n"
        return Response(200, body, "application/json")
    if path == "/metrics":
        return Response(200, render_metrics(sim), "text/plain; version=0.0.4; charset=utf-8")
    if path == "/healthz":
        return text_response(200, "ok")
    return text_response(404, "not found")


async def start_http(sim: Simulator, host: str, port: int) -> asyncio.Server:
    """Serve the QA endpoint on ``host:port`` (0 = a free port)."""

    async def handler(request: Request) -> Response:
        return handle_request(sim, request)

    return await serve_http(handler, host, port)
