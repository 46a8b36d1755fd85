"""Rate-aware playout through both doors (issue 23): the LLM stand-in at 50, 70 and 100
tokens/s (0.61x, 0.85x and 1.22x real time), heard by a player that starts at the first chunk
and never re-buffers. Below real time no gap and a start close to the least wait; above it,
the first audio as with playout immediate."""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop

from benchmarks.listener import SAMPLE_RATE, Listen
from tests.http_hangup import hang_up_http
from tests.leftovers import leftovers, server_sockets, settle
from tests.stand_ins.llm_server import OrpheusStandIn
from wyoming_orpheus.format import REAL_TIME_TOKENS_PER_SECOND
from wyoming_orpheus.playout.rule import least_wait
from wyoming_orpheus.wyoming_server.handler import build_info
from wyoming_orpheus.wyoming_server.listener import WyomingServer

# ~5.5 s of speech at Orpheus's own pace (0.8 frames per character).
TEXT = "The washer finished a while ago, and the dryer will be done in about twenty minutes."
SENTENCES = (
    "The front door is locked and the garage is closed.",
    "The lights in the hallway are off, and the heating is at twenty degrees.",
    "Tomorrow brings light rain in the morning and a mild afternoon.",
)
REAL_PACE = 0.8  # frames per character, as Orpheus speaks


@pytest.fixture
async def doors(llm: OrpheusStandIn, make_settings, engine_factory, http_factory):
    """Start both doors over one engine with the given settings; return (wyoming port, url)."""
    llm.behaviour.frames_per_char = REAL_PACE
    servers: list[WyomingServer] = []

    async def start(**overrides: Any) -> tuple[int, str]:
        engine = await engine_factory(make_settings(stall_timeout=10, **overrides))
        server = WyomingServer(
            engine.settings.wyoming.uri,
            build_info(engine.synthesizer.catalog, True),
            engine.synthesizer,
            engine.settings.limits,
        )
        await server.start()
        servers.append(server)
        return server.port, await http_factory(engine)

    yield start
    for server in servers:
        await server.shutdown(grace=0)


