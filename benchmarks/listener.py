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
    fourth_frame_at: float | None = None
    """When the upstream sent the last token of the 4th frame (28 audio tokens)."""
    llm_request_at: float | None = None
    """When the request reached the LLM server (streamed text: its first sentence's request)."""

    silence: list[tuple[float, int]] = field(default_factory=list)
    """(arrival time, samples) of keep-alive silence before the first speech (issue 29)."""

    def add(self, arrival: float, samples: int, silent: bool = False) -> None:
        """Record a chunk; all-zero chunks before any speech are keep-alive silence."""
        if silent and not self.chunks:
            self.silence.append((arrival, samples))
        elif samples:
            self.chunks.append((arrival, samples))

    @property
    def first_bytes(self) -> float:
        """Return seconds from the request to its first audio bytes (silence or speech)."""
        firsts = [c[0] for c in (self.silence[:1] + self.chunks[:1])]
        return min(firsts) - self.asked

    @property
    def after_fourth_frame(self) -> float | None:
        """Seconds from the 4th frame's last token leaving the LLM to the first audio."""
        if self.fourth_frame_at is None or not self.chunks:
            return None
        return self.chunks[0][0] - self.fourth_frame_at

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

    def dry_seconds(self, prebuffer: float) -> float:
        """Seconds a player that starts `prebuffer` s after the first bytes sits silent (gaps)
        once speech is heard (keep-alive silence before it is heard as the same wait)."""
        return self.played(prebuffer).dry

    def underruns(self, prebuffer: float) -> int:
        """Count the times a player that starts `prebuffer` s after the first bytes runs dry
        once speech is heard."""
        return self.played(prebuffer).underruns

    def heard_speech(self, prebuffer: float) -> float:
        """Seconds from the request to when that player plays the first speech.

        Keep-alive silence sent ahead of real time is played first: speech that came early
        is heard after it.
        """
        return self.played(prebuffer).speech - self.asked

    def played(self, prebuffer: float) -> Played:
        """Play the line as a player that starts `prebuffer` s after its first bytes does."""
        line = self.silence + self.chunks  # the silence all came before the first speech
        if not self.chunks:
            return Played(0.0, 0.0, 0)
        runs_out, played = line[0][0] + prebuffer, Played(0.0, 0.0, 0)
        for index, (arrival, samples) in enumerate(line):
            if arrival > runs_out:
                if index > len(self.silence):  # a gap in speech, not in the wait before it
                    played.dry += arrival - runs_out
                    played.underruns += 1
                runs_out = arrival  # it plays again as soon as audio is there
            if index == len(self.silence):
                played.speech = runs_out
            runs_out += samples / SAMPLE_RATE
        return played


@dataclass
class Played:
    """What a player heard: when speech began, and the gaps in it."""

    speech: float
    dry: float
    underruns: int


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
        **_after_fourth_frame(listens),
        **_llm_request_delay(listens),
        "tokens_at_first_audio_median": statistics.median(
            listen.tokens_at_first_audio for listen in listens
        ),
        "underruns_total": sum(listen.underruns(prebuffer) for listen in listens),
        "gaps_per_stream_s": statistics.mean(listen.dry_seconds(prebuffer) for listen in listens),
        "real_time_factor_max": max(listen.real_time_factor for listen in listens),
        "largest_gap_s": max(listen.largest_gap for listen in listens),
        "audio_seconds_per_stream": statistics.mean(listen.audio_seconds for listen in listens),
    }


def _llm_request_delay(listens: list[Listen]) -> dict[str, float]:
    """Seconds from the request (or the first sentence's completion) to its LLM request."""
    times = [x.llm_request_at - x.asked for x in listens if x.llm_request_at is not None]
    return {"llm_request_after_ask_p95_s": percentile(times, 95)} if times else {}


def _after_fourth_frame(listens: list[Listen]) -> dict[str, float]:
    """Server time from the 4th frame's last token to first audio: p50 and p95."""
    times = [t for t in (listen.after_fourth_frame for listen in listens) if t is not None]
    if not times:
        return {}
    return {
        "after_fourth_frame_p50_s": percentile(times, 50),
        "after_fourth_frame_p95_s": percentile(times, 95),
    }
