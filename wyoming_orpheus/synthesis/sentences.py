"""One answer's sentence requests, live: when each is sent, and the lead playout needs.

Below real time each sentence is its own LLM request, sent when the plan (playout/
schedule.py) says: late enough not to slow the sentences before it more than it gains, early
enough to be ready when the listener gets to it (issue 29). The plan is made again when
something changes (a sentence's text arrives or its request ends) and at least every
REPLAN seconds, from what the server's requests measured (the pool's per-concurrency rates).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Iterator

from ..format import REAL_TIME_TOKENS_PER_SECOND
from ..playout.placement import answer_lead, plan
from ..playout.schedule import STEP, Beside, Job, Server, server_rates
from ..upstream.pool import Upstream
from ..upstream.tokens import Piece

_LOGGER = logging.getLogger(__name__)
_BORN = itertools.count()
"""The order answers came in (the older is first in line for a slot on a tie)."""
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
        beside: list[SentencePlan],
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
        self._beside = beside
        self._born = next(_BORN)
        """Every answer's plan, this one's included (those on its server share its batch)."""
        beside.append(self)

    def close(self) -> None:
        """The answer is over: the other answers no longer plan around its sentences."""
        if self in self._beside:
            self._beside.remove(self)
            for other in self._beside:
                if other.upstream is self.upstream:
                    other._changed_now()

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
        return answer_lead(self._server(now), self.jobs, self._starts, now, self._pause, self.heard)

    async def turn(self, index: int) -> None:
        """Wait until sentence `index`'s request should be sent, then count it as sent."""
        while True:
            now = self._clock()
            start = self._plan(now)[index]
            wait = 0.0 if start is None else start - now
            if wait <= STEP and self._first_in_line(index, now):
                break
            self._changed.clear()
            try:  # due, but not first in line: until a request ends (or a look again)
                async with asyncio.timeout(REPLAN if wait <= STEP else min(wait, REPLAN)):
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
            self._server(now).others,
        )

    def _first_in_line(self, index: int, now: float) -> bool:
        """Tell whether sentence `index` may be sent now: a slot is free on the server, and
        no other answer there has one due that is first in line for it (an earlier place in
        its answer, or the same place in an older answer), as the plans take it to be.

        Sent beyond the slots it would wait at the server in the order requests came, which
        is not the order the plans were made for.
        """
        mates = [plan for plan in self._beside if plan.upstream is self.upstream]
        running = sum(1 for plan in mates for job in plan.jobs if _running(job))
        if max(running, self.upstream.in_flight) >= self.upstream.slots:
            return False
        mine = (index, self._born)
        return not any(line < mine for plan in mates if plan is not self for line in plan._due(now))

    def _due(self, now: float) -> Iterator[tuple[int, int]]:
        """Yield the place in line of this answer's next sentence if it is due to be sent
        (by its own plan, made again if something changed since)."""
        if self._planned_at is None or now - self._planned_at >= LOOK_AGAIN:
            self._plan(now)
        for index, (job, start) in enumerate(zip(self.jobs, self._starts, strict=False)):
            if not job.started and not job.ended:
                if start is not None and start <= now + STEP:
                    yield index, self._born
                return

    def _plan(self, now: float) -> list[float | None]:
        """Plan again from now; return when each sentence not yet sent should be."""
        planned = plan(self._server(now), self.jobs, now, self._pause, self.heard, self._hand(now))
        self._starts, self._planned_at = planned.starts, now
        return planned.starts

    def _server(self, now: float) -> Server:
        """The server as measured (per-request rates in output seconds per second by load),
        with the other answers' sentences there and the requests no plan knows."""
        measured = {k: r / self._speed for k, r in self.upstream.rates_at().items()}
        slots = self.upstream.slots
        beside = tuple(self._beside_answers(now))
        jobs = [*self.jobs, *(job for other in beside for job in other.jobs)]
        others = max(0, self.upstream.in_flight - sum(1 for job in jobs if _running(job)))
        rates = server_rates(measured, max(slots, others + len(jobs)))
        return Server(rates, slots, others, beside)

    def _beside_answers(self, now: float) -> Iterator[Beside]:
        """The other answers on this server, their sentences in this answer's output seconds
        (an answer at another speed makes its seconds faster)."""
        for other in self._beside:
            if other is self or other.upstream is not self.upstream:
                continue
            scale = other._speed / self._speed
            jobs, starts = [], []
            planned = [*other._starts, *[None] * (len(other.jobs) - len(other._starts))]
            for job, start in zip(other.jobs, planned, strict=True):
                jobs.append(Job(job.length * scale, job.made * scale, job.started, job.arrives))
                jobs[-1].ended = job.ended
                starts.append(None if job.started else start)
            hand, older = other._hand(now), other._born < self._born
            hear = 1 / scale
            yield Beside(tuple(jobs), tuple(starts), other._pause, other.heard, hear, hand, older)

    def _hand(self, now: float) -> float | None:
        """Return the lead the listener has, less the margin, once it plays."""
        hand = self.hand(now)
        return None if hand is None else max(0.0, hand - self._margin)

    def _changed_now(self) -> None:
        """Something changed: this answer plans again, and so does every other one on its
        server (they plan around its sentences)."""
        for other in self._beside:
            if other.upstream is self.upstream:
                other._planned_at = None
                other._changed.set()


def _running(job: Job) -> bool:
    return job.started and not job.ended
