"""The Wyoming listener: accept connections, run a handler each, shut down gracefully."""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from urllib.parse import urlparse

from wyoming.error import Error
from wyoming.event import async_write_event
from wyoming.info import Info

from ..config import LimitSettings
from ..sockets import bound_send_buffer
from ..synthesis.synthesizer import Synthesizer
from .handler import OrpheusEventHandler
from .protocol import MAX_HEADER_BYTES

_LOGGER = logging.getLogger(__name__)


class WyomingServer:
    """Serves the Wyoming protocol on a tcp:// or unix:// URI."""

    def __init__(
        self, uri: str, info: Info, synthesizer: Synthesizer, limits: LimitSettings
    ) -> None:
        self._uri = urlparse(uri)
        self._factory = partial(
            OrpheusEventHandler, info=info, synthesizer=synthesizer, limits=limits
        )
        self._max_connections = limits.wyoming_max_connections
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], OrpheusEventHandler] = {}

    @property
    def host(self) -> str:
        """Return the address the server is bound to."""
        return self._uri.hostname or ""

    @property
    def port(self) -> int:
        """Return the bound TCP port (the real one when the URI asked for port 0)."""
        assert self._server is not None and self._server.sockets
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Start listening."""
        if self._uri.scheme == "unix":
            self._server = await asyncio.start_unix_server(
                self._accept, path=self._uri.path, limit=MAX_HEADER_BYTES
            )
        elif self._uri.scheme == "tcp":
            self._server = await asyncio.start_server(
                self._accept, host=self._uri.hostname, port=self._uri.port, limit=MAX_HEADER_BYTES
            )
        else:
            raise ValueError(
                f"unsupported Wyoming URI {self._uri.geturl()} (use tcp:// or unix://)"
            )
        _LOGGER.info("Wyoming server listening on %s", self._uri.geturl())

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._connections) >= self._max_connections and not self._evict_idle():
            await _turn_away(writer, self._max_connections)
            return
        bound_send_buffer(writer.transport)
        handler = self._factory(reader, writer)
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = handler
        try:
            await handler.run()
        except ConnectionError:
            _LOGGER.debug("Client connection lost")
        finally:
            self._connections.pop(task, None)

    def _evict_idle(self) -> bool:
        """Close the connection idle longest to make room; False if every one has work.

        NOTE: issue 19: refusing newcomers at the limit let silent sockets (a port scanner, a
        broken device) lock Home Assistant out until they timed out; the limit must protect
        the clients that want speech, not the idle ones.
        """
        idle = [(h.idle_for(), task) for task, h in self._connections.items() if not h.busy]
        if not idle:
            return False
        seconds, task = max(idle, key=lambda item: item[0])
        _LOGGER.debug("Closing the connection idle longest (%.1f s) to admit a new one", seconds)
        self._connections.pop(task).close()
        return True

    async def shutdown(self, grace: float) -> None:
        """Stop accepting, let in-flight syntheses finish within grace, then close all."""
        if self._server is not None:
            self._server.close()
        handlers = list(self._connections.values())
        busy = sum(1 for h in handlers if h.busy)
        if busy:
            _LOGGER.info("Waiting up to %g s for %d syntheses to finish", grace, busy)
        await asyncio.gather(*(h.finish(grace) for h in handlers), return_exceptions=True)
        for handler in handlers:
            await handler.stop()  # closes the connection; its read loop then ends by itself
        tasks = list(self._connections)
        if tasks:
            _done, stuck = await asyncio.wait(tasks, timeout=1.0)
            for task in stuck:
                task.cancel()
        if self._server is not None:
            await self._server.wait_closed()


async def _turn_away(writer: asyncio.StreamWriter, limit: int) -> None:
    """Answer a connection over the limit with a busy error and close it."""
    _LOGGER.warning(
        "Refusing a connection: all %d open connections have syntheses in flight "
        "(wyoming_max_connections)",
        limit,
    )
    text = f"server busy: {limit} connections are open, each with a synthesis; try again shortly"
    try:
        async with asyncio.timeout(1.0):
            await async_write_event(Error(text=text, code="busy").event(), writer)
    except (TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()
