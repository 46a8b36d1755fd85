"""One request end to end through the engine: segments, lookahead, pauses, speed, failures."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import aclosing

import numpy as np
import pytest

from tests.stand_ins.llm_server import OrpheusStandIn, frame_tokens, make_frames
from wyoming_orpheus.audio.pcm import LeadTrimmer, TempoChanger
from wyoming_orpheus.engine import Engine
from wyoming_orpheus.metrics import Metrics
from wyoming_orpheus.synthesis import Sampling, Synthesizer
from wyoming_orpheus.upstream.completion import UpstreamError
from wyoming_orpheus.upstream.lease import Lease
from wyoming_orpheus.upstream.tokens import FrameParser, Piece

SENTENCE = "This sentence is about forty characters. "


async def speak(engine: Engine, text: str, speed: float = 1.0, voice: str = "tara") -> np.ndarray:
    synthesizer = engine.synthesizer
    parts = synthesizer.prepare(text)
    pcm = synthesizer.synthesize(parts, synthesizer.resolve_voice(voice), speed)
    async with aclosing(pcm) as chunks:
        return np.concatenate([c async for c in chunks])


async def test_long_text_is_split_and_the_next_segment_starts_early(
    make_settings, engine_factory, llm: OrpheusStandIn
) -> None:
    engine = await engine_factory(make_settings(segment_max_chars=100, segment_pause_ms=100))
    llm.behaviour.tokens_per_second = 300
    audio = await speak(engine, SENTENCE * 6)
    texts = [r.text for r in llm.requests]
    assert len(texts) == 3 and all(len(t) <= 100 for t in texts)
    assert " ".join(texts) == (SENTENCE * 6).strip()
    # Lookahead: the second request started while the first was still streaming.
    first, second, _ = llm.requests
    assert first.closed_at is not None and second.started < first.closed_at
    frames = sum(len(r.frames) for r in llm.requests)
    assert len(audio) == frames * 2048 + 2 * 2400


async def test_garbage_tokens_lose_no_frame(engine: Engine, llm: OrpheusStandIn) -> None:
    llm.behaviour.fault = "garbage"
    audio = await speak(engine, "Some garbage in the stream.")
    assert len(audio) == len(llm.requests[0].frames) * 2048
    assert engine.synthesizer.stats.invalid_tokens == 2
    assert engine.synthesizer.stats.dropped_tokens == 1


async def test_a_failure_after_audio_started_flushes_then_reports(
    engine: Engine, llm: OrpheusStandIn
) -> None:
    llm.behaviour.fault, llm.behaviour.fault_after = "drop", 35
    received: list[np.ndarray] = []
    synthesizer = engine.synthesizer
    pcm = synthesizer.synthesize(
        ["A sentence that is cut off half way."], synthesizer.resolve_voice("tara")
    )
    with pytest.raises(UpstreamError):
        async with aclosing(pcm) as chunks:
            async for chunk in chunks:
                received.append(chunk)
    assert sum(len(c) for c in received) == 5 * 2048  # all 5 frames that arrived, decoded


async def test_stopping_early_closes_every_upstream_request(
    make_settings, engine_factory, llm: OrpheusStandIn
) -> None:
    engine = await engine_factory(make_settings(segment_max_chars=60))
    llm.behaviour.tokens_per_second = 30  # each segment takes ~5 s
    synthesizer = engine.synthesizer
    pcm = synthesizer.synthesize([SENTENCE * 4], synthesizer.resolve_voice("tara"))
    async with aclosing(pcm) as chunks:
        async for _ in chunks:
            break
    assert len(llm.requests) == 2  # the current segment and one of lookahead
    for record in llm.requests:
        await llm.wait_closed(record, timeout=1.0)
        assert not record.finished
    assert synthesizer.stats.active == 0


async def test_speed_changes_duration(engine: Engine, llm: OrpheusStandIn) -> None:
    normal = await speak(engine, "Speed test sentence number one.")
    fast = await speak(engine, "Speed test sentence number one.", speed=2.0)
    assert len(fast) == pytest.approx(len(normal) / 2, rel=0.03)


def test_tempo_change_keeps_the_pitch() -> None:
    rate = 24000
    t = np.arange(rate * 2) / rate
    tone = (np.sin(2 * np.pi * 440 * t) * 10000).astype(np.int16)
    changer = TempoChanger(1.5)
    out = np.concatenate(
        [changer.push(tone[i : i + 1000]) for i in range(0, len(tone), 1000)] + [changer.flush()]
    )
    assert len(out) == pytest.approx(len(tone) / 1.5, rel=0.02)
    spectrum = np.abs(np.fft.rfft(out.astype(float)))
    peak = np.argmax(spectrum) * rate / len(out)
    assert peak == pytest.approx(440, abs=5)


def test_lead_in_silence_is_trimmed_to_a_short_margin() -> None:
    quiet = np.full(12000, 0.001, dtype=np.float32)  # 0.5 s near silence
    loud = np.full(4800, 0.5, dtype=np.float32)
    trimmer = LeadTrimmer()
    out = np.concatenate(
        [
            trimmer.push(quiet[:6000]),
            trimmer.push(quiet[6000:]),
            trimmer.push(loud),
            trimmer.flush(),
        ]
    )
    assert len(out) == 480 + 4800  # 20 ms kept before the first sound


def test_a_quiet_opening_is_never_trimmed_past_one_and_a_half_seconds() -> None:
    trimmer = LeadTrimmer()
    quiet = np.zeros(24000 * 2, dtype=np.float32)
    out = np.concatenate([trimmer.push(quiet), trimmer.flush()])
    assert len(out) == 24000 // 2


class _StalledSource:
    """A token source (the synthesizer's seam) whose streams send some frames, then stall."""

    def __init__(self, frames: int) -> None:
        self._frames = frames
        self.opened = 0
        self.closed = 0

    @contextlib.contextmanager
    def lease(self, voice: str) -> Iterator[Lease]:
        yield Lease(voice, None, self._stream)

    async def _stream(
        self, voice: str, text: str, sampling: Sampling, prefer: object
    ) -> AsyncGenerator[Piece, None]:
        self.opened += 1
        try:
            tokens = frame_tokens(make_frames(self.opened, voice, text, 1.0)[: self._frames])
            yield FrameParser().parse("".join(tokens), time.monotonic())
            await asyncio.Event().wait()  # the LLM stalls: only a close ends this stream
        finally:
            self.closed += 1


def _ours(tasks: set[asyncio.Task[object]]) -> list[str]:
    """The product's tasks among these (the stand-ins' connections have their own)."""
    coroutines = [task.get_coro() for task in tasks]
    return [c.__qualname__ for c in coroutines if "wyoming_orpheus" in c.cr_code.co_filename]


def _synthesizer_reading(source: _StalledSource, engine: Engine) -> Synthesizer:
    shared = engine.synthesizer
    settings = engine.settings
    return Synthesizer(
        settings.speech,
        settings.playout,
        settings.decoder.queue_timeout,
        shared.catalog,
        source,
        engine.worker,
        shared.max_concurrent,
        Metrics(),
        shared.text,
    )


async def test_a_listener_gone_mid_sentence_leaves_no_task_of_its_answer(
    make_settings, engine_factory
) -> None:
    # Lookahead 1: the second segment's request streams while the first is spoken.
    engine = await engine_factory(make_settings(segment_max_chars=60, lookahead_segments=1))
    source = _StalledSource(frames=12)
    synthesizer = _synthesizer_reading(source, engine)
    before = asyncio.all_tasks()
    pcm = synthesizer.synthesize([SENTENCE * 3], synthesizer.resolve_voice("tara"))
    async with aclosing(pcm) as chunks:
        async for samples in chunks:
            if len(samples):
                break  # the listener hangs up mid-sentence, its next request streaming
    assert source.opened == 2
    assert source.closed == 2  # both streams closed by the time the close returned
    assert _ours(asyncio.all_tasks() - before) == []  # no feeder, no reader left behind
    assert synthesizer.stats.active == 0


async def test_streamed_text_is_read_as_it_comes_while_earlier_sentences_wait(
    make_settings, engine_factory
) -> None:
    # NOTE: issue 29: the next sentence of streamed text was read only once the one before it
    # had been sent, so a sentence plan saw it seconds late and its lead fell short.
    engine = await engine_factory(make_settings(lookahead_segments=0, playout="immediate"))
    source = _StalledSource(frames=12)  # the first sentence's request never ends
    synthesizer = _synthesizer_reading(source, engine)
    read: list[str] = []

    async def streamed() -> AsyncIterator[str]:
        for sentence in ("The first sentence.", "A second one.", "And a third."):
            read.append(sentence)
            yield sentence

    pcm = synthesizer.synthesize(streamed(), synthesizer.resolve_voice("tara"))
    async with aclosing(pcm) as chunks:
        async for samples in chunks:
            if len(samples):
                break
    assert len(read) == 3  # all of it known, though only the first request may be sent
    assert source.opened == 1
