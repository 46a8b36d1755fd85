"""Hostile Wyoming clients: a generated corpus of malformed input, slow readers, many sockets."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wyoming.client import AsyncTcpClient
from wyoming.tts import Synthesize

from tests.stand_ins.llm_server import OrpheusStandIn
from wyoming_orpheus.wyoming_server.listener import WyomingServer
from wyoming_orpheus.wyoming_server.protocol import MAX_HEADER_BYTES

CORPUS_SIZE = 10_000
MAX_TEXT = 200


def header(obj: object) -> bytes:
    return json.dumps(obj).encode() + b"\n"


_LENGTHS = st.one_of(
    st.integers(-(2**63), -1),
    st.integers(10**7, 10**15),
    st.sampled_from(["12", "many", 1.5, True, None, [], {}]),
)
ENTITY_BOMB = (
    '<!DOCTYPE s [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><s>&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;</s>'
)
"""~180 characters that expand to 10,000 (issue 31 froze both doors with a bigger one)."""
DEEP_SSML = "<speak>" + "<p>" * 5000 + "deep" + "</p>" * 5000 + "</speak>"
SPELLED = '<speak><say-as interpret-as="characters">' + "a" * 120 + "</say-as></speak>"
"""Under MAX_TEXT as markup, over it as spoken (each letter said apart: 239 characters)."""
_TEXTS = st.one_of(
    st.just(""),
    st.sampled_from([ENTITY_BOMB, DEEP_SSML[:MAX_TEXT], SPELLED, "<speak><p>ok</speak>"]),
    st.text(alphabet=" \t\n\r", max_size=5),
    st.text(max_size=40),  # every plane, control characters, right-to-left, emoji
    st.text(min_size=MAX_TEXT, max_size=MAX_TEXT + 50),
    st.sampled_from(["\u202eevil\u202c", "👩‍👩‍👧‍👦" * 3, "\x00\x1b[31m", "<laugh>" * 20]),
)
_TYPES = st.sampled_from(
    ["synthesize", "synthesize-start", "synthesize-chunk", "synthesize-stop", "describe",
     "audio-chunk", "transcribe", "not-an-event", "", "SYNTHESIZE"]
)  # fmt: skip


@st.composite
def _event(draw: st.DrawFn) -> bytes:
    """One well-framed event whose fields may be wrong, unknown or out of order."""
    data: dict[str, object] = {}
    if draw(st.booleans()):
        data["text"] = draw(st.one_of(_TEXTS, st.integers(), st.none(), st.lists(st.text())))
    if draw(st.booleans()):
        data["text_format"] = draw(st.sampled_from(["ssml", "text", "SSML", 7]))
    if draw(st.booleans()):
        data["voice"] = draw(
            st.one_of(
                st.fixed_dictionaries({"name": st.sampled_from(["tara", "nobody", "", "ТАРА"])}),
                st.text(max_size=5),
                st.integers(),
                st.fixed_dictionaries({"name": st.integers()}),
            )
        )
    body = json.dumps(data).encode()
    if draw(st.booleans()):
        return header({"type": draw(_TYPES), "data_length": len(body)}) + body
    return header({"type": draw(_TYPES), "data": data})


@st.composite
def _broken_frame(draw: st.DrawFn) -> bytes:
    """One frame broken in its framing."""
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.binary(min_size=1, max_size=200))
    if kind == 1:
        return draw(st.text(max_size=60)).encode() + b"\n"  # not JSON (or JSON, not an object)
    if kind == 2:
        return header(draw(st.one_of(st.lists(st.integers()), st.integers(), st.text())))
    if kind == 3:
        return header({"type": "synthesize", "data_length": draw(_LENGTHS)})
    if kind == 4:
        return header({"type": "describe", "payload_length": draw(_LENGTHS)})
    if kind == 5:  # a data block shorter or longer than it says
        body = b'{"text": "Hello there."}'
        told = len(body) + draw(st.sampled_from([-5, -1, 1, 7]))
        return header({"type": "synthesize", "data_length": told}) + body
    if kind == 6:
        return b'{"type": "synthesize", "data": {"text": "\xff\xfe invalid utf-8"}}\n'
    if kind == 7:
        return header({"data": {"text": "no type"}})
    if kind == 8:
        return header({"type": "synthesize", "data": draw(st.sampled_from([[1], "x", 3]))})
    return header({"type": "describe"})[: draw(st.integers(1, 15))]  # truncated


_INPUTS = st.lists(st.one_of(_event(), _broken_frame()), min_size=1, max_size=4).map(b"".join)


def parse_events(raw: bytes) -> list[dict[str, object]]:
    """Parse what the server sent; anything that is not well-framed events fails the test."""
    events, rest = [], raw
    while rest:
        line, sep, rest = rest.partition(b"\n")
        assert sep, f"unterminated header from the server: {line[:100]!r}"
        event = json.loads(line)
        if event.get("data_length"):
            event["data"] = json.loads(rest[: event["data_length"]])
            rest = rest[event["data_length"] :]
        rest = rest[event.get("payload_length") or 0 :]
        events.append(event)
    return events


async def exchange(port: int, raw: bytes) -> list[dict[str, object]]:
    """Send raw bytes and a describe, end our side, read everything until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw + header({"type": "describe"}))
        writer.write_eof()
        async with asyncio.timeout(10):  # never a hang: the server closes within this
            received = await reader.read()
    finally:
        writer.close()
    return parse_events(received)


