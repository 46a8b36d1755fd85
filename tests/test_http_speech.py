"""POST /v1/audio/speech and /speak through the real openai SDK and aiohttp, over TCP."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import AsyncIterator

import aiohttp
import av
import numpy as np
import openai
import pytest
from openai._streaming import SSEDecoder

from tests.stand_ins.llm_server import OrpheusStandIn

TEXT = "Hello there! This is Orpheus, speaking from a streamed HTTP response."
FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")
# Samples an encoder may add around the audio: MP3 and AAC pad to whole codec frames and
# prime the decoder (LAME: 576 + up to 1152; AAC: 1024 + up to 1024). The others are exact.
PADDING = {"mp3": 2304, "aac": 2048, "opus": 0, "flac": 0, "wav": 0, "pcm": 0}


@pytest.fixture
async def client(http_url: str) -> AsyncIterator[openai.AsyncOpenAI]:
    """The official client, with no retries so each test sees the server's first answer."""
    async with openai.AsyncOpenAI(
        base_url=http_url + "/v1", api_key="unused", max_retries=0
    ) as sdk:
        yield sdk


def decode(data: bytes, audio_format: str) -> np.ndarray:
    """Decode a response body with PyAV to 24 kHz mono int16 samples."""
    if audio_format == "pcm":
        return np.frombuffer(data, dtype="<i2")
    container = av.open(io.BytesIO(data))
    stream = container.streams.audio[0]
    assert stream.codec_context.layout.nb_channels == 1
    # Opus always decodes at 48 kHz (RFC 7845); the others must say 24 kHz themselves.
    assert stream.rate == (48000 if audio_format == "opus" else 24000)
    resampler = av.AudioResampler(format="s16", layout="mono", rate=24000)
    out = [
        frame.to_ndarray().reshape(-1)
        for decoded in container.decode(stream)
        for frame in resampler.resample(decoded)
    ]
    out += [frame.to_ndarray().reshape(-1) for frame in resampler.resample(None)]
    return np.concatenate(out)


async def pcm_of(
    client: openai.AsyncOpenAI, text: str = TEXT, voice: str = "tara", **body: object
) -> np.ndarray:
    response = await client.audio.speech.create(
        model="tts-1", voice=voice, input=text, response_format="pcm", **body
    )
    return np.frombuffer(response.content, dtype="<i2")


def assert_same_audio(samples: np.ndarray, reference: np.ndarray) -> None:
    """The same utterance: equal length, equal samples up to float rounding.

    Two requests decode in blocks of different sizes (the block follows the listener's
    lead, which depends on timing); float rounding may then move a 16-bit sample by one.
    """
    assert len(samples) == len(reference)
    assert np.abs(samples.astype(np.int32) - reference).max() <= 2


@pytest.mark.parametrize("audio_format", FORMATS)
async def test_every_format_streams_24khz_audio_as_long_as_pcm(
    client: openai.AsyncOpenAI, llm: OrpheusStandIn, audio_format: str
) -> None:
    chunks = []
    async with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="tara", input=TEXT, response_format=audio_format
    ) as response:
        assert response.headers["x-audio-sample-rate"] == "24000"
        assert response.headers["transfer-encoding"] == "chunked"
        content_type = response.headers["content-type"]
        async for chunk in response.iter_bytes():
            chunks.append(chunk)
    expected = {"mp3": "audio/mpeg", "opus": "audio/ogg", "aac": "audio/aac"}
    assert content_type == expected.get(audio_format, f"audio/{audio_format}")
    samples = decode(b"".join(chunks), audio_format)
    reference = await pcm_of(client)
    assert len(reference) == len(llm.requests[0].frames) * 2048  # the whole utterance
    assert 0 <= len(samples) - len(reference) <= PADDING[audio_format] + 1
    if audio_format in ("wav", "flac"):  # lossless
        assert_same_audio(samples, reference)


@pytest.mark.parametrize("audio_format", FORMATS)
async def test_a_non_streamed_sdk_call_gets_the_whole_file(
    client: openai.AsyncOpenAI, audio_format: str
) -> None:
    response = await client.audio.speech.create(
        model="gpt-4o-mini-tts", voice={"id": "leo"}, input=TEXT, response_format=audio_format
    )
    samples = decode(response.content, audio_format)
    reference = await pcm_of(client, voice="leo")
    assert 0 <= len(samples) - len(reference) <= PADDING[audio_format] + 1
    if audio_format == "wav":
        assert response.content[:4] == b"RIFF" and response.content[8:12] == b"WAVE"
        assert_same_audio(samples, reference)


async def test_the_first_bytes_arrive_while_the_llm_still_generates(
    client: openai.AsyncOpenAI, llm: OrpheusStandIn
) -> None:
    llm.behaviour.tokens_per_second = 300
    llm.behaviour.frames_per_char = 1.0  # ~70 frames, ~1.6 s of generation
    async with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="tara", input=TEXT, response_format="mp3"
    ) as response:
        first = await anext(response.iter_bytes())
        assert first
        record = llm.requests[0]
        assert not record.finished and record.tokens_sent < len(record.frames) * 7


