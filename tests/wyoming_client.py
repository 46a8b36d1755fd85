"""Helpers that drive the server with wyoming's own AsyncTcpClient."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.tts import SynthesizeStopped

TIMEOUT = 60.0


@dataclass
class Reply:
    """What the server sent for one request."""

    events: list[Event] = field(default_factory=list)
    audio: bytes = b""
    error: Error | None = None

    @property
    def types(self) -> list[str]:
        return [e.type for e in self.events]

    @property
    def seconds(self) -> float:
        return len(self.audio) / 2 / 24000


async def read_reply(client: AsyncClient, until: str, timeout: float = TIMEOUT) -> Reply:
    """Read events until one of type `until` (or an error) arrives."""
    reply = Reply()
    async with asyncio.timeout(timeout):
        while True:
            event = await client.read_event()
            assert event is not None, "server closed the connection"
            reply.events.append(event)
            if AudioChunk.is_type(event.type):
                chunk = AudioChunk.from_event(event)
                assert (chunk.rate, chunk.width, chunk.channels) == (24000, 2, 1)
                reply.audio += chunk.audio
            elif AudioStart.is_type(event.type):
                start = AudioStart.from_event(event)
                assert (start.rate, start.width, start.channels) == (24000, 2, 1)
            elif Error.is_type(event.type):
                reply.error = Error.from_event(event)
                if until != "error-then-stopped":
                    return reply
            if event.type == until or (
                until == "error-then-stopped" and SynthesizeStopped.is_type(event.type)
            ):
                return reply


def assert_well_formed(reply: Reply) -> None:
    """One audio-start, chunks of 1024 samples (the last may be shorter), one audio-stop."""
    types = reply.types
    assert types.count("audio-start") == 1 and types.count("audio-stop") == 1
    chunks = [AudioChunk.from_event(e) for e in reply.events if AudioChunk.is_type(e.type)]
    assert all(len(c.audio) == 2048 for c in chunks[:-1])
    timestamps = [c.timestamp for c in chunks]
    assert timestamps == sorted(timestamps) and timestamps[0] == 0
    stop = AudioStop.from_event(next(e for e in reply.events if AudioStop.is_type(e.type)))
    assert stop.timestamp == len(reply.audio) // 2 * 1000 // 24000
