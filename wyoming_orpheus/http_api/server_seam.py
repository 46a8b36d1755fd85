"""The one place that relies on aiohttp's low-level server internals (not its public API).

aiohttp has no connection limit and no hook for a connection coming or going, so the bound on
open connections (connections.py) wraps `web.Server.connection_made/connection_lost`, reads
`web.Server.connections`, and closes a `RequestHandler` (`request.protocol`) with
`force_close()`. pyproject.toml bounds aiohttp below 4; tests/test_canaries.py checks each of
these against the installed release with a real socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

Connection = RequestHandler
"""One HTTP connection (aiohttp's protocol object for it)."""


def watch(
    server: web.Server,
    made: Callable[[Connection, asyncio.Transport], None],
    lost: Callable[[Connection], None],
) -> None:
    """Call `made` after aiohttp registers a connection and `lost` before it forgets one."""
    registered, forgotten = server.connection_made, server.connection_lost

    def connection_made(handler: RequestHandler, transport: asyncio.Transport) -> None:
        registered(handler, transport)
        made(handler, transport)

    def connection_lost(handler: RequestHandler, exc: BaseException | None = None) -> None:
        lost(handler)
        forgotten(handler, exc)

    server.connection_made = connection_made  # type: ignore[method-assign]
    server.connection_lost = connection_lost  # type: ignore[method-assign]


def open_connections(server: web.Server) -> list[Connection]:
    """Return the connections the server holds open."""
    return list(server.connections)


def connection_of(request: web.Request) -> Connection:
    """Return the connection a request came on."""
    connection = request.protocol
    assert isinstance(connection, RequestHandler)
    return connection


def close(connection: Connection) -> None:
    """Close a connection once what was written to it is sent."""
    connection.force_close()
