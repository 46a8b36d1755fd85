"""Prometheus collectors that both front doors and the engine update (prometheus_client)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Buckets sized for what an operator asks: first audio within ~1 s, decode steps within a
# frame's 85 ms, real-time factors around 1.
_FIRST_AUDIO_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
_RTF_BUCKETS = (0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 3.0, 5.0)
_STEP_BUCKETS = (0.005, 0.01, 0.02, 0.04, 0.06, 0.085, 0.12, 0.2, 0.4, 0.8, 1.6)
_TOKEN_RATE_BUCKETS = (10, 25, 50, 75, 82, 100, 150, 200, 300, 500, 1000, 2000)
_LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_HOLD_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 25.0)


class Metrics:
    """One registry per engine, so several engines (tests) never share counters."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "orpheus_requests",
            "Synthesis requests by front door and outcome (ok, error, cancelled)",
            ["door", "outcome"],
            registry=r,
        )
        self.errors = Counter(
            "orpheus_errors",
            "Failed requests by front door and error code",
            ["door", "code"],
            registry=r,
        )
        self.first_audio = Histogram(
            "orpheus_time_to_first_audio_seconds",
            "From the request to its first audio",
            ["door"],
            buckets=_FIRST_AUDIO_BUCKETS,
            registry=r,
        )
        self.real_time_factor = Histogram(
            "orpheus_real_time_factor",
            "Wall time of a request divided by the audio it produced (below 1 is faster)",
            ["door"],
            buckets=_RTF_BUCKETS,
            registry=r,
        )
        self.audio_seconds = Counter(
            "orpheus_audio_seconds", "Seconds of audio produced", ["door"], registry=r
        )
        self.running = Gauge("orpheus_syntheses_running", "Syntheses holding a slot", registry=r)
        self.queued = Gauge(
            "orpheus_syntheses_queued", "Requests waiting for a synthesis slot", registry=r
        )
        self.token_rate = Histogram(
            "orpheus_upstream_tokens_per_second",
            "Audio tokens per second one LLM request streamed (82 is real time)",
            buckets=_TOKEN_RATE_BUCKETS,
            registry=r,
        )
        self.upstream_rate = Gauge(
            "orpheus_upstream_real_time_factor",
            "Audio seconds an LLM server makes per wall second over its last requests "
            "(below 1 cannot keep real time; NaN before one was measured)",
            ["upstream"],
            registry=r,
        )
        self.playout_hold = Histogram(
            "orpheus_playout_hold_seconds",
            "How long adaptive playout held a request's first audio (0: not at all)",
            ["door"],
            buckets=_HOLD_BUCKETS,
            registry=r,
        )
        self.playout_releases = Counter(
            "orpheus_playout_releases",
            "Why held audio was let go (immediate, covered, fast, end, cap)",
            ["door", "reason"],
            registry=r,
        )
        self.decode_step = Histogram(
            "orpheus_decode_step_seconds",
            "Time of one SNAC decode call on the decode worker",
            buckets=_STEP_BUCKETS,
            registry=r,
        )

        self.loop_lag = Histogram(
            "orpheus_event_loop_lag_seconds",
            "How late the event loop woke a 50 ms sleeper: a step held the loop this long",
            buckets=_LAG_BUCKETS,
            registry=r,
        )

    def track_slots(self, running: Callable[[], int], queued: Callable[[], int]) -> None:
        """Read the slot gauges from the synthesizer when scraped."""
        self.running.set_function(running)
        self.queued.set_function(queued)

    def track_upstream(self, url: str, real_time_factor: Callable[[], float | None]) -> None:
        """Read an LLM server's real-time factor when scraped."""
        self.upstream_rate.labels(url).set_function(lambda: _or_nan(real_time_factor()))

    def finished(self, door: str, code: str | None) -> None:
        """Count one request's outcome: code None is success, "cancelled" a client gone."""
        if code is None:
            self.requests.labels(door, "ok").inc()
        elif code == "cancelled":
            self.requests.labels(door, "cancelled").inc()
        else:
            self.requests.labels(door, "error").inc()
            self.errors.labels(door, code).inc()

    def exposition(self) -> bytes:
        """Return the Prometheus text exposition."""
        return generate_latest(self.registry)


def _or_nan(value: float | None) -> float:
    return float("nan") if value is None else value
