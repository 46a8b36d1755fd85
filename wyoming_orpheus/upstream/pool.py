"""A pool of LLM servers: voice binding, least-busy choice, cooldown, one retry."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from contextlib import aclosing, contextmanager

import aiohttp

from ..config import LlmSettings, RequestSettings, SamplingSettings
from ..voices import voices_for_binding
from .completion import (
    DEFAULT_SAMPLING,
    MAX_LINE_BYTES,
    NoAudioError,
    Sampling,
    UpstreamError,
    UpstreamUnreachable,
    stream_completion,
)
from .lease import Lease
from .props import learn_slots, props_url
from .rate import LoadMeter, RateMeter
from .server import Upstream
from .tokens import FrameParser, Piece

_LOGGER = logging.getLogger(__name__)
PROBE_TEXT = "Hello! This is a short test of how fast the voice model speaks on this machine."
PROBE_TOKENS = 140
"""20 frames: enough for a rate, ~1.7 s of generation at real time."""
PROBE_SECONDS = 20.0


class UpstreamPool:
    """Sends each request to the least busy healthy server that speaks its voice."""

    def __init__(
        self,
        llm: LlmSettings,
        requests: RequestSettings,
        sampling: SamplingSettings,
        clock: Callable[[], float] = time.monotonic,
        down_reason: Callable[[UpstreamError], Awaitable[str | None]] | None = None,
    ) -> None:
        self._requests = requests
        self._sampling = sampling
        self._clock = clock
        # Managed mode: says whether a failure is our own llama-server being down.
        self._down_reason = down_reason
        self.upstreams = [
            Upstream(u, frozenset(v.name for v in voices_for_binding(u.voices, u.custom_voices)))
            for u in llm.upstreams
        ]
        self._session: aiohttp.ClientSession | None = None
        self._asking: list[asyncio.Task[None]] = []
        """Asking each server whose slots are not set how many it has (props.py)."""

    async def start(self) -> None:
        """Open the shared HTTP session; ask the servers whose slots are not set."""
        if self._session is None:
            # No connection limit here: the synthesis limit bounds concurrent requests.
            connector = aiohttp.TCPConnector(limit=0)
            # read_bufsize bounds what one line of a stream may buffer (llm.MAX_LINE_BYTES).
            self._session = aiohttp.ClientSession(
                connector=connector, read_bufsize=MAX_LINE_BYTES // 2
            )
            self._asking = [
                asyncio.create_task(learn_slots(self._session, upstream))
                for upstream in self.upstreams
                if upstream.settings.slots is None and props_url(upstream.settings) is not None
            ]

    async def close(self) -> None:
        """Stop asking; close the HTTP session and its connections."""
        for task in self._asking:
            task.cancel()
        if self._asking:
            await asyncio.wait(self._asking)  # re-raises a cancellation of ours, never theirs
            self._asking = []
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _pick(self, voice: str, exclude: list[Upstream]) -> Upstream | None:
        candidates = [u for u in self.upstreams if voice in u.voices]
        fresh = [u for u in candidates if u not in exclude] or candidates
        if not fresh:
            return None
        now = self._clock()
        healthy = [u for u in fresh if u.failed_until <= now]
        if healthy:
            # An answer planned by sentence may have no request in flight yet (issue 29):
            # the server with the fewer answers leased is the less busy one too.
            return min(healthy, key=lambda u: max(u.in_flight, u.leases))
        # Every server failed lately: try the one whose cooldown ends first.
        return min(fresh, key=lambda u: u.failed_until)

    @contextmanager
    def lease(self, voice: str) -> Iterator[Lease]:
        """Pick the server for one answer's requests and count the answer there until it ends."""
        upstream = self._pick(voice, [])
        if upstream is not None:
            upstream.leases += 1
        try:
            yield Lease(voice, upstream, self.stream)
        finally:  # no await: also reached by cancellation
            if upstream is not None:
                upstream.leases -= 1

    async def probe(self, voice: str) -> float | None:
        """Time a short generation on the server a request for voice would go to.

        Cut after PROBE_TOKENS or PROBE_SECONDS (a slow CPU server would take a minute for the
        whole sentence); what it measured is remembered as that server's rate. Returns the
        tokens per second, or None when too few came to tell.
        """
        upstream = self._pick(voice, [])
        if upstream is None or self._session is None:
            return None
        timing = RateMeter()
        stream = self._stream_one(upstream, voice, PROBE_TEXT, DEFAULT_SAMPLING)
        cut = True  # a whole generation records itself (_stream_one); a cut one is ours to
        try:
            async with asyncio.timeout(PROBE_SECONDS), aclosing(stream):
                async for piece in stream:
                    timing.add(piece.arrived, piece.tokens)
                    if timing.tokens >= PROBE_TOKENS:
                        break
                else:
                    cut = False
        except TimeoutError:
            pass  # a slow server: what came in PROBE_SECONDS tells its rate
        if (measured := timing.measured()) is None:
            return None
        if cut:
            upstream.record(measured, {upstream.in_flight + 1: measured})
        return measured[0] / measured[1]

    def cooling_down(self, upstream: Upstream) -> bool:
        """Tell whether a server failed lately and is skipped while others are healthy."""
        return upstream.failed_until > self._clock()

    async def stream(
        self,
        voice: str,
        text: str,
        sampling: Sampling = DEFAULT_SAMPLING,
        prefer: Upstream | None = None,
    ) -> AsyncGenerator[Piece, None]:
        """Yield the parsed pieces for voice and text; retry once if no audio came yet.

        `prefer`: the server to try first while it is not cooling down (an answer's lease).
        """
        if self._session is None:
            raise RuntimeError("upstream pool is not started")
        tried: list[Upstream] = []
        while True:
            upstream = self._pick(voice, tried)
            if not tried and prefer is not None and not self.cooling_down(prefer):
                upstream = prefer
            if upstream is None:
                raise UpstreamError(f"no LLM server is configured for voice '{voice}'")
            tried.append(upstream)
            start = _AudioStart()
            try:
                async for piece in self._stream_one(upstream, voice, text, sampling):
                    if start.started:
                        yield piece
                    elif (held := start.hold(piece)) is not None:
                        yield held
                if not start.started:
                    raise NoAudioError(
                        f"the LLM server at {upstream.url} answered without audio tokens: is it "
                        "serving an Orpheus model without a chat template? For Ollama use "
                        "--llm-api ollama"
                    )
                upstream.last_error = None
                return
            except UpstreamError as failure:
                err = await self._explained(failure)
                upstream.failed_until = self._clock() + self._requests.upstream_cooldown
                upstream.last_error = str(err)
                if start.started or len(tried) > 1:
                    if err is failure:
                        raise
                    raise err from failure
                _LOGGER.warning("%s; retrying once", err)

    async def _explained(self, err: UpstreamError) -> UpstreamError:
        """Turn a failure of a managed llama-server that went down into upstream-unreachable."""
        if self._down_reason is None:
            return err
        reason = await self._down_reason(err)
        if reason is None:
            return err
        return UpstreamUnreachable(f"{reason} ({err})")

    async def _stream_one(
        self, upstream: Upstream, voice: str, text: str, sampling: Sampling
    ) -> AsyncGenerator[Piece, None]:
        """Yield one server's generation, each arrival parsed once and timed as it came."""
        assert self._session is not None
        upstream.in_flight += 1
        timing = RateMeter()
        loads = LoadMeter()  # by the requests in flight at each arrival, this one included
        upstream.running.append(loads)
        parser = FrameParser()
        try:
            completion = stream_completion(
                self._session,
                upstream.settings,
                self._requests,
                self._sampling,
                voice,
                text,
                sampling,
            )
            async with aclosing(completion) as texts:
                async for arrived in texts:
                    piece = parser.parse(arrived, self._clock())
                    timing.add(piece.arrived, piece.tokens)
                    loads.add(piece.arrived, piece.tokens, upstream.in_flight)
                    yield piece
        finally:
            upstream.in_flight -= 1
            upstream.running.remove(loads)
        if (last := parser.close(self._clock())).found.dropped_tokens:
            yield last  # an incomplete last frame: counted where the pieces are read
        # Only a whole generation is measured: one cut short says little of the server's rate.
        if (measured := timing.measured()) is not None:
            upstream.record(measured, loads.measured())


class _AudioStart:
    """Holds a stream's text until its first whole frame: the one point where audio starts.

    NOTE: issue 25: the pool counted audio as started at the first audio token, the synthesis
    at the first whole frame, so a failure after 1-6 tokens was neither retried nor salvaged.
    Nothing reaches the synthesis before a whole frame, so before it a retry is always clean.
    """

    def __init__(self) -> None:
        self._held: Piece | None = None
        self.started = False

    def hold(self, piece: Piece) -> Piece | None:
        """Take one piece; return everything held, as one, once it completes the first frame."""
        held = piece if self._held is None else self._held.merged(piece)
        if not held.frames:
            self._held = held
            return None
        self.started = True
        self._held = None
        return held
