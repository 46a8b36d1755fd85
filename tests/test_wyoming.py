"""The Wyoming server through wyoming's own client over real TCP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from wyoming.client import AsyncTcpClient, AsyncUnixClient
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeVoice,
)

from tests.stand_ins.llm_server import OrpheusStandIn
from tests.waiting import until
from tests.wyoming_client import assert_well_formed, read_reply
from wyoming_orpheus.audio.pcm import to_int16
from wyoming_orpheus.config import UpstreamSettings
from wyoming_orpheus.decode.snac import decode_batch
from wyoming_orpheus.voices import CUSTOM_MODEL, Voice
from wyoming_orpheus.wyoming_server.handler import build_info
from wyoming_orpheus.wyoming_server.listener import WyomingServer


@asynccontextmanager
async def connect(server: WyomingServer) -> AsyncIterator[AsyncTcpClient]:
    client = AsyncTcpClient("127.0.0.1", server.port)
    await client.connect()
    try:
        yield client
    finally:
        await client.disconnect()


def expected_pcm(model: torch.nn.Module, frames: list[tuple[int, ...]]) -> np.ndarray:
    return to_int16(decode_batch(model, np.array([frames]), "cpu")[0])


async def test_describe_lists_every_voice(wyoming_server: WyomingServer) -> None:
    async with connect(wyoming_server) as client:
        await client.write_event(Describe().event())
        info = Info.from_event((await read_reply(client, "info")).events[-1])
    (program,) = info.tts
    assert program.supports_synthesize_streaming and program.installed
    assert "Canopy Labs" in program.voices[0].attribution.name
    names = [v.name for v in program.voices]
    assert names == ["tara", "leah", "jess", "leo", "dan", "mia", "zac", "zoe"]
    assert all(v.installed and v.languages == ["en"] and v.description for v in program.voices)


async def test_synthesize_sends_exact_audio_in_1024_sample_chunks(
    wyoming_server: WyomingServer, llm: OrpheusStandIn, snac_model: torch.nn.Module
) -> None:
    async with connect(wyoming_server) as client:
        await client.write_event(Synthesize(text="Hello world, how are you?").event())
        reply = await read_reply(client, "audio-stop")
    assert_well_formed(reply)
    (record,) = llm.requests
    assert record.voice == "tara" and record.text == "Hello world, how are you?"
    received = np.frombuffer(reply.audio, dtype="<i2")
    expected = expected_pcm(snac_model, record.frames)
    assert len(received) == len(expected) == 2048 * len(record.frames)
    assert np.abs(received.astype(int) - expected.astype(int)).max() <= 1


async def test_a_sensor_message_reaches_the_model_in_spoken_form(
    server_factory, llm: OrpheusStandIn
) -> None:
    server = await server_factory(upstreams=(UpstreamSettings(llm.base_url, voices=("en", "de")),))
    async with connect(server) as client:
        text = "It is 21.5 °C, humidity 45 %. The washer finished at 21:30!!!"
        await client.write_event(Synthesize(text=text).event())
        await read_reply(client, "audio-stop")
        german = SynthesizeVoice(name="jana")
        await client.write_event(Synthesize(text="Es sind 21.5 °C", voice=german).event())
        await read_reply(client, "audio-stop")
    assert [r.text for r in llm.requests] == [
        "It is twenty-one point five degrees Celsius, humidity forty-five percent. "
        "The washer finished at twenty-one thirty!",
        "Es sind einundzwanzig Komma fünf Grad Celsius.",
    ]


async def test_custom_voices_are_offered_and_routed_to_their_upstream(
    server_factory, llm: OrpheusStandIn
) -> None:
    tuned = OrpheusStandIn()
    await tuned.start()
    try:
        bernd = Voice("bernd", "de", "male", "A fine-tuned neighbour", CUSTOM_MODEL)
        server = await server_factory(
            upstreams=(
                UpstreamSettings(llm.base_url),
                UpstreamSettings(tuned.base_url, custom_voices=(bernd,)),
            )
        )
        async with connect(server) as client:
            await client.write_event(Describe().event())
            info = Info.from_event((await read_reply(client, "info")).events[-1])
            await client.write_event(
                Synthesize(text="Es sind 5 %", voice=SynthesizeVoice(name="Bernd")).event()
            )
            reply = await read_reply(client, "audio-stop")
    finally:
        await tuned.stop()
    offered = {v.name: v for v in info.tts[0].voices}
    assert offered["bernd"].languages == ["de"]
    assert offered["bernd"].description == "A fine-tuned neighbour"
    assert "tara" in offered
    assert_well_formed(reply)
    assert llm.requests == []  # the English server never saw it
    assert [(r.voice, r.text) for r in tuned.requests] == [("bernd", "Es sind fünf Prozent.")]


async def test_voice_name_is_used_and_speaker_ignored(
    wyoming_server: WyomingServer, llm: OrpheusStandIn
) -> None:
    async with connect(wyoming_server) as client:
        voice = SynthesizeVoice(name="leo", speaker="ignored")
        await client.write_event(Synthesize(text="Hi.", voice=voice).event())
        await read_reply(client, "audio-stop")
    assert llm.requests[0].voice == "leo"


@pytest.mark.parametrize(
    ("text", "voice", "code", "fragment"),
    [
        ("Hello.", "nobody", "unknown-voice", "unknown voice 'nobody'"),
        ("   ", None, "bad-text", "the text is empty"),
        ("x" * 10_001, None, "bad-text", "at most 10000"),
        ("<speak><break time='soon'/></speak>", None, "bad-text", "invalid SSML break time"),
    ],
)
async def test_bad_requests_get_an_error_and_the_connection_stays_usable(
    wyoming_server: WyomingServer, text: str, voice: str | None, code: str, fragment: str
) -> None:
    async with connect(wyoming_server) as client:
        text_format = "ssml" if text.startswith("<speak") else None
        request = Synthesize(
            text=text, voice=SynthesizeVoice(name=voice) if voice else None, text_format=text_format
        )
        await client.write_event(request.event())
        reply = await read_reply(client, "error")
        assert reply.error is not None and reply.error.code == code and fragment in reply.error.text
        await client.write_event(Event(type="not-a-real-event"))
        await client.write_event(Describe().event())
        assert (await read_reply(client, "info")).types == ["info"]


async def test_upstream_failure_reaches_the_client(
    wyoming_server: WyomingServer, llm: OrpheusStandIn
) -> None:
    llm.behaviour.fault = "http500"
    async with connect(wyoming_server) as client:
        await client.write_event(Synthesize(text="Hello.").event())
        reply = await read_reply(client, "error")
        assert (
            reply.error is not None
            and reply.error.code == "upstream-error"
            and "HTTP 500" in reply.error.text
        )
        llm.behaviour.fault = None
        await client.write_event(Synthesize(text="Hello.").event())
        assert_well_formed(await read_reply(client, "audio-stop"))


async def test_streaming_with_chunks_split_mid_word(
    wyoming_server: WyomingServer, llm: OrpheusStandIn
) -> None:
    text = "The weather is sunny today. Tomorrow brings rain and wind."
    async with connect(wyoming_server) as client:
        await client.write_event(SynthesizeStart(voice=SynthesizeVoice(name="zoe")).event())
        for start in range(0, len(text), 7):
            await client.write_event(SynthesizeChunk(text=text[start : start + 7]).event())
        await client.write_event(Synthesize(text=text, voice=SynthesizeVoice(name="zoe")).event())
        await client.write_event(SynthesizeStop().event())
        reply = await read_reply(client, "synthesize-stopped")
    assert reply.types[0] == "audio-start" and reply.types[-2:] == [
        "audio-stop",
        "synthesize-stopped",
    ]
    assert_well_formed(reply)
    # One request per sentence, none for the compatibility synthesize.
    assert [(r.voice, r.text) for r in llm.requests] == [
        ("zoe", "The weather is sunny today."),
        ("zoe", "Tomorrow brings rain and wind."),
    ]
    frames = sum(len(r.frames) for r in llm.requests)
    pause = round(0.150 * 24000)
    assert len(reply.audio) // 2 == frames * 2048 + pause


async def test_first_audio_leaves_before_the_last_chunk_is_sent(
    wyoming_server: WyomingServer, llm: OrpheusStandIn
) -> None:
    async with connect(wyoming_server) as client:
        await client.write_event(SynthesizeStart().event())
        for piece in ("Here is the first sen", "tence of a long answer. ", "And the sec"):
            await client.write_event(SynthesizeChunk(text=piece).event())
        first = await read_reply(client, "audio-chunk", timeout=30)
        assert first.types == ["audio-start", "audio-chunk"]
        await client.write_event(SynthesizeChunk(text="ond one.").event())
        await client.write_event(SynthesizeStop().event())
        await read_reply(client, "synthesize-stopped")
    assert [r.text for r in llm.requests] == [
        "Here is the first sentence of a long answer.",
        "And the second one.",
    ]


async def test_ssml_breaks_become_silence(
    wyoming_server: WyomingServer, llm: OrpheusStandIn
) -> None:
    ssml = "<speak>Hello there.<break time='500ms'/>General Kenobi.</speak>"
    async with connect(wyoming_server) as client:
        await client.write_event(Synthesize(text=ssml, text_format="ssml").event())
        reply = await read_reply(client, "audio-stop")
    assert [r.text for r in llm.requests] == ["Hello there.", "General Kenobi."]
    frames = sum(len(r.frames) for r in llm.requests)
    samples = np.frombuffer(reply.audio, dtype="<i2")
    assert len(samples) == frames * 2048 + 12000
    start = len(llm.requests[0].frames) * 2048
    assert not samples[start : start + 12000].any()


async def test_markup_is_cleaned_not_read_aloud(
    wyoming_server: WyomingServer, llm: OrpheusStandIn
) -> None:
    async with connect(wyoming_server) as client:
        await client.write_event(
            Synthesize(text="<b>Hello</b> **world** <laugh> <unknown-tag> 🎉 ok").event()
        )
        await read_reply(client, "audio-stop")
    # Markup gone, the emotion tag kept, and the sentence end the model needs added.
    assert llm.requests[0].text == "Hello world <laugh> ok."


async def test_two_clients_at_once_get_their_own_audio(
    wyoming_server: WyomingServer, llm: OrpheusStandIn
) -> None:
    llm.behaviour.tokens_per_second = 500

    async def speak(text: str) -> int:
        async with connect(wyoming_server) as client:
            await client.write_event(Synthesize(text=text).event())
            reply = await read_reply(client, "audio-stop")
            assert_well_formed(reply)
            return len(reply.audio) // 2

    texts = ["A short one.", "A noticeably longer sentence for the second client."]
    lengths = await asyncio.gather(*(speak(t) for t in texts))
    frames = {r.text: len(r.frames) for r in llm.requests}
    assert lengths == [frames[t] * 2048 for t in texts]


async def test_describe_is_answered_within_a_second_during_four_long_syntheses(
    server_factory, llm: OrpheusStandIn
) -> None:
    server = await server_factory(max_concurrent=4)
    llm.behaviour.tokens_per_second = 300
    long_text = "This is a long answer that keeps the server busy for a while. " * 3

    async def speak(client: AsyncTcpClient) -> None:
        await client.write_event(Synthesize(text=long_text).event())
        await read_reply(client, "audio-stop", timeout=120)

    async with (
        connect(server) as a,
        connect(server) as b,
        connect(server) as c,
        connect(server) as d,
    ):
        talkers = [asyncio.create_task(speak(x)) for x in (a, b, c, d)]
        await until(
            lambda: len(llm.requests) >= 4 and min(r.tokens_sent for r in llm.requests) >= 40,
            "four syntheses streaming (40 tokens each)",
            timeout=60,
            every=0.05,
        )
        async with connect(server) as probe:
            for _ in range(3):
                started = time.monotonic()
                await probe.write_event(Describe().event())
                await read_reply(probe, "info", timeout=5)
                assert time.monotonic() - started < 1.0
        assert not any(t.done() for t in talkers), (
            "the syntheses ended before describe was measured"
        )
        await asyncio.gather(*talkers)


async def test_disconnect_mid_synthesis_closes_the_upstream_request(
    wyoming_server: WyomingServer, llm: OrpheusStandIn
) -> None:
    llm.behaviour.tokens_per_second = 100
    async with connect(wyoming_server) as client:
        await client.write_event(Synthesize(text="A long story. " * 20).event())
        await read_reply(client, "audio-chunk")
    disconnected = time.monotonic()
    record = llm.requests[0]
    await llm.wait_closed(record, timeout=1.0)
    assert record.closed_at is not None and record.closed_at - disconnected < 1.0
    assert record.client_disconnected and not record.finished


async def test_busy_server_answers_with_a_busy_error(server_factory, llm: OrpheusStandIn) -> None:
    server = await server_factory(max_concurrent=1, queue_timeout=0.3)
    llm.behaviour.tokens_per_second = 100
    async with connect(server) as first, connect(server) as second:
        await first.write_event(Synthesize(text="A long story. " * 10).event())
        await read_reply(first, "audio-start")
        await second.write_event(Synthesize(text="Me too.").event())
        reply = await read_reply(second, "error")
        assert reply.error is not None and reply.error.code == "busy"


async def test_streaming_can_be_turned_off(make_settings, engine_factory) -> None:
    engine = await engine_factory(make_settings())
    info = build_info(engine.synthesizer.catalog, streaming=False)
    server = WyomingServer(
        engine.settings.wyoming.uri, info, engine.synthesizer, engine.settings.limits
    )
    await server.start()
    try:
        async with connect(server) as client:
            await client.write_event(Describe().event())
            reply = Info.from_event((await read_reply(client, "info")).events[-1])
        assert not reply.tts[0].supports_synthesize_streaming
    finally:
        await server.shutdown(grace=0)


async def test_a_unix_socket_uri_serves_too(make_settings, engine_factory, tmp_path: Path) -> None:
    engine = await engine_factory(make_settings())
    path = tmp_path / "orpheus.sock"
    server = WyomingServer(
        f"unix://{path}",
        build_info(engine.synthesizer.catalog, True),
        engine.synthesizer,
        engine.settings.limits,
    )
    await server.start()
    try:
        client = AsyncUnixClient(str(path))
        await client.connect()
        try:
            await client.write_event(Synthesize(text="Over a socket file.").event())
            assert_well_formed(await read_reply(client, "audio-stop"))
        finally:
            await client.disconnect()
    finally:
        await server.shutdown(grace=0)