@pytest.fixture
async def hostile_server(server_factory, llm: OrpheusStandIn) -> WyomingServer:
    llm.behaviour.tokens_per_second = 100
    llm.behaviour.frames_per_char = 0.5
    server: WyomingServer = await server_factory(max_text_chars=MAX_TEXT, max_concurrent=4)
    return server


@pytest.mark.slow
async def test_a_corpus_of_malformed_input_gets_errors_never_a_crash_or_a_hang(
    hostile_server: WyomingServer, llm: OrpheusStandIn
) -> None:
    port = hostile_server.port
    outcomes = {"error": 0, "info": 0, "closed": 0}
    # A well-behaved client streams a long answer the whole time.
    text = "A well behaved client keeps listening while others misbehave. " * 2
    good = asyncio.create_task(timed_synthesis(port, text))

    @settings(
        max_examples=CORPUS_SIZE,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                               HealthCheck.data_too_large],
    )  # fmt: skip
    @given(_INPUTS)
    def one(raw: bytes) -> None:
        events = asyncio.run_coroutine_threadsafe(exchange(port, raw), loop).result()
        types = [e["type"] for e in events]
        for event in events:
            assert event["type"] in ("info", "error", "audio-start", "audio-chunk",
                                     "audio-stop", "synthesize-stopped")  # fmt: skip
            if event["type"] == "error":
                assert event["data"]["code"] and event["data"]["text"]
        outcomes["error" if "error" in types else "info" if "info" in types else "closed"] += 1

    loop = asyncio.get_running_loop()
    started = time.monotonic()
    await asyncio.to_thread(one)
    took = time.monotonic() - started
    gaps, samples, frames = await good
    assert sum(outcomes.values()) == CORPUS_SIZE
    assert outcomes["error"] > CORPUS_SIZE // 4  # most inputs are refused with a clear error
    print(f"{CORPUS_SIZE} hostile inputs in {took:.1f} s: {outcomes}")
    print(f"the good client's longest gap between audio chunks: {max(gaps):.2f} s")
    # The good client got all of its audio, and was never starved meanwhile. NOTE: the
    # corpus generator shares this process (and its GIL) with the server, so the gap is a
    # starvation check, not a latency figure: 2.05 s was seen once on a loaded 2-core CI.
    assert samples == frames * 2048
    assert max(gaps) < 10.0
    # And the server still serves a new client normally.
    await timed_synthesis(port, "Still here.")