async def over_wyoming(port: int, text: str) -> tuple[Listen, float]:
    """Synthesize; return the chunks' arrival and the seconds until audio-start."""
    client = AsyncTcpClient("127.0.0.1", port)
    await client.connect()
    listen = Listen(time.monotonic())
    started = 0.0
    try:
        await client.write_event(Synthesize(text=text).event())
        async with asyncio.timeout(60):
            while (event := await client.read_event()) is not None:
                assert event.type != "error", event.data
                if AudioStart.is_type(event.type):
                    started = time.monotonic() - listen.asked
                elif AudioChunk.is_type(event.type):
                    listen.add(time.monotonic(), len(AudioChunk.from_event(event).audio) // 2)
                elif AudioStop.is_type(event.type):
                    return listen, started
    finally:
        await client.disconnect()
    raise AssertionError("the connection closed before audio-stop")


async def over_http(url: str, text: str) -> tuple[Listen, float]:
    """POST a pcm speech request; return the body's arrival and the seconds until headers."""
    body = {"input": text, "voice": "tara", "response_format": "pcm"}
    async with aiohttp.ClientSession() as session:
        listen = Listen(time.monotonic())
        async with session.post(url + "/v1/audio/speech", json=body) as response:
            assert response.status == 200, await response.text()
            started = time.monotonic() - listen.asked
            carry = 0
            async for data in response.content.iter_any():
                carry += len(data)
                listen.add(time.monotonic(), carry // 2)
                carry %= 2
    return listen, started


DOORS: dict[str, Callable[[tuple[int, str], str], Any]] = {
    "wyoming": lambda ends, text: over_wyoming(ends[0], text),
    "http": lambda ends, text: over_http(ends[1], text),
}


def dry_seconds(listen: Listen) -> float:
    """Seconds a player that starts at the first chunk and never re-buffers sat silent."""
    return listen.dry_seconds(prebuffer=0.0)


@pytest.mark.timing
@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize("rate", [50, 70])
async def test_below_real_time_the_answer_plays_without_a_gap_after_about_the_least_wait(
    doors, llm: OrpheusStandIn, door: str, rate: int
) -> None:
    llm.behaviour.tokens_per_second = rate
    listen, started = await DOORS[door](await doors(), TEXT)
    length = listen.audio_seconds
    wait = least_wait(length, rate / REAL_TIME_TOKENS_PER_SECOND)
    print(f"{door} at {rate} tok/s: {length:.1f} s, first audio {listen.first_audio:.2f} s "
          f"(least wait {wait:.2f} s), dry {dry_seconds(listen):.2f} s")  # fmt: skip
    assert length == pytest.approx(len(llm.requests[0].frames) * 2048 / SAMPLE_RATE)
    assert started < 0.5  # audio-start (the headers) at once: only the chunks are held
    assert dry_seconds(listen) < 0.05  # a chunk's scheduling jitter, no gap a listener hears
    assert listen.first_audio <= 1.3 * wait + 1.0


@pytest.mark.timing
@pytest.mark.parametrize("door", DOORS)
async def test_below_real_time_immediate_playout_still_stutters(
    doors, llm: OrpheusStandIn, door: str
) -> None:
    llm.behaviour.tokens_per_second = 50
    listen, _ = await DOORS[door](await doors(playout="immediate"), TEXT)
    assert listen.first_audio < 1.0 and dry_seconds(listen) > 1.0  # what users hear today


@pytest.mark.timing
@pytest.mark.parametrize("door", DOORS)
async def test_above_real_time_the_first_audio_is_as_fast_as_immediate_playout(
    doors, llm: OrpheusStandIn, door: str
) -> None:
    llm.behaviour.tokens_per_second = 100
    immediate, _ = await DOORS[door](await doors(playout="immediate"), TEXT)
    adaptive, _ = await DOORS[door](await doors(), TEXT)
    assert adaptive.first_audio <= immediate.first_audio + 0.1
    assert dry_seconds(adaptive) < 0.05


@pytest.mark.timing
async def test_streamed_text_that_comes_late_leaves_gaps_only_between_sentences(
    doors, llm: OrpheusStandIn
) -> None:
    # The first sentence alone, then the rest once its audio plays: the first hold could only
    # cover the first sentence; the later ones are held at their start. One segment generates
    # at a time (no lookahead), so the LLM stays at 0.73x real time throughout.
    llm.behaviour.tokens_per_second = 60
    port, _ = await doors(segment_pause_ms=0, lookahead_segments=0)
    client = AsyncTcpClient("127.0.0.1", port)
    await client.connect()
    listen = Listen(time.monotonic())
    try:
        await client.write_event(SynthesizeStart().event())
        # The detector completes a sentence when the next one begins.
        first, rest = SENTENCES[0] + " " + SENTENCES[1][:4], SENTENCES[1][4:] + " " + SENTENCES[2]
        await client.write_event(SynthesizeChunk(first).event())
        async with asyncio.timeout(60):
            while (event := await client.read_event()) is not None:
                assert event.type != "error", event.data
                if AudioChunk.is_type(event.type):
                    if not listen.chunks:
                        await client.write_event(SynthesizeChunk(rest).event())
                        await client.write_event(SynthesizeStop().event())
                    listen.add(time.monotonic(), len(AudioChunk.from_event(event).audio) // 2)
                elif AudioStop.is_type(event.type):
                    break
    finally:
        await client.disconnect()
    # Where each segment's audio starts, from the frames the stand-in sent for each request.
    ends, at = [], 0.0
    for record in llm.requests:
        at += len(record.frames) * 2048 / SAMPLE_RATE
        ends.append(at)
    assert listen.audio_seconds == pytest.approx(ends[-1])
    heard, runs_out = 0.0, None
    gaps_at: list[float] = []
    for arrival, samples in listen.chunks:
        runs_out = arrival if runs_out is None else runs_out
        if arrival > runs_out + 0.05:
            gaps_at.append(heard)  # the player ran dry after `heard` seconds of audio
            runs_out = arrival
        runs_out += samples / SAMPLE_RATE
        heard += samples / SAMPLE_RATE
    print(f"segments end at {ends}; gaps after {gaps_at}")
    assert gaps_at  # the text came too late for one hold to cover it all
    for position in gaps_at:
        assert any(abs(position - end) < 0.1 for end in ends[:-1]), (position, ends)


async def hang_up_wyoming(port: int, after: str, reset: bool) -> None:
    """Synthesize, then hang up once `after` (audio-start: while held; audio-chunk) arrived."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    client = AsyncTcpClient("127.0.0.1", port)
    client._reader, client._writer = reader, writer  # the raw socket, to reset
    await client.write_event(Synthesize(text=TEXT).event())
    async with asyncio.timeout(30):
        while (event := await client.read_event()) is not None and event.type != after:
            pass
    if reset:  # RST, as a satellite that loses power
        writer.transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
        )
    writer.close()


@pytest.mark.parametrize(
    ("door", "point"),
    [
        ("wyoming", "audio-start"),
        ("wyoming", "audio-start-rst"),
        ("wyoming", "audio-chunk"),
        ("http", "headers"),
        ("http", "audio"),
    ],
)
async def test_a_hang_up_while_held_or_after_the_release_leaves_nothing(
    doors, llm: OrpheusStandIn, door: str, point: str
) -> None:
    llm.behaviour.tokens_per_second = 70  # held ~1.8 s, then released
    port, url = await doors()
    baseline = set(asyncio.all_tasks())
    if door == "wyoming":
        await hang_up_wyoming(port, point.removesuffix("-rst"), point.endswith("-rst"))
    else:
        await hang_up_http(url, TEXT, point == "audio")
    # The generation is cut (the GPU stops making audio for nobody) and nothing is left.
    http_port = int(url.rsplit(":", 1)[1])
    await settle(lambda: leftovers(port, baseline, llm, lambda: server_sockets(http_port)))
    assert llm.requests and not llm.requests[0].finished  # cut short, closed (leftovers)
    # A newcomer is served as before.
    listen, _ = await over_wyoming(port, "Still here.")
    assert listen.audio_seconds > 0


@pytest.mark.timing
async def test_how_fast_the_llm_is_shows_in_the_log_health_and_metrics(
    llm: OrpheusStandIn, make_settings, engine_factory, http_factory, caplog
) -> None:
    llm.behaviour.tokens_per_second = 60  # 0.73x real time
    engine = await engine_factory(make_settings())
    url = await http_factory(engine)
    caplog.set_level(logging.INFO, logger="wyoming_orpheus")
    await engine.report_llm_speed()  # what managed mode runs once llama-server is ready
    said = re.search(r"LLM: (\d+) tokens/s = ([\d.]+) x real time", caplog.text)
    assert said is not None and int(said.group(1)) == pytest.approx(60, rel=0.1)
    warning = next(r for r in caplog.records if r.levelno == logging.WARNING)
    assert "slower than real time" in warning.message
    assert all(hint in warning.message for hint in ("GPU", "quantization", "--max-concurrent"))
    async with aiohttp.ClientSession() as session:
        async with session.get(url + "/health") as response:
            upstream = (await response.json())["upstreams"][0]
        async with session.get(url + "/metrics") as response:
            metrics = await response.text()
    assert upstream["tokens_per_second"] == pytest.approx(60, rel=0.1)
    assert upstream["real_time_factor"] == pytest.approx(60 / 82.03, rel=0.1)
    assert upstream["keeps_real_time"] is False
    assert upstream["tokens_per_second_at"]["1"] == pytest.approx(60, rel=0.1)  # probed alone
    exported = re.search(r'orpheus_upstream_real_time_factor\{upstream="[^"]+"\} ([\d.]+)', metrics)
    assert exported is not None and float(exported.group(1)) == pytest.approx(0.73, rel=0.1)


@pytest.mark.timing
async def test_each_request_logs_its_hold_why_it_ended_and_the_rate(
    doors, llm: OrpheusStandIn, caplog
) -> None:
    llm.behaviour.tokens_per_second = 70
    ends = await doors()
    caplog.set_level(logging.INFO, logger="wyoming_orpheus")
    await over_http(ends[1], TEXT)
    line = next(r.message for r in caplog.records if r.message.startswith("Spoke "))
    held = re.search(r"held ([\d.]+) s until covered, estimated ([\d.]+) s of ([\d.]+) s, "
                     r"LLM ([\d.]+)x real time", line)  # fmt: skip
    assert held is not None, line
    assert 0.5 < float(held.group(1)) < 3.0
    assert float(held.group(2)) == pytest.approx(float(held.group(3)), rel=0.2)
    assert float(held.group(4)) == pytest.approx(70 / 82.03, rel=0.1)


# --- a satellite never left waiting on a silent line (issue 29) ---


async def chunks_over_wyoming(port: int, text: str) -> tuple[float, list[tuple[float, bytes]]]:
    """Synthesize; return when it asked and every audio chunk's (arrival, bytes)."""
    client = AsyncTcpClient("127.0.0.1", port)
    await client.connect()
    chunks: list[tuple[float, bytes]] = []
    asked = time.monotonic()
    try:
        await client.write_event(Synthesize(text=text).event())
        async with asyncio.timeout(60):
            while (event := await client.read_event()) is not None:
                assert event.type != "error", event.data
                if AudioChunk.is_type(event.type):
                    chunks.append((time.monotonic(), AudioChunk.from_event(event).audio))
                elif AudioStop.is_type(event.type):
                    return asked, chunks
    finally:
        await client.disconnect()
    raise AssertionError("the connection closed before audio-stop")


@pytest.mark.timing
@pytest.mark.parametrize("rate", [45, 60])
async def test_below_real_time_a_satellite_hears_bytes_at_once_and_never_a_silent_line(
    doors, llm: OrpheusStandIn, rate: int
) -> None:
    llm.behaviour.tokens_per_second = rate
    port, _ = await doors(playout_keepalive=True)
    asked, chunks = await chunks_over_wyoming(port, TEXT)
    speech_at = next(i for i, (_, audio) in enumerate(chunks) if any(audio))
    lead, speech = chunks[:speech_at], chunks[speech_at:]
    arrivals = [asked, *(t for t, _ in lead), speech[0][0]]
    quiet = max(b - a for a, b in itertools.pairwise(arrivals))
    silence = sum(len(audio) for _, audio in lead) / 2 / SAMPLE_RATE
    print(f"{rate} tok/s: first bytes {chunks[0][0] - asked:.2f} s, {silence:.1f} s of silence, "
          f"speech sent at {speech[0][0] - asked:.1f} s, longest quiet {quiet:.2f} s")  # fmt: skip
    assert chunks[0][0] - asked < 0.5  # bytes within half a second of the request
    assert quiet < 1.0  # never a second without bytes while speech is held
    assert not any(any(audio) for _, audio in lead)  # what came first is silence
    # Speech is all there, after the silence, and a player that plays everything as it comes
    # (the silence first) never runs dry in it: the silence was the wait, not more.
    spoken = sum(len(audio) for _, audio in speech) // 2
    assert spoken == len(llm.requests[0].frames) * 2048
    heard_at, gaps = play(asked, chunks, speech_at)
    assert gaps < 0.05
    length = spoken / SAMPLE_RATE
    assert heard_at <= 1.3 * least_wait(length, rate / REAL_TIME_TOKENS_PER_SECOND) + 1.0


def play(asked: float, chunks: list[tuple[float, bytes]], speech_at: int) -> tuple[float, float]:
    """A satellite that plays every chunk as it comes and never re-buffers: return when it
    reaches the first speech (seconds after the request) and the gaps it hears in speech."""
    runs_out = asked
    heard_at, gaps = 0.0, 0.0
    for index, (arrival, audio) in enumerate(chunks):
        if arrival > runs_out:
            if index > speech_at:
                gaps += arrival - runs_out
            runs_out = arrival
        if index == speech_at:
            heard_at = runs_out - asked
        runs_out += len(audio) / 2 / SAMPLE_RATE
    return heard_at, gaps


@pytest.mark.timing
async def test_the_http_door_sends_keep_alive_silence_only_when_asked(
    doors, llm: OrpheusStandIn
) -> None:
    llm.behaviour.tokens_per_second = 45
    _, url = await doors(playout_keepalive_http=True)
    listen, _ = await over_http(url, TEXT)
    assert listen.first_audio < 0.5
    _, plain = await doors()  # the default: a response starts with speech
    listen, _ = await over_http(plain, TEXT)
    assert listen.first_audio > 1.0
