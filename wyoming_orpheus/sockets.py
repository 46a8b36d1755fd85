"""What both doors do to a client's socket."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable

SEND_BUFFER_BYTES = 128 * 1024
"""Asked of the kernel per client (Linux doubles it): ~5 s of 24 kHz PCM at most."""


def bound_send_buffer(transport: asyncio.BaseTransport | None) -> None:
    """Cap the kernel's send buffer for one client connection.

    NOTE: Linux grows a TCP send buffer up to tcp_wmem's maximum (4 MiB, ~45 s of PCM)
    when nobody asks otherwise. A client that stops reading would then be noticed only after
    that much audio, holding its synthesis slot meanwhile, and a thousand such clients could
    pin gigabytes of kernel memory. A bounded buffer lets write_timeout notice it within
    seconds; audio needs ~50-150 kB/s, far below what 128 KiB sustains on any LAN.
    """
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)


async def write_within(
    write: Awaitable[None], transport: asyncio.WriteTransport | None, write_timeout: float
) -> None:
    """Await a write to a client; one that reads nothing for `write_timeout` s is dropped.

    NOTE: a write waits while the client's socket buffers are full; without a bound, a client
    that stops reading would hold its synthesis slot, its upstream request and the audio
    queued for it for as long as it keeps the connection open. Its connection is aborted and
    ConnectionResetError raised, as if it had gone away.
    """
    try:
        async with asyncio.timeout(write_timeout):
            await write
    except TimeoutError:
        if transport is not None:
            transport.abort()
        raise ConnectionResetError(
            f"client read nothing for {write_timeout:g} s (write_timeout)"
        ) from None
