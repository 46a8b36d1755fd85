"""How fast an LLM server generates audio tokens: measured per request, kept per server."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from ..format import REAL_TIME_TOKENS_PER_SECOND, TOKEN_PREFIX

MIN_TOKENS = 28
"""Fewer tokens than 4 frames say little about a rate (the first ones often come in a burst)."""
REQUESTS_KEPT = 8


def audio_tokens(piece: str) -> int:
    """Count the tokens in a piece of streamed text (any `<custom_token_N>`)."""
    return piece.count(TOKEN_PREFIX)


class TokenClock:
    """Times one generation: tokens from its first to its last, the time to first not counted."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.tokens = 0
        self.first: float | None = None
        self.last: float | None = None

    def add(self, piece: str) -> None:
        """Count a piece's tokens at the time it arrived."""
        count = audio_tokens(piece)
        if not count:
            return
        now = self._clock()
        if self.first is None:
            self.first = now
        self.last = now
        self.tokens += count

    def measured(self) -> tuple[int, float] | None:
        """Return (tokens after the first, seconds they took), or None when too few to tell."""
        if self.first is None or self.last is None or self.tokens < MIN_TOKENS:
            return None
        seconds = self.last - self.first
        return (self.tokens - 1, seconds) if seconds > 0 else None


class RollingRate:
    """An LLM server's tokens per second over its last REQUESTS_KEPT measured requests."""

    def __init__(self) -> None:
        self._runs: deque[tuple[int, float]] = deque(maxlen=REQUESTS_KEPT)

    def add(self, tokens: int, seconds: float) -> None:
        """Record one request's generation."""
        self._runs.append((tokens, seconds))

    def tokens_per_second(self) -> float | None:
        """Return the rate, or None before any request was measured."""
        seconds = sum(s for _, s in self._runs)
        return sum(t for t, _ in self._runs) / seconds if seconds > 0 else None

    def real_time_factor(self) -> float | None:
        """Return audio seconds made per wall second (1.0: exactly real time)."""
        rate = self.tokens_per_second()
        return None if rate is None else rate / REAL_TIME_TOKENS_PER_SECOND


class RateMeter:
    """Audio seconds made per wall second, from the first token on (the prefill not counted).

    Fed as tokens arrive from every segment of one request, so a later segment generated
    alongside (lookahead) counts as the listener will hear it: audio made by the time it plays.

    The rate given is the lower of the whole run's and the last `window` seconds': a rate that
    slows is believed at once, one that speeds up only as the whole run catches up.
    """

    def __init__(self, window: float = 2.0) -> None:
        self._window = window
        self._started: float | None = None
        self._made = 0.0
        self._recent: deque[tuple[float, float]] = deque()

    def add(self, now: float, seconds: float) -> None:
        """Record `seconds` of audio made by `now`."""
        if self._started is None:
            # The first arrival only starts the clock: its audio was made before it, in time
            # the meter did not see (counting it would overstate a short run's rate).
            self._started = now
            self._recent.append((now, 0.0))
            return
        self._made += seconds
        self._recent.append((now, self._made))
        while len(self._recent) > 2 and self._recent[1][0] <= now - self._window:
            self._recent.popleft()

    @property
    def made(self) -> float:
        """Return the audio seconds measured (after the first arrival)."""
        return self._made

    def rate(self, now: float) -> float | None:
        """Return the measured rate, or None before any audio."""
        if self._started is None or self._made <= 0:
            return None
        overall = self._made / max(now - self._started, 1e-6)
        first_at, first_made = self._recent[0]
        if now - first_at < self._window / 2:
            return overall
        recent = (self._made - first_made) / (now - first_at)
        return min(overall, recent)
