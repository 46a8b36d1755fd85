"""The Wyoming handler over every order of client events, hung up at every point (issue 25).

Every sequence of up to three events from describe, synthesize, synthesize-start, -chunk and
-stop runs against the real server, and is hung up after each event sent, after the first
reply, and after the whole exchange. A model of the protocol says what a complete exchange
answers; after every hang-up the server holds no connection, socket, task or upstream request.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass

from wyoming.event import Event, async_read_event, async_write_event
from wyoming.info import Describe
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop

from tests.leftovers import leftovers, settle
from tests.stand_ins.llm_server import OrpheusStandIn
from wyoming_orpheus.wyoming_server.listener import WyomingServer

TEXT = "Hi there. "
AT_ONCE = 16
EVENTS = {
    "describe": Describe().event(),
    "synthesize": Synthesize(text=TEXT).event(),
    "start": SynthesizeStart().event(),
    "chunk": SynthesizeChunk(text=TEXT).event(),
    "stop": SynthesizeStop().event(),
}
SEQUENCES = [
    seq for n in range(1, 4) for seq in itertools.product(EVENTS, repeat=n)
]  # 5 + 25 + 125


@dataclass
class Expected:
    """What a complete exchange answers, by event type (None: not checked)."""

    counts: dict[str, int] | None


def model(sequence: tuple[str, ...]) -> Expected:
    """The protocol's answer to a sequence, or None where an open stream makes it open-ended."""
    counts = {"info": 0, "error": 0, "audio-stop": 0, "synthesize-stopped": 0}
    stream_open = False
    for name in sequence:
        if name == "describe":
            counts["info"] += 1
        elif name == "synthesize" and not stream_open:
            counts["audio-stop"] += 1  # inside a stream it is the compatibility copy: ignored
        elif name == "start":
            if stream_open:
                counts["error"] += 1  # a second start inside a stream is refused
            stream_open = True
        elif name == "stop":
            if stream_open:
                counts["audio-stop"] += 1  # the stream's audio (even with no text: start, stop)
            counts["synthesize-stopped"] += 1
            stream_open = False
    # An unclosed stream holds this connection's later work until its text ends.
    return Expected(None if stream_open else counts)


def check_nesting(types: list[str]) -> None:
    """Audio runs never nest; chunks only inside a run; stopped never inside one."""
    inside = False
    for kind in types:
        if kind == "audio-start":
            assert not inside, types
            inside = True
        elif kind == "audio-stop":
            assert inside, types
            inside = False
        elif kind == "audio-chunk":
            assert inside, types
        elif kind == "synthesize-stopped":
            assert not inside, types


async def _exchange(port: int, sequence: tuple[str, ...], hang_at: int | str) -> list[str]:
    """Send the sequence; hang up after `hang_at` events, after one reply, or when complete."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    types: list[str] = []
    try:
        for index, name in enumerate(sequence):
            if hang_at == index:
                return types
            await async_write_event(EVENTS[name], writer)
        if hang_at == "first reply":
            await _read(reader, types, lambda: bool(types))
        elif hang_at == "complete":
            expected = model(sequence).counts
            if expected is not None:
                await _read(reader, types, lambda: _counts(types, expected) == expected)
                check_nesting(types)
        return types
    finally:
        writer.transport.abort()


def _counts(types: list[str], expected: dict[str, int]) -> dict[str, int]:
    return {kind: types.count(kind) for kind in expected}


async def _read(reader: asyncio.StreamReader, types: list[str], done: object) -> None:
    async with asyncio.timeout(10):
        while not done():  # type: ignore[operator]
            event: Event | None = await async_read_event(reader)
            assert event is not None, f"server closed the connection after {types}"
            types.append(event.type)


async def test_every_event_order_and_hang_up_point_leaves_nothing(
    wyoming_server: WyomingServer, llm: OrpheusStandIn
) -> None:
    port = wyoming_server.port
    baseline = set(asyncio.all_tasks())
    runs: list[tuple[tuple[str, ...], int | str]] = []
    for sequence in SEQUENCES:
        runs += [(sequence, index) for index in range(len(sequence))]
        runs.append((sequence, "complete"))
        expected = model(sequence).counts
        if expected is not None and sum(expected.values()):
            runs.append((sequence, "first reply"))  # some sequences are answered with nothing
    # Each run is its own connection: AT_ONCE run side by side, then nothing may be left.
    for start in range(0, len(runs), AT_ONCE):
        batch = runs[start : start + AT_ONCE]
        for types in await asyncio.gather(*(_exchange(port, s, h) for s, h in batch)):
            check_nesting(types)
        await settle(
            lambda: leftovers(port, baseline, llm, lambda: len(wyoming_server._connections))
        )
    assert len(runs) > sum(len(s) + 1 for s in SEQUENCES)
    assert any(r.client_disconnected for r in llm.requests)  # some hang-ups cut a generation
