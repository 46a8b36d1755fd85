"""One request's log line and metrics: first audio, real-time factor, how playout went."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from ..format import SAMPLE_RATE
from ..metrics import Metrics
from ..playout.rule import Outcome

_LOGGER = logging.getLogger(__name__)


@dataclass
class SynthesisStats:
    """Counters across requests: syntheses running and waiting, tokens the parser dropped."""

    active: int = 0
    queued: int = 0
    dropped_tokens: int = 0
    invalid_tokens: int = 0


class Report:
    """Times one request for the log line operators read and the metrics: first audio, RTF."""

    def __init__(self, voice: str, door: str, metrics: Metrics) -> None:
        self._voice = voice
        self._door = door
        self._metrics = metrics
        self._started = time.monotonic()
        self._first: float | None = None
        self._samples = 0

    def audio(self, samples: int) -> None:
        """Count samples as they go out (the first ones time the first audio)."""
        if self._first is None:
            self._first = time.monotonic() - self._started
            self._metrics.first_audio.labels(self._door).observe(self._first)
        self._samples += samples

    def log(self, playout: Outcome) -> None:
        """Write the request's line and its metrics (after its last audio went out)."""
        seconds = self._samples / SAMPLE_RATE
        took = time.monotonic() - self._started
        self._metrics.audio_seconds.labels(self._door).inc(seconds)
        if seconds > 0:
            self._metrics.real_time_factor.labels(self._door).observe(took / seconds)
        self._metrics.playout_hold.labels(self._door).observe(playout.first_hold)
        self._metrics.playout_releases.labels(self._door, playout.release.value).inc()
        _LOGGER.info(
            "Spoke %.1f s of audio with %s in %.1f s (first audio after %.2f s; %s)",
            seconds,
            self._voice,
            took,
            self._first or 0.0,
            _playout_text(playout, seconds),
        )


def _playout_text(playout: Outcome, seconds: float) -> str:
    """Say how playout went: the hold, why it ended, the estimate and the rate it used."""
    rate = "unknown" if playout.rate is None else f"{playout.rate:.2f}x real time"
    if not playout.holds:
        return f"not held, LLM {rate}"
    return (
        f"held {playout.first_hold:.2f} s until {playout.release.value}"
        + (f", {playout.held:.2f} s in {playout.holds} holds" if playout.holds > 1 else "")
        + f", estimated {playout.estimated:.1f} s of {seconds:.1f} s, LLM {rate}"
    )