async def timed_synthesis(port: int, text: str) -> tuple[list[float], int, int]:
    client = AsyncTcpClient("127.0.0.1", port)
    await client.connect()
    gaps, last, samples = [], None, 0
    try:
        await client.write_event(Synthesize(text=text).event())
        while True:
            event = await asyncio.wait_for(client.read_event(), 30)
            assert event is not None and event.type != "error", event
            now = time.monotonic()
            if event.type == "audio-chunk":
                if last is not None:
                    gaps.append(now - last)
                last = now
                samples += len(event.payload or b"") // 2
            if event.type == "audio-stop":
                break
    finally:
        await client.disconnect()
    frames = round(len(text) * 0.5)
    return gaps or [0.0], samples, frames


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"x" * (MAX_HEADER_BYTES + 10), "header line longer than"),
        (header({"type": "synthesize", "data_length": 10**12}), "takes at most"),
        (header({"type": "synthesize", "data_length": "12"}), "non-negative integer"),
        (header({"type": "describe", "payload_length": 2**40}), "takes at most"),
        (b'{"type": "synthesize"\n', "not valid JSON"),
        (b"[1, 2]\n", "must be a JSON object"),
        (b'{"type": "synthesize", "data": {"text": "\xff"}}\n', "not valid UTF-8"),
        (header({"type": "synthesize", "data": {"text": 5}}), "'text' must be a string"),
        (header({"type": "synthesize", "data": {"text": "Hi", "voice": [1]}}), "'voice' must"),
        (header({"type": "synthesize-start"}) * 2, "synthesize-start inside an open stream"),
        (header({"type": "synthesize", "data": {"text": " \t"}}), "the text is empty"),
        (header({"type": "synthesize", "data": {"text": "a" * (MAX_TEXT + 1)}}), "at most 200"),
        (header({"type": "synthesize", "data": {"text": "Hi", "voice": {"name": "x"}}}),
         "unknown voice 'x'"),
        (header({"type": "synthesize", "data": {"text": ENTITY_BOMB, "text_format": "ssml"}}),
         "a DOCTYPE, DTD or entity is not allowed"),
        (header({"type": "synthesize", "data": {"text": SPELLED, "text_format": "ssml"}}),
         "the text has 239 characters; this server takes at most 200"),
    ],
)  # fmt: skip
async def test_each_kind_of_bad_input_has_its_own_clear_error(
    hostile_server: WyomingServer, raw: bytes, fragment: str
) -> None:
    events = await exchange(hostile_server.port, raw)
    errors = [e["data"]["text"] for e in events if e["type"] == "error"]
    assert errors and fragment in errors[0], events


async def test_a_huge_data_length_is_refused_before_anything_is_buffered(
    hostile_server: WyomingServer,
) -> None:
    # The server answers at once, without waiting for (or storing) the 1 TB it was promised.
    reader, writer = await asyncio.open_connection("127.0.0.1", hostile_server.port)
    writer.write(header({"type": "synthesize", "data_length": 10**12}))
    async with asyncio.timeout(5):
        reply = await reader.read()
    writer.close()
    assert b'"error"' in reply and b"takes at most" in reply


async def test_a_client_that_stops_reading_loses_its_slot_and_upstream_request(
    server_factory, llm: OrpheusStandIn
) -> None:
    # ~16 s of tokens: far longer than filling the socket buffers (~5 s of audio, decoded in
    # ~3 s even by one single-threaded worker) plus write_timeout.
    llm.behaviour.tokens_per_second = 200
    llm.behaviour.frames_per_char = 4  # lots of audio: far more than the socket buffers hold
    server = await server_factory(max_concurrent=1, write_timeout=1.0, queue_timeout=20)
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.transport.set_write_buffer_limits(0)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    writer.write(header({"type": "synthesize", "data": {"text": "Never read me. " * 20}}))
    await writer.drain()
    try:
        # We never read. The server must give up on us and serve the next client on the slot.
        started = time.monotonic()
        _, samples, _ = await asyncio.wait_for(timed_synthesis(server.port, "Next."), 30)
        assert samples > 0 and time.monotonic() - started < 15
        await asyncio.wait_for(llm.wait_closed(llm.requests[0]), 10)
        assert not llm.requests[0].finished  # closed by the timeout, not served to the end
    finally:
        writer.close()


async def test_newlines_in_client_text_cannot_forge_log_lines(
    hostile_server: WyomingServer, caplog: pytest.LogCaptureFixture
) -> None:
    voice = {"name": "x\n2026-01-01 INFO forged: all good"}
    await exchange(
        hostile_server.port, header({"type": "synthesize", "data": {"text": "Hi", "voice": voice}})
    )
    assert "unknown voice" in caplog.text
    assert not any(line.startswith("2026-01-01") for line in caplog.text.splitlines())
