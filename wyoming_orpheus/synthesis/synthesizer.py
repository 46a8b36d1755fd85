"""One request end to end: text parts -> segments -> upstream tokens -> frames -> PCM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterable
from contextlib import AbstractContextManager
from typing import Protocol

import numpy as np

from ..audio.level import LevelControl
from ..audio.pcm import TempoChanger, to_int16
from ..config import PlayoutSettings, SpeechSettings
from ..decode.streams import Playback
from ..decode.worker import DecodeWorker
from ..errors import OrpheusError
from ..metrics import Metrics
from ..playout.gate import Block, Gate, Silence
from ..playout.holder import Progress
from ..playout.pace import Pace
from ..playout.rule import KeepAlive, playout_policy
from ..playout.schedule import server_rates
from ..text import Part, TextError, TextPipeline, clean_text, ssml_to_parts
from ..upstream.completion import DEFAULT_SAMPLING, Sampling
from ..upstream.lease import Lease
from ..voices import Voice, VoiceCatalog
from .answer import Answer, Shared
from .report import Report, SynthesisStats
from .sentences import SentencePlan

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


class TokenSource(Protocol):
    """Where an answer's tokens come from: the upstream pool, or a test's own source."""

    def lease(self, voice: str) -> AbstractContextManager[Lease]:
        """Pick the server for one answer's requests, for as long as the answer lasts."""
        ...


class Synthesizer:
    """Shared by both front doors: one decoder, one upstream pool, one concurrency limit."""

    def __init__(
        self,
        speech: SpeechSettings,
        playout: PlayoutSettings,
        queue_timeout: float,
        catalog: VoiceCatalog,
        pool: TokenSource,
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
        self._shared = Shared(speech, text, worker, self._pace, self.stats, metrics)
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
        # Streamed text: the answer (its lease, its plan, the listener's wait and the silence
        # that fills it) begins with its first sentence, not with the request.
        parts = await _from_first(parts)
        with self._pool.lease(voice.name) as lease:
            plan = self._sentence_plan(lease, speed)
            progress = Progress(
                speed=speed,
                seconds_per_char=self._pace.of(voice.name),
                remembered=lease.remembered(),
                lead=plan.lead if plan is not None else None,
            )
            gate = Gate(self._policy, progress, keep_alive=self._keep_alive.get(door))
            if plan is not None:
                plan.hand = gate.in_hand
            answer = Answer(self._shared, voice, lease, sampling, progress, plan)
            made = self._made(parts, answer, speed)
            try:
                # NOTE: every nested generator is closed explicitly (aclosing), so a listener
                # that stops closes the upstream requests at once, not when garbage is collected.
                async with contextlib.aclosing(gate.run(made)) as released:
                    async for samples in released:
                        if len(samples) and not isinstance(samples, Silence):
                            report.audio(len(samples))
                        yield samples
            finally:
                if plan is not None:
                    plan.close()
        report.log(gate.outcome)

    def _sentence_plan(self, lease: Lease, speed: float) -> SentencePlan | None:
        """Return a sentence plan when this answer's server is measured below real time.

        NOTE: issue 29: below real time, one request per sentence, sent by a plan for the
        server's batch, speaks several times sooner than one request per 600 characters.
        At or above real time (or not measured yet) the answer goes as before: packed
        segments (longer text, better prosody; nothing is held anyway).
        """
        if self._policy is None or not self._by_sentence:
            return None
        upstream, measured = lease.upstream, lease.rates_at()
        if upstream is None or not measured:
            return None
        if server_rates(measured, 1)[0] / speed >= self._policy.fast:
            return None
        pause = self.speech.segment_pause_ms / 1000
        return SentencePlan(upstream, speed, pause, self._policy.margin, self._plans)

    async def _made(
        self,
        parts: AsyncIterator[Part],
        answer: Answer,
        speed: float,
    ) -> AsyncGenerator[Block, None]:
        """Hold a slot and make the PCM: segments, tempo and level, a failure after the tail."""
        playback = Playback()
        tempo = TempoChanger(speed)
        level = LevelControl(self.speech.output_gain_db, self.speech.output_limiter)
        pcm = answer.pcm(parts, playback)
        segment = 0  # each output block keeps the segment of the block that made it
        async with self.slot(), contextlib.aclosing(pcm):
            failure: Exception | None = None
            try:
                async for block in pcm:
                    samples, segment = block.samples, block.segment
                    out = tempo.push(to_int16(samples) if samples.dtype != np.int16 else samples)
                    out = level.push(out) if level.active else out
                    if len(out):
                        playback.sent(len(out))
                        yield Block(out, segment)
            except Exception as err:  # a late failure: what tempo and the limiter hold goes first
                failure = err
            tail = tempo.flush()
            if level.active:
                tail = np.concatenate([level.push(tail), level.flush()])
            if len(tail):
                yield Block(tail, segment)
            if failure is not None:
                raise failure


async def _aiter(parts: AsyncIterable[Part] | Iterable[Part]) -> AsyncIterator[Part]:
    if isinstance(parts, AsyncIterable):
        async for part in parts:
            yield part
    else:
        for part in parts:
            yield part


async def _from_first(parts: AsyncIterable[Part] | Iterable[Part]) -> AsyncIterator[Part]:
    """Return the parts once the first of them is there (all of them when given at once)."""
    if not isinstance(parts, AsyncIterable):
        return _aiter(parts)
    iterator = aiter(parts)
    first = await anext(iterator, None)

    async def chained() -> AsyncIterator[Part]:
        if first is not None:
            yield first
            async for part in iterator:
                yield part

    return chained()
