"""One answer's sentence requests, live: when each is sent, and the lead playout needs.

Below real time each sentence is its own LLM request, sent when the plan (playout/
schedule.py) says: late enough not to slow the sentences before it more than it gains, early
enough to be ready when the listener gets to it (issue 29). The plan is made again when
something changes (a sentence's text arrives or its request ends) and at least every
REPLAN seconds, from what the server's requests measured (the pool's per-concurrency rates).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from ..format import REAL_TIME_TOKENS_PER_SECOND
from ..playout.schedule import STEP, Job, Server, forecast, needed_lead, plan, server_rates
from ..upstream.pool import Upstream
from ..upstream.tokens import Piece

_LOGGER = logging.getLogger(__name__)
REPLAN = 1.0
"""Longest time a waiting sentence goes without a fresh plan, in seconds."""
LOOK_AGAIN = 0.25
"""How old a plan the hold may read (a plan costs a few ms; blocks come every ~0.1 s)."""


class SentencePlan:
    """The sentences of one answer on one server, and when each request is sent."""

    def __init__(
        self,
        upstream: Upstream,
        speed: float,
        pause: float,
        margin: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.upstream = upstream
        self._speed = speed
        self._pause = pause
        self._margin = margin
        self._clock = clock
        self.hand: Callable[[float], float | None] = lambda now: None
        """The audio the listener has in hand at a time, once it plays (the playout's)."""
        self.jobs: list[Job] = []
        self.heard = 0
        """The sentence the listener is at (the one being spoken)."""
        self._starts: list[float | None] = []
        self._planned_at: float | None = None
        self._changed = asyncio.Event()

    def add(self, seconds: float) -> int:
        """Take the next sentence (its estimated audio seconds at speed 1); return its index."""
        self.jobs.append(Job(seconds / self._speed, arrives=self._clock()))
        self._changed_now()
        return len(self.jobs) - 1

    def arrived(self, index: int, piece: Piece) -> None:
        """Count a piece of sentence `index`'s request."""
        job = self.jobs[index]
        job.made += piece.tokens / REAL_TIME_TOKENS_PER_SECOND / self._speed
        job.length = max(job.length, job.made)

    def ended(self, index: int) -> None:
        """Sentence `index`'s request ended (or failed): its length is what it made."""
        job = self.jobs[index]
        job.ended, job.length = True, job.made
        self._changed_now()

    def lead(self, now: float) -> float:
        """Return the audio the listener must have in hand now so no sentence runs dry."""
        if self._planned_at is None or now - self._planned_at >= LOOK_AGAIN:
            self._plan(now)
        # A sent job's start is no longer read: the forecast runs it from where it is.
        tracks = forecast(self._server(), self.jobs, self._starts, now)
        return needed_lead(self.jobs, tracks, now, self._pause, self.heard)

    async def turn(self, index: int) -> None:
        """Wait until sentence `index`'s request should be sent, then count it as sent."""
        while True:
            now = self._clock()
            start = self._plan(now)[index]
            if start is None or start <= now + STEP:
                break
            self._changed.clear()
            try:
                async with asyncio.timeout(min(start - now, REPLAN)):
                    await self._changed.wait()
            except TimeoutError:
                pass  # its time, or time to look again
        self.jobs[index].started = True
        self._changed_now()
        _LOGGER.debug(
            "Sentence %d sent (%.1f s of audio; %d of ours in flight, %d others)",
            index,
            self.jobs[index].length,
            sum(1 for j in self.jobs if j.started and not j.ended),
            self._server().others,
        )

    def _plan(self, now: float) -> list[float | None]:
        """Plan again from now; return when each sentence not yet sent should be."""
        hand = self.hand(now)
        if hand is not None:
            hand = max(0.0, hand - self._margin)
        planned = plan(self._server(), self.jobs, now, self._pause, self.heard, hand)
        self._starts, self._planned_at = planned.starts, now
        return planned.starts

    def _server(self) -> Server:
        """The server as measured: per-request rates (output seconds per second) by load."""
        measured = {k: r / self._speed for k, r in self.upstream.rates_at().items()}
        slots = self.upstream.settings.slots
        ours = sum(1 for j in self.jobs if j.started and not j.ended)
        others = max(0, self.upstream.in_flight - ours)
        return Server(server_rates(measured, max(slots, others + 1)), slots, others)

    def _changed_now(self) -> None:
        self._planned_at = None
        self._changed.set()
