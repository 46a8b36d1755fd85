"""Speech on the LLM servers households have (issue 29), through both doors.

The LLM stand-in streams like a batching server (one shared decode loop, the published gains,
4 slots: stand_ins/batching.py) at 45, 60 and 100 tokens/s for one request alone; the server
learns its speed as managed mode does (a timed probe). A four-sentence answer, one listener
and two at once, heard by a player that plays from its first bytes (keep-alive silence
first) and never re-buffers. Below real time: no gap, speech soon after the least wait over
sentence schedules, a Wyoming satellite never on a silent line, both listeners served
alike; at and above real time the answer goes as before, one request (at once alone).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest
from wyoming.client import AsyncTcpClient
from wyoming.tts import Synthesize

from benchmarks.e2e import http_speech, wyoming_synthesize
from benchmarks.listener import SAMPLE_RATE, Listen
from tests.http_hangup import hang_up_http
from tests.leftovers import leftovers, server_sockets, settle
from tests.stand_ins.batching import Batching
from tests.stand_ins.llm_server import OrpheusStandIn, RequestRecord
from wyoming_orpheus.playout.rule import least_wait

# ~10 s of speech at Orpheus's own pace (0.8 frames per character), in four sentences; the
# tag in each tells the stand-in's requests of two answers apart.
ANSWER = (
    "{tag}, the front door is locked. In {tag} the garage is closed now. "
    "In {tag} the hallway lights are off. In {tag} the heating is at twenty."
)
REAL_PACE = 0.8


@pytest.fixture
async def household(
    llm: OrpheusStandIn, make_settings, engine_factory, wyoming_factory, http_factory
):
    """Start both doors on a batching LLM stand-in at a rate; return (wyoming port, url)."""
    llm.behaviour.frames_per_char = REAL_PACE

    async def start(tokens_per_second: float) -> tuple[int, str]:
        llm.behaviour.batching = Batching(tokens_per_second)
        engine = await engine_factory(make_settings(stall_timeout=30, playout_keepalive=True))
        await engine.report_llm_speed()  # the server's rate, measured as managed mode does
        server = await wyoming_factory(engine)
        llm.requests.clear()  # the probe's
        return server.port, await http_factory(engine)

    return start


def ask(door: str, llm: OrpheusStandIn, ends: tuple[int, str], tag: str) -> Any:
    if door == "wyoming":
        return wyoming_synthesize(llm, ends[0], tag, ANSWER)
    return http_speech(llm, ends[1], tag, ANSWER)


def requests_of(llm: OrpheusStandIn, tag: str) -> list[RequestRecord]:
    """The stand-in's requests for one answer, in the order they were sent."""
    return sorted((r for r in llm.requests if tag in r.text), key=lambda r: r.started)


def seconds(record: RequestRecord) -> float:
    return len(record.frames) * 2048 / SAMPLE_RATE


def overlapped(records: list[RequestRecord]) -> bool:
    """Tell whether two of one answer's requests were ever in flight at once."""
    for a, b in itertools.combinations(records, 2):
        assert a.closed_at is not None and b.closed_at is not None
        if a.started < b.closed_at and b.started < a.closed_at:
            return True
    return False


def quiet_before_speech(listen: Listen) -> float:
    """The longest time without bytes from the request to the first speech."""
    times = [listen.asked, *(t for t, _ in listen.silence), listen.chunks[0][0]]
    return max(b - a for a, b in itertools.pairwise(times))


