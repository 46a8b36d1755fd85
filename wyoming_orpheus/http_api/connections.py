"""A bound on the HTTP door's open connections that never locks out a client with a request.

NOTE: issue 19: at the bound, a new connection closes the one idle longest (keep-alive,
silent, or still trickling its headers); only when every open connection has a request in
flight is the newcomer answered 503 `busy`. aiohttp has no connection limit of its own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from aiohttp import web
from aiohttp.typedefs import Handler
from aiohttp.web_protocol import RequestHandler

_LOGGER = logging.getLogger(__name__)


class ConnectionGuard:
    """Counts requests in flight per connection and makes room at the bound."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._server: web.Server | None = None
        self._in_flight: dict[RequestHandler, int] = {}
        self._last_active: dict[RequestHandler, float] = {}
        self._closing: set[RequestHandler] = set()
        """Connections closed to make room whose connection_lost has not run yet.

        NOTE: issue 31: they stay in the server's list until then, so under a burst the
        same one was "closed" again for every newcomer and the bound did not hold."""

    def attach(self, server: web.Server) -> None:
        """Watch the server's connections as they come and go."""
        self._server = server
        made, lost = server.connection_made, server.connection_lost

        def connection_made(handler: RequestHandler, transport: asyncio.Transport) -> None:
            made(handler, transport)
            self._last_active[handler] = time.monotonic()
            self._admit(handler, transport)

        def connection_lost(handler: RequestHandler, exc: BaseException | None = None) -> None:
            self._last_active.pop(handler, None)
            self._in_flight.pop(handler, None)
            self._closing.discard(handler)
            lost(handler, exc)

        # The aiohttp server has no hook for this; wrapping its two callbacks is the seam.
        server.connection_made = connection_made  # type: ignore[method-assign]
        server.connection_lost = connection_lost  # type: ignore[method-assign]

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Mark the connection busy while its request (and streamed body) is handled."""
        connection = request.protocol
        assert isinstance(connection, RequestHandler)
        self._in_flight[connection] = self._in_flight.get(connection, 0) + 1
        try:
            return await handler(request)
        finally:
            left = self._in_flight.get(connection, 1) - 1
            if left:
                self._in_flight[connection] = left
            else:
                self._in_flight.pop(connection, None)
            self._last_active[connection] = time.monotonic()

    def _admit(self, newcomer: RequestHandler, transport: asyncio.Transport) -> None:
        assert self._server is not None
        connections = [h for h in self._server.connections if h not in self._closing]
        if len(connections) <= self._limit:
            return
        now = time.monotonic()
        idle = [h for h in connections if h is not newcomer and h not in self._in_flight]
        if idle:
            oldest = min(idle, key=lambda h: self._last_active.get(h, now))
            _LOGGER.debug(
                "Closing the HTTP connection idle longest (%.1f s) to admit a new one",
                now - self._last_active.get(oldest, now),
            )
            self._closing.add(oldest)
            oldest.force_close()
            return
        _LOGGER.warning(
            "Refusing an HTTP connection: all %d open connections have requests in flight "
            "(http_max_connections)",
            self._limit,
        )
        transport.write(_busy_response(self._limit))
        self._closing.add(newcomer)
        newcomer.force_close()  # closes the transport once the answer is written


def _busy_response(limit: int) -> bytes:
    """A whole 503 answer in OpenAI's error envelope, written before any request is read."""
    message = f"server busy: {limit} connections are open, each with a request; try again shortly"
    body = json.dumps(
        {"error": {"message": message, "type": "server_error", "param": None, "code": "busy"}}
    ).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body
