"""One answer's segments: each request started when allowed, read in its own task, spoken in order.

Every task of an answer (the text reader, the feeder that starts the requests, one reader per
segment) runs under one TaskGroup (tasks.py), so none outlives the answer however it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass

import numpy as np

from ..audio.pcm import LeadTrimmer, silence
from ..config import SpeechSettings
from ..decode.streams import Playback, open_stream
from ..decode.worker import DecodeWorker
from ..format import TOKENS_PER_FRAME
from ..metrics import Metrics
from ..playout.gate import Block
from ..playout.holder import Progress
from ..playout.pace import Pace
from ..text import Part, Pause, TextPipeline
from ..upstream.completion import Sampling, UpstreamError
from ..upstream.lease import Lease
from ..upstream.tokens import FrameStats
from ..voices import Voice
from .feed import TokenFeed
from .report import SynthesisStats
from .sentences import SentencePlan
from .starter import Starter
from .tasks import RequestTasks

_LOGGER = logging.getLogger(__name__)
OFF_LOOP_CHARS = 1000
"""Text parts longer than this are prepared (normalized, segmented) off the event loop."""


@dataclass(frozen=True)
class Failed:
    """The failure that ended the text (handed on in order, after the audio before it)."""

    error: Exception


@dataclass(frozen=True)
class TextEnd:
    """The text ended: every segment was handed on."""


_Text = str | Pause | Failed | TextEnd
"""What the reader hands the feeder, in order: a segment's text, a pause, the end."""
_Item = TokenFeed | Pause | Failed | TextEnd
"""What the feeder hands the speaker, in order: a segment's request, a pause, the end."""


@dataclass(frozen=True)
class Shared:
    """What every answer shares: the settings, the text pipeline, the decoder, the pace."""

    speech: SpeechSettings
    text: TextPipeline
    worker: DecodeWorker
    pace: Pace
    stats: SynthesisStats
    metrics: Metrics


@dataclass(frozen=True)
class Answer:
    """One answer: its voice, where its requests go, and how its playout is planned."""

    shared: Shared
    voice: Voice
    lease: Lease
    sampling: Sampling
    progress: Progress
    plan: SentencePlan | None

    async def pcm(
        self, parts: AsyncIterator[Part], playback: Playback
    ) -> AsyncGenerator[Block, None]:
        """Speak segments in order while later ones already generate (lookahead or plan).

        Each block is tagged with its segment (counted from 1); the pause before a segment
        belongs to the one before it.
        """
        speech = self.shared.speech
        items: asyncio.Queue[_Item] = asyncio.Queue()
        async with RequestTasks() as tasks:
            lookahead = speech.lookahead_segments
            starter = Starter(self.lease, self.sampling, self.progress, lookahead, self.plan, tasks)
            text: asyncio.Queue[_Text] = asyncio.Queue()
            tasks.create_task(self._read(parts, text, starter))
            tasks.create_task(self._feed(text, items, starter))
            segment, spoken = 0, False
            while not isinstance(item := await items.get(), TextEnd):
                if isinstance(item, Failed):
                    raise item.error
                if isinstance(item, Pause):
                    yield Block(silence(item.seconds), segment)
                    spoken = False  # an explicit break replaces the pause between segments
                    continue
                if spoken and speech.segment_pause_ms:
                    yield Block(silence(speech.segment_pause_ms / 1000), segment)
                segment += 1
                if self.plan is not None and item.index is not None:
                    self.plan.heard = item.index
                async with contextlib.aclosing(self._speak(item, playback)) as made:
                    async for samples in made:
                        yield Block(samples, segment)
                spoken = True
                starter.spoken()
            # Leaving the group early (a failure, a listener gone) cancels the feeder and the
            # requests not spoken yet (lookahead, planned), and waits until they are closed.

    async def _read(
        self, parts: AsyncIterator[Part], text: asyncio.Queue[_Text], starter: Starter
    ) -> None:
        """Read the text as it comes: split it into segments and tell the plan of each at once.

        NOTE: issue 29: streamed text comes a sentence per part. Read by the task that starts
        the requests, the next sentence was read only once the one before it had been sent,
        so the plan saw it seconds late: its lead was given for fewer sentences than there
        were, and a later sentence ran dry near its end (60 tokens/s: 0.07-0.12 s).
        """
        try:
            async for part in parts:
                if isinstance(part, Pause):
                    text.put_nowait(part)
                    continue
                segments = await self._segments(part, starter.by_sentence)
                self.progress.chars += sum(len(s) for s in segments)  # the length estimate
                starter.known(segments, self.shared.pace.of(self.voice.name))
                for segment in segments:
                    text.put_nowait(segment)
            text.put_nowait(TextEnd())
        except Exception as err:  # reaches the speaker in order, after earlier audio
            text.put_nowait(Failed(err))

    @staticmethod
    async def _feed(
        text: asyncio.Queue[_Text], items: asyncio.Queue[_Item], starter: Starter
    ) -> None:
        """Start each segment's request when the lookahead window or plan allows; pauses,
        the end and a failure go on in order."""
        while True:
            item = await text.get()
            if isinstance(item, str):
                try:
                    items.put_nowait(await starter.start(item))
                except Exception as err:  # reaches the speaker in order, after earlier audio
                    items.put_nowait(Failed(err))
                    return
                continue
            items.put_nowait(item)
            if not isinstance(item, Pause):
                return  # the end of the text, or its failure

    async def _segments(self, text: str, by_sentence: bool) -> list[str]:
        """Prepare one part for the model; a long one off the loop (~20 ms per 1,000 digits)."""
        pipeline, language = self.shared.text, self.voice.language
        limit = self.shared.speech.segment_max_chars
        split = pipeline.sentences if by_sentence else pipeline.segments
        if len(text) <= OFF_LOOP_CHARS:
            return split(text, language, limit)
        return await asyncio.to_thread(split, text, language, limit)

    async def _speak(self, feed: TokenFeed, playback: Playback) -> AsyncGenerator[np.ndarray, None]:
        """Turn one segment's tokens into exact PCM; flush what came before a late failure."""
        stats = FrameStats()
        decoder = open_stream(self.shared.worker, playback.lead)
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
        self.shared.pace.learn(self.voice.name, stats.frames, feed.chars)

    def _record(self, stats: FrameStats, first_token: float | None) -> None:
        took = time.monotonic() - first_token if first_token is not None else 0.0
        if stats.frames > 1 and took > 0:
            self.shared.metrics.token_rate.observe(stats.frames * TOKENS_PER_FRAME / took)
        self.shared.stats.dropped_tokens += stats.dropped_tokens
        self.shared.stats.invalid_tokens += stats.invalid_tokens
        _LOGGER.debug(
            "Segment done: %d frames, %d dropped and %d invalid tokens, end-of-speech %s",
            stats.frames,
            stats.dropped_tokens,
            stats.invalid_tokens,
            stats.end_of_speech,
        )