@pytest.mark.timing
@pytest.mark.parametrize("listeners", [1, 2])
@pytest.mark.parametrize("rate", [45, 60])
@pytest.mark.parametrize("door", ["wyoming", "http"])
async def test_below_real_time_every_listener_hears_the_answer_without_a_gap_soon(
    household, llm: OrpheusStandIn, door: str, rate: int, listeners: int
) -> None:
    ends = await household(rate)
    tags = [f"Room {'ab'[a]}" for a in range(listeners)]
    heard: list[Listen] = list(await asyncio.gather(*(ask(door, llm, ends, t) for t in tags)))
    answers = [requests_of(llm, tag) for tag in tags]
    lengths = [seconds(r) for r in answers[0]]
    least = Batching(rate).least_shared_wait(lengths, listeners)
    starts = [listen.heard_speech(0.0) for listen in heard]
    print(f"{door}, {rate} tok/s, {listeners} listener(s): speech heard at {starts} s, least "
          f"{least:.2f} s, gaps {[x.dry_seconds(0.0) for x in heard]}")  # fmt: skip
    for listen, requests in zip(heard, answers, strict=True):
        assert len(requests) == 4  # one request per sentence
        assert listen.audio_seconds == pytest.approx(sum(lengths) + 3 * 0.15, abs=0.05)
        assert overlapped(requests)  # the next sentences generated while the first played
        assert listen.dry_seconds(0.0) < 0.1  # no gap a listener hears
        assert listen.heard_speech(0.0) <= 1.3 * least + 1.0
        if door == "wyoming":  # a satellite is never left on a silent line
            assert listen.first_bytes < 0.5
            assert quiet_before_speech(listen) < 1.0
    assert max(starts) - min(starts) < 1.0  # the two answers are served alike


@pytest.mark.timing
@pytest.mark.parametrize("listeners", [1, 2])
@pytest.mark.parametrize("door", ["wyoming", "http"])
async def test_above_real_time_the_answer_is_one_request_and_speaks_at_once(
    household, llm: OrpheusStandIn, door: str, listeners: int
) -> None:
    ends = await household(100)
    tags = [f"Room {'ab'[a]}" for a in range(listeners)]
    heard: list[Listen] = list(await asyncio.gather(*(ask(door, llm, ends, t) for t in tags)))
    assert len(llm.requests) == listeners  # packed as before: the better prosody
    for listen in heard:
        assert listen.dry_seconds(0.0) < 0.1
        if listeners == 1:
            assert listen.first_audio < 0.5  # nothing held, as before
        else:  # two at once stream at 100 x 1.6 / 2 = 80 tokens/s each: just below real time
            assert (
                listen.heard_speech(0.0) <= 1.3 * least_wait(listen.audio_seconds, 80 / 82.03) + 1
            )


async def hang_up_wyoming(port: int, speech: bool) -> None:
    """Synthesize, then hang up on the first silence (held) or the first speech."""
    client = AsyncTcpClient("127.0.0.1", port)
    await client.connect()
    await client.write_event(Synthesize(text=ANSWER.format(tag="Room a")).event())
    async with asyncio.timeout(30):
        while (event := await client.read_event()) is not None:
            assert event.type in ("audio-start", "audio-chunk"), event.data
            if event.type == "audio-chunk" and (not speech or any(event.payload or b"")):
                break
    await client.disconnect()


@pytest.mark.timing
@pytest.mark.parametrize("speech", [False, True], ids=["held", "speaking"])
@pytest.mark.parametrize("door", ["wyoming", "http"])
async def test_a_hang_up_mid_schedule_closes_every_sentence_request(
    household, llm: OrpheusStandIn, door: str, speech: bool
) -> None:
    port, url = await household(45)
    baseline = set(asyncio.all_tasks())
    if door == "wyoming":
        await hang_up_wyoming(port, speech)
    else:
        await hang_up_http(url, ANSWER.format(tag="Room a"), speech)
    hung_up = time.monotonic()
    http_port = int(url.rsplit(":", 1)[1])
    await settle(lambda: leftovers(port, baseline, llm, lambda: server_sockets(http_port)))
    sent = len(llm.requests)
    assert sent >= 1 and not all(r.finished for r in llm.requests)  # cut mid-schedule
    assert all(r.closed_at is not None for r in llm.requests)  # every one closed
    await asyncio.sleep(1.5)  # later sentences were planned: none is sent for nobody
    assert len(llm.requests) == sent
    assert all(r.started <= hung_up for r in llm.requests)
