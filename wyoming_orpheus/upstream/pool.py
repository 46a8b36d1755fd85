"""A pool of LLM servers: voice binding, least-busy choice, cooldown, one retry."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field

import aiohttp

from ..config import LlmSettings, RequestSettings, SamplingSettings, UpstreamSettings
from ..format import REAL_TIME_TOKENS_PER_SECOND
from ..voices import voices_for_binding
from .completion import (
    DEFAULT_SAMPLING,
    MAX_LINE_BYTES,
    NoAudioError,
    Sampling,
    UpstreamError,
    UpstreamUnreachable,
    endpoint_url,
    shown_url,
    stream_completion,
)
from .rate import LoadMeter, RateMeter, RollingRate
from .tokens import FrameParser, Piece

_LOGGER = logging.getLogger(__name__)
PROBE_TEXT = "Hello! This is a short test of how fast the voice model speaks on this machine."
PROBE_TOKENS = 140
"""20 frames: enough for a rate, ~1.7 s of generation at real time."""
PROBE_SECONDS = 20.0


@dataclass
class Upstream:
    """One LLM server and what the pool knows of it."""

    settings: UpstreamSettings
    voices: frozenset[str]
    in_flight: int = 0
    failed_until: float = 0.0
    last_error: str | None = None
    """The last failure's text (shown in /health); cleared by a success."""
    rate: RollingRate = field(default_factory=RollingRate)
    """Its audio tokens per second over its last requests (playout, /health, /metrics)."""
    rate_at: dict[int, RollingRate] = field(default_factory=dict)
    """Its per-request rate by how many requests it ran at once (a batching server streams
    each slower and all together faster: issue 29), over the last requests at each."""

    def record(self, measured: tuple[int, float], by_load: dict[int, tuple[int, float]]) -> None:
        """Remember one whole generation's rate, overall and at each load it ran at."""
        self.rate.add(*measured)
        for load, part in by_load.items():
            self.rate_at.setdefault(max(1, load), RollingRate()).add(*part)

    running: list[LoadMeter] = field(default_factory=list)
    """The generations streaming now, measured as they go."""

    def rates_at(self) -> dict[int, float]:
        """Return its measured per-request real-time factor by requests in flight: the last
        whole generations at each load, and what the ones streaming now measured so far (a
        load never seen before is known within a second or two of running at it)."""
        sums = {k: r.sums() for k, r in self.rate_at.items()}
        for meter in self.running:
            for k, (tokens, seconds) in meter.measured().items():
                known = sums.get(k, (0, 0.0))
                sums[k] = (known[0] + tokens, known[1] + seconds)
        return {
            k: tokens / seconds / REAL_TIME_TOKENS_PER_SECOND
            for k, (tokens, seconds) in sums.items()
            if seconds > 0
        }

    @property
    def url(self) -> str:
        """Return the endpoint URL without credentials (messages, logs and /health name it)."""
        return shown_url(endpoint_url(self.settings))


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

    async def start(self) -> None:
        """Open the shared HTTP session."""
        if self._session is None:
            # No connection limit here: the synthesis limit bounds concurrent requests.
            connector = aiohttp.TCPConnector(limit=0)
            # read_bufsize bounds what one line of a stream may buffer (llm.MAX_LINE_BYTES).
            self._session = aiohttp.ClientSession(
                connector=connector, read_bufsize=MAX_LINE_BYTES // 2
            )

    async def close(self) -> None:
        """Close the HTTP session and its connections."""
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
            return min(healthy, key=lambda u: u.in_flight)
        # Every server failed lately: try the one whose cooldown ends first.
        return min(fresh, key=lambda u: u.failed_until)

    def choose(self, voice: str) -> Upstream | None:
        """Return the server the next request for voice would go to (None: none speaks it).

        An answer's sentence requests are planned for one server's batch (issue 29): they
        go there (`stream(prefer=...)`) while it is healthy.
        """
        return self._pick(voice, [])

    def expected_rate(self, voice: str) -> float | None:
        """Return the real-time factor of the server the next request for voice would go to."""
        upstream = self._pick(voice, [])
        return None if upstream is None else upstream.rate.real_time_factor()

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

        `prefer`: the server to try first while it is not cooling down (an answer's plan).
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
