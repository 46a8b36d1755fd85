"""How long the event loop was held: a sleeper woken late means a step ran without yielding.

NOTE: issue 31: one SSML request held the loop for ~23 s and /health with it; nothing showed
it. asyncio's own slow-callback log needs debug mode (costly on every call), so a sleeper
samples the lag instead: a step longer than the interval shows as lag, measured in
/metrics (orpheus_event_loop_lag_seconds) and logged as a WARNING above WARN_SECONDS.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

_LOGGER = logging.getLogger(__name__)

INTERVAL = 0.05
"""Seconds between samples: a step this long or longer is seen."""
WARN_SECONDS = 0.1
"""A lag over this is a WARNING (describe must be answered within 1 s while others speak)."""
WARN_EVERY = 10.0
"""At most one WARNING in this many seconds; the others are counted into the next one."""


class LoopLag:
    """Samples the event loop's lag until cancelled; keeps the largest seen."""

    def __init__(self, observe: Callable[[float], None]) -> None:
        self._observe = observe
        self.largest = 0.0
        self._warned_at = float("-inf")
        self._unsaid = 0

    async def run(self) -> None:
        """Sleep INTERVAL again and again; what it overslept is the lag."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(INTERVAL)
            now = loop.time()
            self.seen(max(0.0, now - started - INTERVAL), now)

    def seen(self, lag: float, now: float) -> None:
        """Record one sample; warn (rate-limited) when the loop was held too long."""
        self._observe(lag)
        self.largest = max(self.largest, lag)
        if lag <= WARN_SECONDS:
            return
        if now - self._warned_at < WARN_EVERY:
            self._unsaid += 1
            return
        _LOGGER.warning(
            "The event loop was held for %.0f ms (%d more such holds since the last warning): "
            "one step ran that long without yielding, and every connection waited",
            lag * 1000,
            self._unsaid,
        )
        self._warned_at, self._unsaid = now, 0
