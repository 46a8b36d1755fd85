"""When each segment's LLM request of one answer is sent: the lookahead window, or the plan."""

from __future__ import annotations

import asyncio
from collections import deque

from ..playout.holder import Progress
from ..upstream.completion import Sampling
from ..upstream.lease import Lease
from ..upstream.tokens import Piece
from .feed import TokenFeed
from .sentences import SentencePlan


class Starter:
    """Sends one answer's segment requests: within the lookahead window, or by sentence plan."""

    def __init__(
        self,
        lease: Lease,
        sampling: Sampling,
        progress: Progress,
        lookahead: int,
        plan: SentencePlan | None,
        tasks: asyncio.TaskGroup,
    ) -> None:
        self._lease = lease
        self._tasks = tasks
        """The answer's TaskGroup: each segment's reader is one of its tasks."""
        self._sampling = sampling
        self.progress = progress
        self._window = asyncio.Semaphore(1 + lookahead)
        """Segments spoken or generating at once, without a plan."""
        self._plan = plan
        self._planned: deque[int] = deque()
        """The plan's indices of the segments known and not yet started, in order."""

    @property
    def by_sentence(self) -> bool:
        """Tell whether each sentence is a request of its own (below real time)."""
        return self._plan is not None

    def known(self, segments: list[str], seconds_per_char: float) -> None:
        """Tell the plan of segments as soon as their text is known, before any is started.

        NOTE: issue 29: the plan must see every sentence it knows of: one that heard of a
        sentence only when the one before it was sent promised a lead that the sentence it
        had not seen then needed more of.
        """
        if self._plan is not None:
            for segment in segments:
                self._planned.append(self._plan.add(len(segment) * seconds_per_char))

    async def start(self, segment: str) -> TokenFeed:
        """Wait for the segment's turn and send its request (`known` told of it first)."""
        plan = self._plan
        if plan is None:
            await self._window.acquire()
            stream = self._lease.stream(segment, self._sampling)
            return TokenFeed(stream, self._tasks, len(segment), self.progress.arrived)
        index = self._planned.popleft()
        await plan.turn(index)
        stream = self._lease.stream(segment, self._sampling)

        def arrived(piece: Piece) -> None:
            self.progress.arrived(piece)
            plan.arrived(index, piece)

        ended = lambda: plan.ended(index)  # noqa: E731
        return TokenFeed(stream, self._tasks, len(segment), arrived, ended, index)

    def spoken(self) -> None:
        """A segment was spoken: the window lets the next one start."""
        if self._plan is None:
            self._window.release()
