"""Overload: more requests than synthesis slots on both doors (issue #11).

Beyond the limit requests wait in the queue, then get `busy` (Wyoming) or 429 (HTTP) after
queue_timeout; the request that holds the slot keeps streaming in real time meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import aiohttp
import pytest
from wyoming.audio import AudioChunk
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.tts import Synthesize

from benchmarks.listener import Listen
from tests.stand_ins.llm_server import OrpheusStandIn
from tests.waiting import until
from tests.wyoming_client import Reply, read_reply
from wyoming_orpheus.config import Settings
from wyoming_orpheus.wyoming_server.handler import build_info
from wyoming_orpheus.wyoming_server.listener import WyomingServer

QUEUE_TIMEOUT = 1.0
# Long enough (~5 s of audio, ~3 s to generate) to hold the slot well past QUEUE_TIMEOUT.
ACCEPTED = (
    "The living room is at twenty one degrees, and the washer finished a while ago. "
    "The front door is locked, the garage is closed, and the lights in the hallway are off. "
    "Tomorrow brings light rain in the morning and a dry, mild afternoon."
)


async def listen_wyoming(port: int, text: str) -> Listen:
    """Synthesize over Wyoming; note when each chunk arrived."""
    client = AsyncTcpClient("127.0.0.1", port)
    await client.connect()
    listen = Listen(asked=time.monotonic())
    try:
        await client.write_event(Synthesize(text=text).event())
        async with asyncio.timeout(30):
            while True:
                event = await client.read_event()
                assert event is not None and not Error.is_type(event.type), event
                if AudioChunk.is_type(event.type):
                    listen.add(time.monotonic(), len(AudioChunk.from_event(event).audio) // 2)
                elif event.type == "audio-stop":
                    return listen
    finally:
        await client.disconnect()


async def wyoming_refusal(port: int, text: str) -> Reply:
    """Synthesize over Wyoming, expecting a refusal (audio-start, audio-stop, then error)."""
    client = AsyncTcpClient("127.0.0.1", port)
    await client.connect()
    try:
        await client.write_event(Synthesize(text=text).event())
        return await read_reply(client, "error", timeout=30)
    finally:
        await client.disconnect()


async def http_refusal(url: str) -> tuple[int, str, str, float]:
    """POST a speech request; return the status, error code, Retry-After and seconds taken."""
    asked = time.monotonic()
    body = {"input": "Me too, please.", "response_format": "pcm"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + "/v1/audio/speech", json=body) as response,
    ):
        payload = await response.json() if response.status != 200 else {}
        code = payload.get("error", {}).get("code", "")
        return (
            response.status,
            code,
            response.headers.get("Retry-After", ""),
            time.monotonic() - asked,
        )


@pytest.mark.timing
async def test_beyond_the_limit_requests_queue_then_get_busy_and_the_stream_keeps_real_time(
    llm: OrpheusStandIn,
    make_settings: Callable[..., Settings],
    engine_factory,
    http_factory,
) -> None:
    llm.behaviour.tokens_per_second = 150  # a consumer GPU with headroom: 1.8x real time
    engine = await engine_factory(
        # The narrow SNAC stand-in: whether the published width decodes in real time is the
        # machine's speed, measured by benchmarks/e2e.py; what is tested here is that waiting and
        # refused requests take nothing from the stream that holds the slot.
        make_settings(max_concurrent=1, queue_timeout=QUEUE_TIMEOUT, warm_up=True)
    )
    wyoming = WyomingServer(
        engine.settings.wyoming.uri,
        build_info(engine.synthesizer.catalog, True),
        engine.synthesizer,
        engine.settings.limits,
    )
    await wyoming.start()
    url = await http_factory(engine)
    try:
        # NOTE: one request first: the warm-up does not cover the end of a stream (its last
        # block and the flush of the layer caches, ~0.8 s cold and ~0.35 s warm on a 2-core
        # AVX2 machine), and a cold tail made this test underrun at the end of the stream,
        # where the overload is long over; what is tested here is the overload.
        await listen_wyoming(wyoming.port, "Warm up the end of a stream.")
        llm.requests.clear()
        accepted = asyncio.create_task(listen_wyoming(wyoming.port, ACCEPTED))
        await until(lambda: llm.requests, "the accepted request to reach the LLM (its slot)")
        started = time.monotonic()
        extra_wyoming = [wyoming_refusal(wyoming.port, f"Me too, number {n}.") for n in range(3)]
        extra_http = [http_refusal(url) for _ in range(3)]
        refused = await asyncio.gather(*extra_wyoming, *extra_http)
        listen = await accepted
    finally:
        await wyoming.shutdown(grace=0)
    # The extra requests waited for the slot, then were told to come back later.
    for reply in refused[:3]:
        assert reply.error is not None and reply.error.code == "busy" and not reply.audio
    for status, code, retry_after, _ in refused[3:]:
        assert (status, code, retry_after) == (429, "busy", "1")
    assert time.monotonic() - started >= QUEUE_TIMEOUT * 0.9
    assert min(seconds for *_, seconds in refused[3:]) >= QUEUE_TIMEOUT * 0.9
    # The accepted stream: all of its audio, played without a gap by a player that starts
    # 300 ms after its first chunk (what a satellite does).
    assert listen.audio_seconds * 24000 == len(llm.requests[0].frames) * 2048
    print(f"accepted stream: RTF {listen.real_time_factor:.2f}, gap {listen.largest_gap:.2f} s")
    assert listen.underruns(prebuffer=0.3) == 0
    assert len(llm.requests) == 1  # the refused ones never reached the LLM
