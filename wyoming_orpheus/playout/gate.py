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
import time
from collections.abc import AsyncGenerator, Callable

import numpy as np

from ..format import SAMPLE_RATE
from .holder import Holder, Progress
from .rule import Outcome, Policy

QUEUE_BLOCKS = 32
"""Blocks made ahead of a slow reader once released (bounds memory; ~1-8 frames each)."""
STARTED = np.zeros(0, dtype=np.int16)
"""The empty block that says: audio is coming, held (a door sends its start then)."""
_END = object()


class Gate:
    """Holds and releases one request's PCM by the rule; None as policy passes all at once."""

    def __init__(
        self,
        policy: Policy | None,
        progress: Progress,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._progress = progress
        self._clock = clock
        self._holder = None if policy is None else Holder[np.ndarray](policy, progress)

    @property
    def outcome(self) -> Outcome:
        """Return how playout went (nothing held with immediate playout)."""
        return Outcome() if self._holder is None else self._holder.outcome

    async def run(
        self, source: AsyncGenerator[np.ndarray, None]
    ) -> AsyncGenerator[np.ndarray, None]:
        """Yield source's blocks when the rule lets them go; an empty one first if held."""
        if self._holder is None:
            async with contextlib.aclosing(source):  # a listener gone closes it at once
                async for samples in source:
                    yield samples
            return
        queue: asyncio.Queue[object] = asyncio.Queue(QUEUE_BLOCKS)
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
        self, source: AsyncGenerator[np.ndarray, None], queue: asyncio.Queue[object]
    ) -> None:
        try:
            async with contextlib.aclosing(source):
                async for samples in source:
                    await queue.put((samples, self._progress.segment))
            await queue.put(_END)
        except Exception as err:  # reaches the consumer after the audio before it
            await queue.put(err)

    async def _released(
        self, queue: asyncio.Queue[object], holder: Holder[np.ndarray]
    ) -> AsyncGenerator[np.ndarray, None]:
        while True:
            item = await self._next(queue, holder.deadline)
            now = self._clock()
            if item is None:  # the cap, reached while the LLM made nothing
                out = holder.expire(now)
            elif item is _END or isinstance(item, BaseException):
                for samples in holder.finish(now):
                    yield samples
                if isinstance(item, BaseException):
                    raise item
                return
            else:
                assert isinstance(item, tuple)
                samples, segment = item
                started = holder.listener.started or holder.holding
                out = holder.offer(now, samples, len(samples) / SAMPLE_RATE, segment)
                if not out and not started:
                    out = [STARTED]  # holding from the start: a door commits its response
            for samples in out:
                yield samples

    async def _next(self, queue: asyncio.Queue[object], deadline: float | None) -> object | None:
        """Return the next item, or None when the hold's deadline comes first."""
        if deadline is None:
            return await queue.get()
        try:
            # Safe to time out: a cancelled Queue.get() loses nothing.
            async with asyncio.timeout(max(deadline - self._clock(), 0.0)):
                return await queue.get()
        except TimeoutError:
            return None
