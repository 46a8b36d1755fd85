"""A byte-for-byte TCP relay that records both directions, to log what a real server sent."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Exchange:
    """One relayed connection."""

    sent: bytearray = field(default_factory=bytearray)
    """Client -> server bytes."""
    received: bytearray = field(default_factory=bytearray)
    """Server -> client bytes."""

    def request_json(self) -> dict[str, Any]:
        """Return the JSON body of the (single) HTTP request."""
        _, _, body = bytes(self.sent).partition(b"\r\n\r\n")
        return dict(json.loads(body))

    def sse_events(self) -> list[dict[str, Any]]:
        """Return the JSON events of the SSE response (chunked transfer decoded)."""
        head, _, body = bytes(self.received).partition(b"\r\n\r\n")
        if b"transfer-encoding: chunked" in head.lower():
            body = _dechunk(body)
        events = []
        for line in body.decode().splitlines():
            if line.startswith("data: ") and line != "data: [DONE]":
                events.append(json.loads(line[6:]))
        return events

    def generated_text(self) -> str:
        """Return the concatenated completion text."""
        return "".join(e["choices"][0]["text"] for e in self.sse_events())

    def frames(self) -> list[tuple[int, ...]]:
        """Return the complete 7-code frames in the generated text, by token number."""
        return frames_of(self.generated_text())

    def finish_reason(self) -> str | None:
        """Return the finish_reason of the last event."""
        events = self.sse_events()
        return events[-1]["choices"][0]["finish_reason"] if events else None


def frames_of(text: str) -> list[tuple[int, ...]]:
    """Return the complete 7-code frames in generated token text, by token number."""
    numbers = [int(n) for n in re.findall(r"<custom_token_(\d+)>", text)]
    codes = [(n - 10) % 4096 for n in numbers if n >= 10]
    return [tuple(codes[i : i + 7]) for i in range(0, len(codes) - len(codes) % 7, 7)]


def _dechunk(body: bytes) -> bytes:
    out = bytearray()
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return bytes(out)


class TcpRecorder:
    """Listens on a loopback port and relays every connection to a target, recording it."""

    def __init__(self, target_port: int) -> None:
        self._target_port = target_port
        self._server: asyncio.Server | None = None
        self.exchanges: list[Exchange] = []
        self.port = 0

    async def start(self) -> None:
        """Start listening on a free port."""
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        exchange = Exchange()
        self.exchanges.append(exchange)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target_port)
        await asyncio.gather(
            _pipe(reader, up_writer, exchange.sent), _pipe(up_reader, writer, exchange.received)
        )


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, log: bytearray) -> None:
    try:
        while data := await reader.read(65536):
            log += data
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        # A close on one side closes the other, as a direct connection would.
        with contextlib.suppress(Exception):
            writer.close()
