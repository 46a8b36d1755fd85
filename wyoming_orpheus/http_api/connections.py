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

from .server_seam import Connection, close, connection_of, open_connections, watch

_LOGGER = logging.getLogger(__name__)


class ConnectionGuard:
    """Counts requests in flight per connection and makes room at the bound."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._server: web.Server | None = None
        self._in_flight: dict[Connection, int] = {}
        self._last_active: dict[Connection, float] = {}
        self._closing: set[Connection] = set()
        """Connections closed to make room whose connection_lost has not run yet.

        NOTE: issue 31: they stay in the server's list until then, so under a burst the
        same one was "closed" again for every newcomer and the bound did not hold."""

    def attach(self, server: web.Server) -> None:
        """Watch the server's connections as they come and go."""
        self._server = server
        watch(server, self._made, self._lost)

    def _made(self, connection: Connection, transport: asyncio.Transport) -> None:
        self._last_active[connection] = time.monotonic()
        self._admit(connection, transport)

    def _lost(self, connection: Connection) -> None:
        self._last_active.pop(connection, None)
        self._in_flight.pop(connection, None)
        self._closing.discard(connection)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Mark the connection busy while its request (and streamed body) is handled."""
        connection = connection_of(request)
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

    def _admit(self, newcomer: Connection, transport: asyncio.Transport) -> None:
        assert self._server is not None
        connections = [h for h in open_connections(self._server) if h not in self._closing]
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
            close(oldest)
            return
        _LOGGER.warning(
            "Refusing an HTTP connection: all %d open connections have requests in flight "
            "(http_max_connections)",
            self._limit,
        )
        transport.write(_busy_response(self._limit))
        self._closing.add(newcomer)
        close(newcomer)  # closes the transport once the answer is written


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
