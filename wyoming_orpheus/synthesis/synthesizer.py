"""One request end to end: text parts -> segments -> upstream tokens -> frames -> PCM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass

import numpy as np

from ..audio.level import LevelControl
from ..audio.pcm import LeadTrimmer, TempoChanger, silence, to_int16
from ..config import PlayoutSettings, SpeechSettings
from ..decode.streams import Playback, open_stream
from ..decode.worker import DecodeWorker
from ..errors import OrpheusError
from ..format import TOKENS_PER_FRAME
from ..metrics import Metrics
from ..playout.gate import Gate, Silence
from ..playout.holder import Progress
from ..playout.pace import Pace
from ..playout.rule import KeepAlive, playout_policy
from ..playout.schedule import server_rates
from ..text import Part, Pause, TextError, TextPipeline, clean_text, ssml_to_parts
from ..upstream.completion import DEFAULT_SAMPLING, Sampling, UpstreamError
from ..upstream.pool import UpstreamPool
from ..upstream.tokens import FrameStats
from ..voices import Voice, VoiceCatalog
from .feed import TokenFeed, close_all
from .report import Report
from .sentences import SentencePlan
from .starter import Starter

_LOGGER = logging.getLogger(__name__)


class BusyError(OrpheusError):
    """Every synthesis slot stayed taken for the queue timeout."""

    code = "busy"
    retryable = True
    http_status = 429


class VoiceError(OrpheusError, ValueError):
    """The voice is not on offer."""

    code = "unknown-voice"
    http_status = 400
    param = "voice"


@dataclass
class SynthesisStats:
    """Counters across requests: syntheses running and waiting, tokens the parser dropped."""

    active: int = 0
    queued: int = 0
    dropped_tokens: int = 0
    invalid_tokens: int = 0


_Item = TokenFeed | Pause | Exception | None
"""What the feeder hands the speaker, in order: a segment's feed, an explicit pause, the
failure that ended the text, or None at its end."""
OFF_LOOP_CHARS = 1000
"""Text parts longer than this are prepared (normalized, segmented) off the event loop."""


class Synthesizer:
    """Shared by both front doors: one decoder, one upstream pool, one concurrency limit."""

    def __init__(
        self,
        speech: SpeechSettings,
        playout: PlayoutSettings,
        queue_timeout: float,
        catalog: VoiceCatalog,
        pool: UpstreamPool,
        worker: DecodeWorker,
        max_concurrent: int,
        metrics: Metrics,
        text: TextPipeline,
    ) -> None:
        self.speech = speech
        """The voice and text section: what a door may read (the default speed, the limits)."""
        self._queue_timeout = queue_timeout
        self.text = text
        self.catalog = catalog
        self._pool = pool
        self._worker = worker
        self._slots = asyncio.Semaphore(max_concurrent)
        self.max_concurrent = max_concurrent
        self.stats = SynthesisStats()
        self.metrics = metrics
        metrics.track_slots(lambda: self.stats.active, lambda: self.stats.queued)
        self._policy = playout_policy(playout)
        self._keep_alive = {
            "wyoming": KeepAlive() if playout.playout_keepalive else None,
            "http": KeepAlive() if playout.playout_keepalive_http else None,
        }
        """Silence while speech is held, per door."""
        self._pace = Pace()
        self._by_sentence = playout.playout_sentences
        self._plans: list[SentencePlan] = []
        """The answers now planned by sentence: each plans around the others on its server."""

    def resolve_voice(self, name: str | None) -> Voice:
        """Return the named voice, or the default voice when no name is given."""
        voice = self.catalog.get(name or self.speech.voice)
        if voice is None:
            offered = ", ".join(v.name for v in self.catalog.voices)
            raise VoiceError(f"unknown voice '{name}'; this server offers: {offered}")
        return voice

    def prepare(self, text: str, ssml: bool = False) -> list[Part]:
        """Validate a whole text (plain or SSML) and turn it into parts."""
        self.check_length(len(text))
        parts: list[Part] = ssml_to_parts(text) if ssml else [text]
        # NOTE: issue 31: the limit holds for what is spoken, not only for the markup.
        self.check_length(sum(len(p) for p in parts if isinstance(p, str)))
        if not any(isinstance(p, str) and clean_text(p) for p in parts):
            raise TextError("the text is empty: there is nothing to speak")
        return parts

    def check_length(self, length: int) -> None:
        """Reject text over the configured limit."""
        if length > self.speech.max_text_chars:
            raise TextError(
                f"the text has {length} characters; this server takes at most "
                f"{self.speech.max_text_chars} (max_text_chars)"
            )

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the synthesis slots; wait at most queue_timeout for it."""
        self.stats.queued += 1
        try:
            async with asyncio.timeout(self._queue_timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise BusyError(
                f"server busy: {self.max_concurrent} syntheses are running; try again shortly"
            ) from None
        finally:
            self.stats.queued -= 1
        self.stats.active += 1
        try:
            yield
        finally:
            self.stats.active -= 1
            self._slots.release()

    async def synthesize(
        self,
        parts: AsyncIterable[Part] | Iterable[Part],
        voice: Voice,
        speed: float = 1.0,
        sampling: Sampling = DEFAULT_SAMPLING,
        door: str = "wyoming",
    ) -> AsyncGenerator[np.ndarray, None]:
        """Yield 24 kHz int16 mono PCM for the parts, while the LLM still generates.

        With adaptive playout the audio may be held at first (an empty block says it is
        coming: a door sends its start then) until the rest will not run dry (playout/).
        """
        report = Report(voice.name, door, self.metrics)
        plan = self._sentence_plan(voice, speed)
        progress = Progress(
            speed=speed,
            seconds_per_char=self._pace.of(voice.name),
            remembered=self._pool.expected_rate(voice.name),
            lead=plan.lead if plan is not None else None,
        )
        gate = Gate(self._policy, progress, keep_alive=self._keep_alive.get(door))
        if plan is not None:
            plan.hand = gate.in_hand
        made = self._made(parts, voice, speed, sampling, progress, plan)
        try:
            # NOTE: every nested generator is closed explicitly (aclosing), so a listener that
            # stops closes the upstream requests at once rather than when garbage is collected.
            async with contextlib.aclosing(gate.run(made)) as released:
                async for samples in released:
                    if len(samples) and not isinstance(samples, Silence):
                        report.audio(len(samples))
                    yield samples
        finally:
            if plan is not None:
                plan.close()
        report.log(gate.outcome)

    def _sentence_plan(self, voice: Voice, speed: float) -> SentencePlan | None:
        """Return a sentence plan when this answer's server is measured below real time.

        NOTE: issue 29: below real time, one request per sentence, sent by a plan for the
        server's batch, speaks several times sooner than one request per 600 characters.
        At or above real time (or not measured yet) the answer goes as before: packed
        segments (longer text, better prosody; nothing is held anyway).
        """
        if self._policy is None or not self._by_sentence:
            return None
        upstream = self._pool.choose(voice.name)
        measured = upstream.rates_at() if upstream is not None else {}
        if upstream is None or not measured:
            return None
        if server_rates(measured, 1)[0] / speed >= self._policy.fast:
            return None
        pause = self.speech.segment_pause_ms / 1000
        return SentencePlan(upstream, speed, pause, self._policy.margin, self._plans)

    async def _made(
        self,
        parts: AsyncIterable[Part] | Iterable[Part],
        voice: Voice,
        speed: float,
        sampling: Sampling,
        progress: Progress,
        plan: SentencePlan | None,
    ) -> AsyncGenerator[np.ndarray, None]:
        """Hold a slot and make the PCM: segments, tempo and level, a failure after the tail."""
        playback = Playback()
        tempo = TempoChanger(speed)
        level = LevelControl(self.speech.output_gain_db, self.speech.output_limiter)
        pcm = self._pcm(_aiter(parts), voice, sampling, playback, progress, plan)
        async with self.slot(), contextlib.aclosing(pcm):
            failure: Exception | None = None
            try:
                async for samples in pcm:
                    out = tempo.push(to_int16(samples) if samples.dtype != np.int16 else samples)
                    out = level.push(out) if level.active else out
                    if len(out):
                        playback.sent(len(out))
                        yield out
            except Exception as err:  # a late failure: what tempo and the limiter hold goes first
                failure = err
            tail = tempo.flush()
            if level.active:
                tail = np.concatenate([level.push(tail), level.flush()])
            if len(tail):
                yield tail
            if failure is not None:
                raise failure

    async def _pcm(
        self,
        parts: AsyncIterator[Part],
        voice: Voice,
        sampling: Sampling,
        playback: Playback,
        progress: Progress,
        plan: SentencePlan | None,
    ) -> AsyncGenerator[np.ndarray, None]:
        """Speak segments in order while later ones already generate (lookahead or plan)."""
        feeds: asyncio.Queue[_Item] = asyncio.Queue()
        lookahead = self.speech.lookahead_segments
        starter = Starter(self._pool, voice, sampling, progress, lookahead, plan)
        feeder = asyncio.create_task(self._feed(parts, voice, feeds, starter))
        spoken = False
        try:
            while (item := await feeds.get()) is not None:
                if isinstance(item, Exception):
                    raise item
                if isinstance(item, Pause):
                    yield silence(item.seconds)
                    spoken = False  # an explicit break replaces the pause between segments
                    continue
                if spoken and self.speech.segment_pause_ms:
                    yield silence(self.speech.segment_pause_ms / 1000)
                progress.segment += 1
                if plan is not None and item.index is not None:
                    plan.heard = item.index
                async with contextlib.aclosing(self._speak(item, playback, voice)) as segment:
                    async for samples in segment:
                        yield samples
                spoken = True
                starter.spoken()
        finally:
            feeder.cancel()
            # asyncio.wait re-raises our own cancellation, never the feeder's: a suppress()
            # around `await feeder` would swallow a cancellation of this task (issue 25).
            await asyncio.wait([feeder])
            left: list[TokenFeed] = []
            while not feeds.empty():
                if isinstance(item := feeds.get_nowait(), TokenFeed):
                    left.append(item)
            await close_all(left)  # lookahead requests not spoken: closed, and awaited

    async def _feed(
        self,
        parts: AsyncIterator[Part],
        voice: Voice,
        feeds: asyncio.Queue[_Item],
        starter: Starter,
    ) -> None:
        """Start each segment's upstream request when the lookahead window or plan allows."""
        try:
            async for part in parts:
                if isinstance(part, Pause):
                    feeds.put_nowait(part)
                    continue
                segments = await self._segments(part, voice.language, starter.by_sentence)
                starter.progress.chars += sum(len(s) for s in segments)  # the length estimate
                starter.known(segments, self._pace.of(voice.name))
                for segment in segments:
                    feeds.put_nowait(await starter.start(segment))
            feeds.put_nowait(None)
        except Exception as err:  # reaches the consumer in order, after earlier audio
            feeds.put_nowait(err)

    async def _segments(self, text: str, language: str, by_sentence: bool) -> list[str]:
        """Prepare one part for the model; a long one off the loop (~20 ms per 1,000 digits)."""
        limit = self.speech.segment_max_chars
        split = self.text.sentences if by_sentence else self.text.segments
        if len(text) <= OFF_LOOP_CHARS:
            return split(text, language, limit)
        return await asyncio.to_thread(split, text, language, limit)

    async def _speak(
        self, feed: TokenFeed, playback: Playback, voice: Voice
    ) -> AsyncGenerator[np.ndarray, None]:
        """Turn one segment's tokens into exact PCM; flush what came before a late failure."""
        stats = FrameStats()
        decoder = open_stream(self._worker, playback.lead)
        trimmer = LeadTrimmer()
        error: UpstreamError | None = None
        first_token: float | None = None
        try:
            async for piece in feed:
                first_token = first_token or time.monotonic()
                stats.add(piece.found)
                decoder.add(list(piece.frames))
                while (samples := await decoder.next_block()) is not None:
                    yield trimmer.push(samples)
        except UpstreamError as err:
            if decoder.frames == 0:
                raise
            error = err  # audio already started: end the segment cleanly, then report
        finally:
            await feed.close()
        decoder.end()
        while (samples := await decoder.next_block()) is not None:
            yield trimmer.push(samples)
        yield trimmer.flush()
        self._record(stats, first_token)
        if error is not None:
            raise error
        self._pace.learn(voice.name, stats.frames, feed.chars)

    def _record(self, stats: FrameStats, first_token: float | None) -> None:
        took = time.monotonic() - first_token if first_token is not None else 0.0
        if stats.frames > 1 and took > 0:
            self.metrics.token_rate.observe(stats.frames * TOKENS_PER_FRAME / took)
        self.stats.dropped_tokens += stats.dropped_tokens
        self.stats.invalid_tokens += stats.invalid_tokens
        _LOGGER.debug(
            "Segment done: %d frames, %d dropped and %d invalid tokens, end-of-speech %s",
            stats.frames,
            stats.dropped_tokens,
            stats.invalid_tokens,
            stats.end_of_speech,
        )


async def _aiter(parts: AsyncIterable[Part] | Iterable[Part]) -> AsyncIterator[Part]:
    if isinstance(parts, AsyncIterable):
        async for part in parts:
            yield part
    else:
        for part in parts:
            yield part
