"""When each segment's LLM request of one answer is sent: the lookahead window, or the plan."""

from __future__ import annotations

import asyncio

from ..playout.holder import Progress
from ..upstream.completion import Sampling
from ..upstream.pool import UpstreamPool
from ..upstream.tokens import Piece
from ..voices import Voice
from .feed import TokenFeed
from .sentences import SentencePlan


class Starter:
    """Sends one answer's segment requests: within the lookahead window, or by sentence plan."""

    def __init__(
        self,
        pool: UpstreamPool,
        voice: Voice,
        sampling: Sampling,
        progress: Progress,
        lookahead: int,
        plan: SentencePlan | None,
    ) -> None:
        self._pool = pool
        self._voice = voice
        self._sampling = sampling
        self.progress = progress
        self._window = asyncio.Semaphore(1 + lookahead)
        """Segments spoken or generating at once, without a plan."""
        self._plan = plan

    @property
    def by_sentence(self) -> bool:
        """Tell whether each sentence is a request of its own (below real time)."""
        return self._plan is not None

    async def start(self, segment: str, seconds_per_char: float) -> TokenFeed:
        """Wait for the segment's turn and send its request."""
        plan = self._plan
        if plan is None:
            await self._window.acquire()
            stream = self._pool.stream(self._voice.name, segment, self._sampling)
            return TokenFeed(stream, len(segment), self.progress.arrived)
        index = plan.add(len(segment) * seconds_per_char)
        await plan.turn(index)
        stream = self._pool.stream(self._voice.name, segment, self._sampling, plan.upstream)

        def arrived(piece: Piece) -> None:
            self.progress.arrived(piece)
            plan.arrived(index, piece)

        return TokenFeed(stream, len(segment), arrived, lambda: plan.ended(index), index)

    def spoken(self) -> None:
        """A segment was spoken: the window lets the next one start."""
        if self._plan is None:
            self._window.release()
