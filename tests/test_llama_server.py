"""The product against a real llama.cpp llama-server (the integration tier; never skipped).

llama-server runs a tiny GGUF with Orpheus's token layout (tests/stand_ins/tiny_orpheus_gguf.py);
a byte-for-byte relay in front of it records exactly what it streamed.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.stand_ins.llama_server import LlamaServer
from tests.stand_ins.tcp_recorder import Exchange, TcpRecorder
from tests.stand_ins.tiny_orpheus_gguf import write_tiny_orpheus
from wyoming_orpheus.audio.pcm import to_int16
from wyoming_orpheus.config import Settings, UpstreamSettings
from wyoming_orpheus.decode.snac import decode_batch
from wyoming_orpheus.engine import Engine
from wyoming_orpheus.upstream.pool import UpstreamPool

pytestmark = pytest.mark.slow  # real processes: llama-server, the server itself


@pytest.fixture
def snac(snac_model: torch.nn.Module) -> torch.nn.Module:
    return snac_model  # loaded once per session (conftest)


@pytest.fixture
async def start_llama(tmp_path: Path) -> AsyncIterator[Callable[..., object]]:
    """Start llama-server with a tiny Orpheus model behind a recording relay."""
    running: list[tuple[LlamaServer, TcpRecorder]] = []

    async def start(**model_options: object) -> tuple[LlamaServer, TcpRecorder]:
        model = write_tiny_orpheus(tmp_path / f"tiny-{len(running)}.gguf", **model_options)  # type: ignore[arg-type]
        server = LlamaServer(model, tmp_path / f"llama-{len(running)}.log")
        await server.start()
        recorder = TcpRecorder(server.port)
        await recorder.start()
        running.append((server, recorder))
        return server, recorder

    yield start
    for server, recorder in running:
        await recorder.stop()
        await server.stop()


async def engine_for(
    recorder: TcpRecorder, make_settings, engine_factory, **overrides: object
) -> Engine:
    # Slots given: the pool asks no /props, so the recorder relays only the completions
    # (test_the_pool_learns_llama_server_s_slots asks llama-server itself).
    upstream = UpstreamSettings(f"http://127.0.0.1:{recorder.port}/v1", slots=4)
    return await engine_factory(make_settings(upstreams=(upstream,), **overrides))  # type: ignore[no-any-return]


async def speak(engine: Engine, text: str, voice: str = "tara", speed: float = 1.0) -> np.ndarray:
    synthesizer = engine.synthesizer
    parts, chosen = synthesizer.prepare(text), synthesizer.resolve_voice(voice)
    pcm = synthesizer.synthesize(parts, chosen, speed)
    async with aclosing(pcm) as chunks:
        return np.concatenate([c async for c in chunks])


def assert_equals_offline_decode(
    audio: np.ndarray, exchange: Exchange, snac: torch.nn.Module
) -> None:
    frames = exchange.frames()
    assert frames, "llama-server generated no complete frame"
    expected = to_int16(decode_batch(snac, np.array([frames]), "cpu")[0])
    assert len(audio) == len(expected) == 2048 * len(frames)  # nothing lost at either end
    assert np.abs(audio.astype(int) - expected.astype(int)).max() <= 1


async def test_audio_equals_an_offline_decode_of_what_llama_server_generated(
    start_llama, make_settings, engine_factory, snac
) -> None:
    _, recorder = await start_llama()
    engine = await engine_for(recorder, make_settings, engine_factory)
    audio = await speak(engine, "Hello there.")
    (exchange,) = recorder.exchanges
    assert exchange.finish_reason() == "stop"  # end-of-speech ended it
    assert_equals_offline_decode(audio, exchange, snac)


async def test_the_stop_string_is_honoured(
    start_llama, make_settings, engine_factory, snac
) -> None:
    # <custom_token_2> is not this model's EOS: only the request's stop string can end it there.
    _, recorder = await start_llama(eos_is_end_of_speech=False)
    engine = await engine_for(recorder, make_settings, engine_factory)
    audio = await speak(engine, "Stop right there.")
    (exchange,) = recorder.exchanges
    assert exchange.finish_reason() == "stop"
    assert "<custom_token_2>" not in exchange.generated_text()
    assert_equals_offline_decode(audio, exchange, snac)


async def test_finish_reason_length_ends_the_stream_cleanly(
    start_llama, make_settings, engine_factory, snac
) -> None:
    _, recorder = await start_llama(end_every=None)
    engine = await engine_for(recorder, make_settings, engine_factory, max_tokens=52)
    audio = await speak(engine, "This answer is cut by max_tokens.")
    (exchange,) = recorder.exchanges
    assert exchange.finish_reason() == "length"
    assert exchange.request_json()["max_tokens"] == 52
    assert len(exchange.frames()) == 7  # 52 tokens: 7 frames and 3 tokens of an 8th
    assert_equals_offline_decode(audio, exchange, snac)


async def test_four_concurrent_requests_each_get_their_own_audio(
    start_llama, make_settings, engine_factory, snac
) -> None:
    _, recorder = await start_llama()
    engine = await engine_for(recorder, make_settings, engine_factory, max_concurrent=4)
    texts = ["First voice.", "Second one here.", "A third request.", "And the fourth."]
    audios = await asyncio.gather(
        *(speak(engine, t, v) for t, v in zip(texts, ["tara", "leo", "zoe", "dan"], strict=True))
    )
    by_prompt = {e.request_json()["prompt"]: e for e in recorder.exchanges}
    assert len(by_prompt) == 4
    for text, audio in zip(texts, audios, strict=True):
        (exchange,) = [e for prompt, e in by_prompt.items() if f": {text}<|eot_id|>" in prompt]
        assert_equals_offline_decode(audio, exchange, snac)


async def test_a_client_that_goes_away_frees_its_slot(
    start_llama, make_settings, engine_factory
) -> None:
    server, recorder = await start_llama(end_every=None)
    engine = await engine_for(recorder, make_settings, engine_factory)
    synthesizer = engine.synthesizer
    long_text = "A long answer that would take many seconds to generate. " * 10
    pcm = synthesizer.synthesize(synthesizer.prepare(long_text), synthesizer.resolve_voice("tara"))
    async with aclosing(pcm) as chunks:
        async for _ in chunks:
            break  # the listener hangs up after the first audio
    gone = time.monotonic()
    max_tokens = recorder.exchanges[0].request_json()["max_tokens"]
    while any(slot["is_processing"] for slot in await server.slots()):
        assert time.monotonic() - gone < 2.0, "llama-server is still generating for nobody"
        await asyncio.sleep(0.05)
    # Its log shows the task cancelled, far short of the thousands of tokens asked for.
    log = server.log()
    assert "cancel task" in log
    used = int(re.search(r"stop processing: n_tokens = (\d+)", log).group(1))  # type: ignore[union-attr]
    assert used < max_tokens / 2
    assert recorder.exchanges[0].finish_reason() is None  # the stream never finished


async def test_the_request_is_accepted_as_is_and_its_sampling_honoured(
    start_llama, make_settings, engine_factory
) -> None:
    server, recorder = await start_llama()
    engine = await engine_for(recorder, make_settings, engine_factory)
    await speak(engine, "Check my settings.")
    (exchange,) = recorder.exchanges
    assert exchange.received.startswith(b"HTTP/1.1 200")
    assert not any("error" in event for event in exchange.sse_events())
    (params,) = [s["params"] for s in await server.slots() if "params" in s]
    assert params["repeat_penalty"] == pytest.approx(1.1)
    assert params["temperature"] == pytest.approx(0.6)
    assert params["top_p"] == pytest.approx(0.9)
    assert params["n_predict"] == exchange.request_json()["max_tokens"]


SENTENCES = [
    "The first sentence is a short one.",
    "Then a second one follows it.",
    "A third sentence comes next.",
    "And this is the last one.",
]


@pytest.mark.timing  # rates measured on a shared machine: run alone, after the rest
async def test_sentence_requests_batch_on_llama_server_and_each_load_is_measured(
    start_llama, make_settings, engine_factory
) -> None:
    # A wider tiny model: ~2x real time alone on two cores, and llama-server batches it as it
    # batches a real one (each request slower when others run, all of them together faster).
    server, recorder = await start_llama(end_every=None, width=1024)
    engine = await engine_for(recorder, make_settings, engine_factory)
    assert await engine.pool.probe("tara")  # measured alone, as managed mode does at start
    # Spoken at speed 4 that is below real time: the answer goes sentence by sentence.
    busy: list[int] = []

    async def watch() -> None:
        while True:
            busy.append(sum(slot["is_processing"] for slot in await server.slots()))
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch())
    try:
        audio = await speak(engine, " ".join(SENTENCES), speed=4.0)
    finally:
        watcher.cancel()
        await asyncio.wait([watcher])
    answer = recorder.exchanges[1:]  # the first is the probe
    sent = [e.request_json()["prompt"] for e in answer]
    assert [sum(s in prompt for s in SENTENCES) for prompt in sent] == [1] * 4, sent
    assert max(busy) >= 2  # llama-server ran sentence requests of the answer together
    frames = sum(len(e.frames()) for e in answer)
    pauses = 3 * engine.settings.speech.segment_pause_ms / 1000 * 24000
    assert abs(len(audio) - (frames * 2048 + pauses) / 4) < 0.02 * len(audio)  # all of it, at 4x
    rates = engine.pool.upstreams[0].rates_at()  # per request, by requests in flight at once
    print("llama-server per-request real-time factor by load:", rates)
    assert {1, 2} <= rates.keys()
    assert rates[2] < rates[1]  # a batching server: each request slower when two run


async def test_the_pool_learns_llama_server_s_slots(
    tiny_gguf: Path, tmp_path: Path, make_settings
) -> None:
    server = LlamaServer(tiny_gguf, tmp_path / "llama.log", parallel=3)
    await server.start()
    settings: Settings = make_settings(upstreams=(UpstreamSettings(server.url),))
    pool = UpstreamPool(settings.llm, settings.requests, settings.sampling)
    try:
        await pool.start()
        async with asyncio.timeout(10):
            while pool.upstreams[0].told_slots is None:
                await asyncio.sleep(0.02)
        assert pool.upstreams[0].slots == 3  # its -np, from its /props
    finally:
        await pool.close()
        await server.stop()
