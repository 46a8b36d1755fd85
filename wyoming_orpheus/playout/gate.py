"""The playout stage: one request's PCM through a Holder, on the event loop (issue 23).

Between the synthesis and both doors. `audio-start` (HTTP: the headers) goes out at once: the
stage yields an empty block when it begins to hold before anything was sent, so a door commits
its response then; the chunks follow when the rule (rule.py) says the listener will
not run dry. The source runs in a task of its own, so a hold can end at its cap while the LLM
stalls, without interrupting the synthesis mid-step.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

import numpy as np

from ..format import SAMPLE_RATE
from .holder import Holder, Progress
from .rule import KeepAlive, Outcome, Policy

QUEUE_BLOCKS = 32
"""Blocks made ahead of a slow reader once released (bounds memory; ~1-8 frames each)."""
STARTED = np.zeros(0, dtype=np.int16)
"""The empty block that says: audio is coming, held (a door sends its start then)."""


@dataclass(frozen=True)
class Block:
    """PCM made for the listener, tagged where it was made with the segment it belongs to
    (a new segment may be held at its start: the pause before it and its first samples)."""

    samples: np.ndarray
    segment: int


@dataclass(frozen=True)
class _SourceEnd:
    """The source ended: every block was made."""


@dataclass(frozen=True)
class _SourceFailed:
    """The failure that ended the source (after the blocks before it)."""

    error: Exception


_Made = Block | _SourceEnd | _SourceFailed


class Silence(np.ndarray):
    """Keep-alive silence while speech is held: sent as audio, not counted as speech."""


def silence_block(seconds: float, keep_alive: KeepAlive) -> np.ndarray:
    """Return at least `seconds` of silence in whole keep-alive blocks (whole Wyoming chunks)."""
    unit = round(keep_alive.least * SAMPLE_RATE)
    count = max(1, math.ceil(seconds * SAMPLE_RATE / unit - 1e-9))
    return np.zeros(count * unit, dtype=np.int16).view(Silence)


class Gate:
    """Holds and releases one request's PCM by the rule; None as policy passes all at once."""

    def __init__(
        self,
        policy: Policy | None,
        progress: Progress,
        clock: Callable[[], float] = time.monotonic,
        keep_alive: KeepAlive | None = None,
    ) -> None:
        self._clock = clock
        self._keep_alive = keep_alive
        """Silence while speech is held (None: a silent hold, as for a file download)."""
        self._holder = None if policy is None else Holder[np.ndarray](policy, progress)

    @property
    def outcome(self) -> Outcome:
        """Return how playout went (nothing held with immediate playout)."""
        return Outcome() if self._holder is None else self._holder.outcome

    def in_hand(self, now: float) -> float | None:
        """Return the audio the listener has to play once speech went (None: not yet)."""
        return None if self._holder is None else self._holder.in_hand(now)

    async def run(self, source: AsyncGenerator[Block, None]) -> AsyncGenerator[np.ndarray, None]:
        """Yield source's samples when the rule lets them go; an empty block first if held."""
        if self._holder is None:
            async with contextlib.aclosing(source):  # a listener gone closes it at once
                async for block in source:
                    yield block.samples
            return
        queue: asyncio.Queue[_Made] = asyncio.Queue(QUEUE_BLOCKS)
        producer = asyncio.create_task(self._produce(source, queue))
        try:
            async with contextlib.aclosing(self._released(queue, self._holder)) as released:
                async for samples in released:
                    yield samples
        finally:
            producer.cancel()
            # asyncio.wait re-raises a cancellation of ours and swallows none (issue 25).
            await asyncio.wait([producer])

    async def _produce(
        self, source: AsyncGenerator[Block, None], queue: asyncio.Queue[_Made]
    ) -> None:
        try:
            async with contextlib.aclosing(source):
                async for block in source:
                    await queue.put(block)
            await queue.put(_SourceEnd())
        except Exception as err:  # reaches the consumer after the audio before it
            await queue.put(_SourceFailed(err))

    async def _released(
        self, queue: asyncio.Queue[_Made], holder: Holder[np.ndarray]
    ) -> AsyncGenerator[np.ndarray, None]:
        line = _Line(self._clock())
        while True:
            item = await self._next(queue, self._wake(holder, line))
            now = self._clock()
            if item is None:  # a wake-up: the cap, or the line quiet while speech is held
                out = self._on_wake(holder, line, now)
            elif not isinstance(item, Block):
                for samples in holder.finish(now):
                    yield samples
                if isinstance(item, _SourceFailed):
                    raise item.error
                return
            else:
                started = line.committed or holder.holding
                seconds = len(item.samples) / SAMPLE_RATE
                out = holder.offer(now, item.samples, seconds, item.segment)
                if not out and not started:
                    out = [STARTED]  # holding from the start: a door commits its response
            for samples in out:
                line.sent(now, samples)
                yield samples

    def _wake(self, holder: Holder[np.ndarray], line: _Line) -> float | None:
        """Return when to wake without a block: the hold's cap, or the next keep-alive."""
        wakes = [w for w in (holder.deadline, self._next_keep_alive(holder, line)) if w is not None]
        return min(wakes, default=None)

    def _next_keep_alive(self, holder: Holder[np.ndarray], line: _Line) -> float | None:
        keep_alive = self._keep_alive
        if keep_alive is None or (holder.listener.started and not holder.holding):
            return None
        if line.last_bytes is None:
            return line.opened + keep_alive.first
        return line.last_bytes + keep_alive.every

    def _on_wake(self, holder: Holder[np.ndarray], line: _Line, now: float) -> list[np.ndarray]:
        deadline = holder.deadline
        if deadline is not None and now >= deadline:
            return holder.expire(now)  # the cap, reached while the LLM made nothing
        if self._keep_alive is None:
            return []
        # Woken for it: the first bytes are due, or the line was quiet `every` seconds (a
        # timer may fire a hair early: that is not a reason to wait one more round).
        due = line.last_bytes is None or now - line.last_bytes >= self._keep_alive.every * 0.98
        seconds = holder.silence(now, due, self._keep_alive, now - line.opened)
        if seconds <= 0:
            return []
        block = silence_block(seconds, self._keep_alive)
        holder.listener.send(now, len(block) / SAMPLE_RATE, speech=False)
        return [block]

    async def _next(self, queue: asyncio.Queue[_Made], deadline: float | None) -> _Made | None:
        """Return the next item, or None when the hold's deadline comes first."""
        if deadline is None:
            return await queue.get()
        try:
            # Safe to time out: a cancelled Queue.get() loses nothing.
            async with asyncio.timeout(max(deadline - self._clock(), 0.0)):
                return await queue.get()
        except TimeoutError:
            return None


class _Line:
    """What went down the line to the listener: when it opened, its last bytes."""

    def __init__(self, opened: float) -> None:
        self.opened = opened
        self.last_bytes: float | None = None
        self.committed = False
        """Whether anything (an empty start included) went out: the door has answered."""

    def sent(self, now: float, samples: np.ndarray) -> None:
        self.committed = True
        if len(samples):
            self.last_bytes = now
