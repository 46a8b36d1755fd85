"""Clients hang up at every point of the exchange, thousands of times; nothing stays behind.

Issue 25: a streaming client that hung up mid-audio left its connection registered and busy
forever (a cancelled synthesis wrote audio-stop in a `finally`, the write's
ConnectionResetError replaced the CancelledError and was swallowed); under a limit of 8
connections the house lost its voice after a few interruptions. Here both doors take storms of
hang-ups at random points (before the first chunk, mid-audio, during the final writes; with
RST and with FIN), then must hold no connection, socket, task or upstream request, and serve
every newcomer under a small connection limit.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable

import pytest
from wyoming.event import Event, async_read_event, async_write_event
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop

from tests.leftovers import leftovers, server_sockets, settle
from tests.stand_ins.llm_server import OrpheusStandIn
from wyoming_orpheus.engine import Engine
from wyoming_orpheus.wyoming_server.handler import build_info
from wyoming_orpheus.wyoming_server.listener import WyomingServer

LIMIT = 8
SENTENCE = "The washer is done and the living room is warm now. "
WYOMING_HANGUPS = 2000
HTTP_HANGUPS = 1000
AT_ONCE = 24  # more than LIMIT: newcomers evict idle ones, and some find every slot busy


class _HungUp(Exception):
    """The client script reached its hang-up point."""


class _Client:
    """A raw client that hangs up (RST or FIN) when it reaches its chosen step."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, hang_at: int, rst: bool
    ) -> None:
        self.reader, self.writer = reader, writer
        self._hang_at, self._rst = hang_at, rst
        self._step = 0

    def point(self) -> None:
        """Mark one step of the exchange; hang up if it is the chosen one."""
        if self._step == self._hang_at:
            raise _HungUp
        self._step += 1

    def hang_up(self) -> None:
        if self._rst:
            self.writer.transport.abort()
        else:
            self.writer.close()

    async def send(self, event: Event) -> None:
        self.point()
        await async_write_event(event, self.writer)

    async def read_until(self, kind: str, count: int = 1) -> None:
        """Read events until `count` of type `kind` came (a step before each)."""
        seen = 0
        while seen < count:
            self.point()
            event = await async_read_event(self.reader)
            if event is None:
                raise _HungUp  # the server closed it (evicted as idle, or refused busy)
            if event.type == "error":
                raise _HungUp  # busy: a refusal is an answer too
            seen += event.type == kind


async def _streaming(client: _Client, rng: random.Random) -> None:
    """Home Assistant's streamed text: start, chunks split mid-word, stop, stopped."""
    await client.send(SynthesizeStart().event())
    text = SENTENCE * 2
    cut = rng.randrange(5, len(text) - 5)
    await client.send(SynthesizeChunk(text=text[:cut]).event())
    await client.send(SynthesizeChunk(text=text[cut:]).event())
    await client.read_until("audio-start")
    await client.read_until("audio-chunk", rng.randrange(1, 8))
    await client.send(Synthesize(text=text).event())  # the compatibility copy, ignored
    await client.send(SynthesizeStop().event())
    await client.read_until("audio-stop")
    await client.read_until("synthesize-stopped")


async def _one_shot(client: _Client, rng: random.Random) -> None:
    await client.send(Synthesize(text=SENTENCE).event())
    await client.read_until("audio-start")
    await client.read_until("audio-chunk", rng.randrange(1, 8))
    await client.read_until("audio-stop")


async def _wyoming_exchange(port: int, rng: random.Random) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    script = rng.choice((_streaming, _one_shot))
    client = _Client(reader, writer, hang_at=rng.randrange(0, 16), rst=rng.random() < 0.5)
    try:
        await script(client, rng)
    except (_HungUp, ConnectionError):
        pass
    finally:
        client.hang_up()


