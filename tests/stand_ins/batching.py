"""How a real LLM server batches, for the stand-in: one shared decode loop, slots, a gain curve.

Every real server (llama.cpp's continuous batching, vLLM, TensorRT-LLM) decodes the requests in
flight together: each step makes one token for every running request, and a step over k
requests costs less than k steps over one. So k requests at once stream at about
`rate x gain(k) / k` each: together faster than one alone, each slower. A request beyond the
slots waits for one. Published llama.cpp gains on CUDA: 1.5-1.6x at 2 requests, 1.9-3.0x at 4
(ggml-org/llama.cpp benches/dgx-spark.md); llama-server has 4 slots by default (issue 29).
A stand-in that streams every request at full speed however many run flatters anything that
runs requests side by side; this one does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from wyoming_orpheus.format import REAL_TIME_TOKENS_PER_SECOND
from wyoming_orpheus.playout.schedule import Job, Server, forecast, needed_lead

PUBLISHED_GAINS = (1.0, 1.6, 2.1, 2.5)
"""Throughput at 1, 2, 3 and 4 requests in flight, as a multiple of one request alone."""


@dataclass(frozen=True)
class Batching:
    """A batching server: its rate for one request alone, its gain curve and its slots."""

    tokens_per_second: float
    gains: tuple[float, ...] = PUBLISHED_GAINS
    """gains[k - 1]: all k requests together make this many times one alone (flat beyond)."""
    slots: int = 4

    def gain(self, running: int) -> float:
        """Return the throughput gain with `running` requests in flight."""
        return self.gains[min(running, len(self.gains)) - 1]

    def per_request(self, running: int) -> float:
        """Return each request's tokens per second with `running` in flight."""
        return self.tokens_per_second * self.gain(running) / running

    def server(self) -> Server:
        """Return it as the plan sees a server: per-request real-time factors by load."""
        rates = (
            self.per_request(k) / REAL_TIME_TOKENS_PER_SECOND for k in range(1, self.slots + 1)
        )
        return Server(tuple(rates), self.slots)

    def least_wait(self, lengths: list[float], arrives: list[float] | None = None) -> float:
        """Return the least lead any schedule of sentence requests needs here: brute force
        over start times on a 0.5 s grid, in order (`arrives`: when each one's text comes)."""
        server, arrives = self.server(), arrives or [0.0] * len(lengths)
        grid = [i * 0.5 for i in range(int(2 * sum(lengths) / server.rates[0]) + 2)][:48]
        best = math.inf
        for later in itertools.combinations_with_replacement(grid, len(lengths) - 1):
            jobs = [Job(length, arrives=at) for length, at in zip(lengths, arrives, strict=True)]
            starts: list[float | None] = [
                max(s, a) for s, a in zip([0.0, *later], arrives, strict=True)
            ]
            tracks = forecast(server, jobs, starts, 0.0)
            best = min(best, needed_lead(jobs, tracks, 0.0))
        return best

    def least_shared_wait(self, lengths: list[float], listeners: int) -> float:
        """Return the least lead over schedules that treat `listeners` answers alike, all
        asked at once (every answer's k-th sentence sent at the same time, the older answer
        first in line for a slot): brute force on a 0.5 s grid."""
        server = self.server()
        grid = [i * 0.5 for i in range(int(2 * sum(lengths) / server.rates[0]) + 2)][:40]
        best = math.inf
        for later in itertools.combinations_with_replacement(grid, len(lengths) - 1):
            jobs = [Job(length) for _ in range(listeners) for length in lengths]
            starts: list[float | None] = [0.0, *later] * listeners
            order = [(k, a) for a in range(listeners) for k in range(len(lengths))]
            tracks = forecast(server, jobs, starts, 0.0, order)
            n = len(lengths)
            best = min(
                best,
                max(
                    needed_lead(jobs[a * n : a * n + n], tracks[a * n : a * n + n], 0.0)
                    for a in range(listeners)
                ),
            )
        return best


@dataclass(eq=False)
class Lane:
    """One running request's share of the loop: the tokens granted to it and taken."""

    granted: int = 0
    taken: int = 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    async def take(self, most: int) -> int:
        """Wait for at least one granted token; return how many (at most `most`) are taken.

        A request busy writing catches up on the steps it missed, as a real server's output
        buffer would have held them.
        """
        while self.granted <= self.taken:
            self.ready.clear()
            await self.ready.wait()
        count = min(most, self.granted - self.taken)
        self.taken += count
        return count


class BatchLoop:
    """The shared decode loop: each step gives every running request one token."""

    def __init__(self, batching: Batching) -> None:
        self.batching = batching
        self._slots = asyncio.Semaphore(batching.slots)
        self._lanes: set[Lane] = set()
        self._task: asyncio.Task[None] | None = None
        self.most_running = 0
        """The most requests that ran at once (what a test checks against the slots)."""

    @contextlib.asynccontextmanager
    async def lane(self) -> AsyncIterator[Lane]:
        """Hold a slot (waiting for one when all are taken) and run in the loop."""
        async with self._slots:
            lane = Lane()
            self._lanes.add(lane)
            self.most_running = max(self.most_running, len(self._lanes))
            if self._task is None or self._task.done():
                self._task = asyncio.create_task(self._run())
            try:
                yield lane
            finally:
                self._lanes.discard(lane)

    async def _run(self) -> None:
        due = time.monotonic()
        while self._lanes:
            running = len(self._lanes)
            # One step over `running` requests: `running` tokens at the batch's throughput.
            due += running / (self.batching.tokens_per_second * self.batching.gain(running))
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            for lane in list(self._lanes):
                lane.granted += 1
                lane.ready.set()
