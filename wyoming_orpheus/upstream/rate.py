"""How fast an LLM server generates audio tokens: measured per request, kept per server."""

from __future__ import annotations

from collections import deque

from ..format import REAL_TIME_TOKENS_PER_SECOND

MIN_TOKENS = 28
"""Fewer tokens than 4 frames say little about a rate (the first ones often come in a burst)."""
REQUESTS_KEPT = 8


class RateMeter:
    """Audio tokens over wall time, from the first arrival on: the one rate meter.

    The pool times each generation with one (`measured`: a server's rate, whole generations
    only); a request's playout another, fed by every segment's pieces (`rate`: a lookahead
    segment counts as the listener will hear it, audio made by the time it plays).

    The first arrival only starts the clock: its tokens were made before it, in time the meter
    did not see (counting them would overstate a short run's rate). `rate` is the lower of the
    whole run's and the last `window` seconds': a rate that slows is believed at once, one that
    speeds up only as the whole run catches up.
    """

    def __init__(self, window: float = 2.0) -> None:
        self._window = window
        self.tokens = 0
        """Audio tokens counted, the first arrival's included."""
        self.first: float | None = None
        self.last: float | None = None
        self._first_tokens = 0
        self._recent: deque[tuple[float, int]] = deque()

    def add(self, now: float, tokens: int) -> None:
        """Record `tokens` audio tokens that arrived at `now`."""
        if tokens <= 0:
            return
        self.tokens += tokens
        self.last = now
        if self.first is None:
            self.first = now
            self._first_tokens = tokens
        self._recent.append((now, self._after_first))
        while len(self._recent) > 2 and self._recent[1][0] <= now - self._window:
            self._recent.popleft()

    @property
    def _after_first(self) -> int:
        return self.tokens - self._first_tokens

    @property
    def made(self) -> float:
        """Return the audio seconds measured (after the first arrival)."""
        return self._after_first / REAL_TIME_TOKENS_PER_SECOND

    def measured(self) -> tuple[int, float] | None:
        """Return (tokens after the first, seconds they took), or None when too few to tell."""
        if self.first is None or self.last is None or self.tokens < MIN_TOKENS:
            return None
        seconds = self.last - self.first
        return (self.tokens - 1, seconds) if seconds > 0 else None

    def rate(self, now: float) -> float | None:
        """Return audio seconds made per wall second, or None before any audio."""
        if self.first is None or self._after_first <= 0:
            return None
        overall = self.made / max(now - self.first, 1e-6)
        first_at, first_made = self._recent[0]
        if now - first_at < self._window / 2:
            return overall
        recent = (self._after_first - first_made) / (now - first_at)
        return min(overall, recent / REAL_TIME_TOKENS_PER_SECOND)


class LoadMeter:
    """One generation's tokens and time by how many requests its server ran at once.

    A batching server streams each request at a rate that depends on the requests beside it
    (issue 29). A whole generation's mean says little when the load changed during it (one
    that ran alone, then beside another, is neither rate), so each interval between two
    arrivals counts at its load; one where the load changed is left out.
    """

    def __init__(self) -> None:
        self._last: tuple[float, int] | None = None
        self._by_load: dict[int, tuple[int, float]] = {}

    def add(self, now: float, tokens: int, load: int) -> None:
        """Record `tokens` audio tokens that arrived at `now` with `load` requests in flight."""
        if tokens <= 0:
            return
        if self._last is not None and self._last[1] == load:  # the first arrival: the clock
            counted, seconds = self._by_load.get(load, (0, 0.0))
            self._by_load[load] = (counted + tokens, seconds + now - self._last[0])
        self._last = (now, load)

    def measured(self) -> dict[int, tuple[int, float]]:
        """Return (tokens, seconds) by load, where enough came to tell."""
        return {
            load: (tokens, seconds)
            for load, (tokens, seconds) in self._by_load.items()
            if tokens >= MIN_TOKENS and seconds > 0
        }


class RollingRate:
    """An LLM server's tokens per second over its last REQUESTS_KEPT measured requests."""

    def __init__(self) -> None:
        self._runs: deque[tuple[int, float]] = deque(maxlen=REQUESTS_KEPT)

    def add(self, tokens: int, seconds: float) -> None:
        """Record one request's generation."""
        self._runs.append((tokens, seconds))

    def sums(self) -> tuple[int, float]:
        """Return the tokens and seconds of the requests kept."""
        return sum(t for t, _ in self._runs), sum(s for _, s in self._runs)

    def tokens_per_second(self) -> float | None:
        """Return the rate, or None before any request was measured."""
        tokens, seconds = self.sums()
        return tokens / seconds if seconds > 0 else None

    def real_time_factor(self) -> float | None:
        """Return audio seconds made per wall second (1.0: exactly real time)."""
        rate = self.tokens_per_second()
        return None if rate is None else rate / REAL_TIME_TOKENS_PER_SECOND