def _speech_request(text: str) -> tuple[bytes, bytes]:
    body = json.dumps({"input": text, "voice": "tara", "response_format": "pcm"}).encode()
    head = (
        "POST /v1/audio/speech HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head, body


async def _http_exchange(port: int, rng: random.Random) -> None:
    """POST a speech request; hang up mid-headers, mid-body, before or during the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    client = _Client(reader, writer, hang_at=rng.randrange(0, 9), rst=rng.random() < 0.5)
    head, body = _speech_request(SENTENCE)
    try:
        for piece in (head[:20], head[20:], body[:10], body[10:]):
            client.point()
            writer.write(piece)
            await writer.drain()
        client.point()
        await reader.readuntil(b"\r\n\r\n")  # the status line and headers
        for _ in range(rng.randrange(1, 5)):
            client.point()
            if not await reader.read(4096):
                break
    except (_HungUp, ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        client.hang_up()


async def _storm(
    exchange: Callable[[int, random.Random], Awaitable[None]], port: int, count: int, seed: int
) -> None:
    """Run `count` exchanges, AT_ONCE at a time, each with its own hang-up point."""
    rng = random.Random(seed)
    for start in range(0, count, AT_ONCE):
        wave = [
            exchange(port, random.Random(rng.random())) for _ in range(min(AT_ONCE, count - start))
        ]
        async with asyncio.timeout(120):
            await asyncio.gather(*wave)


async def _served_wyoming(port: int) -> bool:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await async_write_event(Synthesize(text=SENTENCE).event(), writer)
        samples = 0
        async with asyncio.timeout(30):
            while (event := await async_read_event(reader)) is not None:
                if event.type == "audio-chunk":
                    samples += len(event.payload or b"") // 2
                if event.type in ("audio-stop", "error"):
                    return event.type == "audio-stop" and samples > 0
        return False
    finally:
        writer.close()


@pytest.mark.slow
async def test_wyoming_hang_ups_at_random_points_leave_nothing_and_newcomers_are_served(
    make_settings, engine_factory, llm: OrpheusStandIn
) -> None:
    engine: Engine = await engine_factory(make_settings(wyoming_max_connections=LIMIT))
    server = WyomingServer(
        engine.settings.wyoming.uri,
        build_info(engine.synthesizer.catalog, True),
        engine.synthesizer,
        engine.settings.limits,
    )
    await server.start()
    baseline = set(asyncio.all_tasks())
    try:
        await _storm(_wyoming_exchange, server.port, WYOMING_HANGUPS, seed=25)
        await settle(
            lambda: leftovers(server.port, baseline, llm, lambda: len(server._connections))
        )
        assert len(llm.requests) > WYOMING_HANGUPS // 5  # many hung up with audio on its way
        assert any(r.client_disconnected for r in llm.requests)  # some while it generated
        # The house still has its voice: newcomers one after another, then LIMIT at once.
        assert all([await _served_wyoming(server.port) for _ in range(10)])
        # The last of those may still be closing; a full house of newcomers comes after it.
        await settle(lambda: server_sockets(server.port))
        assert all(await asyncio.gather(*(_served_wyoming(server.port) for _ in range(LIMIT))))
        await settle(
            lambda: leftovers(server.port, baseline, llm, lambda: len(server._connections))
        )
    finally:
        await server.shutdown(grace=0)


async def _served_http(port: int) -> str:
    """One whole speech request: "ok" for 200 and a body that ends (chunked encoding's last
    chunk); else what came instead (shown when the test fails)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head, body = _speech_request(SENTENCE)
    try:
        writer.write(head + body)
        async with asyncio.timeout(30):
            status = await reader.readline()
            await reader.readuntil(b"\r\n\r\n")
            audio = 0
            while size := int(await reader.readline(), 16):  # chunked: the 0 chunk ends it
                audio += len(await reader.readexactly(size + 2)) - 2
        served = status.startswith(b"HTTP/1.1 200") and audio > 1000
        return "ok" if served else f"{status!r}, {audio} bytes"
    finally:
        writer.close()


@pytest.mark.slow
async def test_http_hang_ups_at_random_points_leave_nothing_and_newcomers_are_served(
    make_settings, engine_factory, http_factory, llm: OrpheusStandIn
) -> None:
    engine: Engine = await engine_factory(make_settings(http_max_connections=LIMIT))
    url = await http_factory(engine)
    port = int(url.rsplit(":", 1)[1])
    baseline = set(asyncio.all_tasks())
    await _storm(_http_exchange, port, HTTP_HANGUPS, seed=26)
    await settle(lambda: leftovers(port, baseline, llm, lambda: 0))
    # NOTE: 24 clients at once under a limit of 8: since the limit holds under a burst
    # (issue 31) two in three are closed to make room before their request is read, so ~1 in 8
    # (not 1 in 4) reaches the LLM; still over a hundred hang-ups with audio on its way.
    assert len(llm.requests) > HTTP_HANGUPS // 10
    one_by_one = [await _served_http(port) for _ in range(10)]
    assert set(one_by_one) == {"ok"}, one_by_one
    await settle(lambda: server_sockets(port))
    at_once = await asyncio.gather(*(_served_http(port) for _ in range(LIMIT)))
    assert set(at_once) == {"ok"}, at_once
    await settle(lambda: leftovers(port, baseline, llm, lambda: 0))
