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