async def test_sse_events_carry_the_same_audio(client: openai.AsyncOpenAI) -> None:
    async with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="tara", input=TEXT, response_format="pcm", stream_format="sse"
    ) as response:
        assert response.headers["content-type"] == "text/event-stream"
        events = [json.loads(e.data) async for e in SSEDecoder().aiter_bytes(response.iter_bytes())]
    deltas, done = events[:-1], events[-1]
    assert deltas and all(e["type"] == "speech.audio.delta" for e in deltas)
    audio = b"".join(base64.b64decode(e["audio"]) for e in deltas)
    reference = await pcm_of(client)
    assert_same_audio(np.frombuffer(audio, dtype="<i2"), reference)
    assert done["type"] == "speech.audio.done"
    assert done["usage"]["output_tokens"] == len(reference) * 7 // 2048


async def test_extra_body_extensions_reach_the_upstream_request(
    client: openai.AsyncOpenAI, llm: OrpheusStandIn
) -> None:
    await client.audio.speech.create(
        model="tts-1",
        voice="tara",
        input=TEXT,
        response_format="pcm",
        extra_body={
            "seed": 42,
            "temperature": 0.3,
            "top_p": 0.5,
            "repetition_penalty": 1.3,
            "max_tokens": 500,
        },
    )
    body = llm.requests[-1].body
    assert body["seed"] == 42 and body["temperature"] == 0.3 and body["top_p"] == 0.5
    assert body["repeat_penalty"] == body["repetition_penalty"] == 1.3
    assert body["max_tokens"] == 500
    await pcm_of(client)  # the next request is back on the configured sampling
    assert llm.requests[-1].body["temperature"] == 0.6 and "seed" not in llm.requests[-1].body


async def test_openai_voice_names_map_to_orpheus_voices(
    client: openai.AsyncOpenAI, llm: OrpheusStandIn
) -> None:
    await pcm_of(client, voice="echo")
    await pcm_of(client, voice="Nova")
    assert [r.voice for r in llm.requests] == ["leo", "leah"]


@pytest.mark.parametrize(("speed", "ratio"), [(2.0, 0.5), (0.25, 4.0)])
async def test_speed_changes_the_length(
    client: openai.AsyncOpenAI, speed: float, ratio: float
) -> None:
    normal = await pcm_of(client)
    changed = await pcm_of(client, speed=speed)
    assert len(changed) / len(normal) == pytest.approx(ratio, rel=0.05)


async def test_speak_returns_wav_for_legacy_clients(
    http_url: str, client: openai.AsyncOpenAI
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(http_url + "/speak", json={"text": TEXT, "voice": "leo"}) as response,
    ):
        assert response.status == 200 and response.content_type == "audio/wav"
        data = await response.read()
    assert_same_audio(decode(data, "wav"), await pcm_of(client, voice="leo"))


@pytest.mark.parametrize("audio_format", ["pcm", "mp3"])
async def test_a_client_that_goes_away_closes_the_upstream_request_at_once(
    http_url: str, client: openai.AsyncOpenAI, llm: OrpheusStandIn, audio_format: str
) -> None:
    llm.behaviour.tokens_per_second = 100
    llm.behaviour.frames_per_char = 1.0
    async with aiohttp.ClientSession() as session:
        for _ in range(3):  # the encoder may be busy on its thread when the client leaves
            response = await session.post(
                http_url + "/v1/audio/speech",
                json={"input": TEXT, "response_format": audio_format},
            )
            await response.content.readany()
            response.close()
            record = llm.requests[-1]
            await llm.wait_closed(record, timeout=2)
            assert not record.finished
    llm.behaviour.tokens_per_second = None
    assert len(await pcm_of(client)) > 0  # the server serves on


async def stream_until_cut(http_url: str) -> AsyncIterator[bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            http_url + "/v1/audio/speech", json={"input": TEXT, "response_format": "pcm"}
        ) as response,
    ):
        assert response.status == 200
        async for chunk in response.content.iter_any():
            yield chunk


async def test_a_failure_after_audio_started_cuts_the_body_and_the_next_request_works(
    http_url: str, client: openai.AsyncOpenAI, llm: OrpheusStandIn
) -> None:
    llm.behaviour.frames_per_char = 1.0
    llm.behaviour.fault = "drop"
    llm.behaviour.fault_after = 210  # 30 frames of audio, then the LLM server vanishes
    llm.behaviour.fault_times = 1
    received = []
    with pytest.raises(aiohttp.ClientPayloadError):
        async for chunk in stream_until_cut(http_url):
            received.append(chunk)
    assert b"".join(received)  # the audio before the failure was delivered, no JSON after it
    assert not any(b'"error"' in chunk for chunk in received)
    assert len(await pcm_of(client)) > 0


async def test_both_doors_share_one_concurrency_limit(
    make_settings, engine_factory, http_factory, llm: OrpheusStandIn
) -> None:
    engine = await engine_factory(make_settings(max_concurrent=1, queue_timeout=0.3))
    http_url = await http_factory(engine)
    llm.behaviour.tokens_per_second = 50
    voice = engine.synthesizer.resolve_voice("tara")
    held = engine.synthesizer.synthesize(["A long sentence that holds the only slot."], voice)
    await anext(held)  # a synthesis of the other door now holds the slot
    async with openai.AsyncOpenAI(base_url=http_url + "/v1", api_key="-", max_retries=0) as client:
        try:
            with pytest.raises(openai.RateLimitError) as caught:
                await pcm_of(client)
        finally:
            await held.aclose()
        assert caught.value.response.headers["retry-after"] == "1"
        assert caught.value.body["code"] == "busy"
        assert len(await pcm_of(client)) > 0
