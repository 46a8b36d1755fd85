"""What a listener feels, from the arrival times of audio chunks: a simulated 24 kHz player."""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass, field

SAMPLE_RATE = 24000


@dataclass
class Listen:
    """One request as a client saw it: when it asked, and when each chunk of audio arrived."""

    asked: float
    """When the request was made (for streamed text: when its first sentence was complete)."""
    chunks: list[tuple[float, int]] = field(default_factory=list)
    """(arrival time, samples) of each audio chunk."""
    tokens_at_first_audio: int = 0
    """Upstream tokens sent for this request when its first audio arrived."""

    def add(self, arrival: float, samples: int) -> None:
        """Record a chunk."""
        if samples:
            self.chunks.append((arrival, samples))

    @property
    def first_audio(self) -> float:
        """Return seconds from the request to its first audio."""
        return self.chunks[0][0] - self.asked

    @property
    def audio_seconds(self) -> float:
        """Return the seconds of audio received."""
        return sum(samples for _, samples in self.chunks) / SAMPLE_RATE

    @property
    def real_time_factor(self) -> float:
        """Return wall time from the request to the last audio, per second of audio."""
        return (self.chunks[-1][0] - self.asked) / self.audio_seconds

    @property
    def largest_gap(self) -> float:
        """Return the longest wait between two chunks, in seconds."""
        times = [t for t, _ in self.chunks]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    def underruns(self, prebuffer: float) -> int:
        """Count the times a player that starts `prebuffer` s after the first chunk runs dry."""
        if not self.chunks:
            return 0
        runs_out = self.chunks[0][0] + prebuffer
        count = 0
        for arrival, samples in self.chunks:
            if arrival > runs_out:
                count += 1
                runs_out = arrival  # it plays again as soon as audio is there
            runs_out += samples / SAMPLE_RATE
        return count


def percentile(values: list[float], q: float) -> float:
    """Return the q-th percentile (0-100) by linear interpolation."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[max(0, min(98, round(q) - 1))]


def summarize(listens: list[Listen], prebuffer: float) -> dict[str, float]:
    """Summarize the requests of one scenario: first audio, underruns, RTF, gaps.

    Requests that got no audio (refused as busy) are counted, not measured.
    """
    refused = len([listen for listen in listens if not listen.chunks])
    listens = [listen for listen in listens if listen.chunks]
    if not listens:
        return {"refused": refused}
    first = [listen.first_audio for listen in listens]
    return {
        "refused": refused,
        "first_audio_p50_s": percentile(first, 50),
        "first_audio_p95_s": percentile(first, 95),
        "first_audio_p99_s": percentile(first, 99),
        "tokens_at_first_audio_median": statistics.median(
            listen.tokens_at_first_audio for listen in listens
        ),
        "underruns_total": sum(listen.underruns(prebuffer) for listen in listens),
        "real_time_factor_max": max(listen.real_time_factor for listen in listens),
        "largest_gap_s": max(listen.largest_gap for listen in listens),
        "audio_seconds_per_stream": statistics.mean(listen.audio_seconds for listen in listens),
    }
