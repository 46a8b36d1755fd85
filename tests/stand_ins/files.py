"""Serving a file's bytes as a download server does: Range requests, a slow link, a cut one.

Shared by the stand-ins of the Hugging Face hub and of llama.cpp's GitHub releases.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass

from aiohttp import web

CHUNK = 64 * 1024


@dataclass
class Link:
    """How the connection behaves while a body is sent."""

    bytes_per_second: float | None = None
    """Throttle bodies (None: as fast as possible)."""
    cut_after: int | None = None
    """Close the connection after this many body bytes of the next download (once)."""


def range_start(header: str | None) -> int:
    """Return where a `Range: bytes=N-` request starts (0 without one)."""
    if not header or not header.startswith("bytes="):
        return 0
    return int(header[len("bytes=") :].split("-", 1)[0] or 0)


async def send_file(
    request: web.Request, data: bytes, link: Link, headers: dict[str, str]
) -> web.StreamResponse:
    """Answer a GET (or HEAD) for data: 200, or 206 from where a Range asks."""
    start = range_start(request.headers.get("Range"))
    headers = {**headers, "Accept-Ranges": "bytes", "Content-Length": str(len(data) - start)}
    if request.method == "HEAD":
        return web.Response(status=200, headers={**headers, "Content-Length": str(len(data))})
    status = 200
    if start:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
    response = web.StreamResponse(status=status, headers=headers)
    await response.prepare(request)
    cut, link.cut_after = link.cut_after, None
    body, sent = data[start:], 0
    while sent < len(body):
        piece = body[sent : sent + CHUNK]
        if cut is not None and sent + len(piece) > cut:
            await response.write(piece[: cut - sent])
            assert request.transport is not None
            request.transport.abort()  # the connection breaks mid-file
            return response
        await response.write(piece)
        sent += len(piece)
        if link.bytes_per_second:
            await asyncio.sleep(len(piece) / link.bytes_per_second)
    await response.write_eof()
    return response


async def listen(app: web.Application) -> tuple[web.AppRunner, int]:
    """Serve app on a free loopback port; return its runner (cleanup() stops it) and port."""
    runner = web.AppRunner(app)
    await runner.setup()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port
