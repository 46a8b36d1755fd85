"""PCM helpers: int16 conversion, silence, lead-in trimming, tempo change."""

from __future__ import annotations

from fractions import Fraction

import av
import av.filter
import numpy as np

from ..format import SAMPLE_RATE

# The model often starts a segment with near silence; -45 dBFS is well under speech and
# above SNAC's noise floor. Keep 20 ms before the first sound so onsets stay natural, and
# never trim more than 1.5 s (a quiet opening is still speech).
LEAD_THRESHOLD = 10 ** (-45 / 20)
LEAD_MARGIN_SAMPLES = SAMPLE_RATE * 20 // 1000
LEAD_MAX_SAMPLES = SAMPLE_RATE * 3 // 2


def to_int16(samples: np.ndarray) -> np.ndarray:
    """Convert float samples in [-1, 1] to int16."""
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16)


def silence(seconds: float) -> np.ndarray:
    """Return int16 silence of the given length."""
    return np.zeros(round(seconds * SAMPLE_RATE), dtype=np.int16)


class LeadTrimmer:
    """Drop the near-silent start of a segment, streaming: holds audio until sound starts."""

    def __init__(self) -> None:
        self._held: list[np.ndarray] = []
        self._held_samples = 0
        self._done = False

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Return the audio to pass on (empty while the lead-in is still silent)."""
        if self._done:
            return samples
        self._held.append(samples)
        self._held_samples += len(samples)
        held = np.concatenate(self._held)
        loud = np.flatnonzero(np.abs(held) > LEAD_THRESHOLD)
        if len(loud):
            return self._release(held, max(0, int(loud[0]) - LEAD_MARGIN_SAMPLES))
        if self._held_samples >= LEAD_MAX_SAMPLES:
            return self._release(held, LEAD_MAX_SAMPLES)
        return samples[:0]

    def flush(self) -> np.ndarray:
        """Return what is still held at the end (an all-quiet segment is dropped)."""
        held = np.concatenate(self._held) if self._held else np.zeros(0, np.float32)
        return self._release(held, min(len(held), LEAD_MAX_SAMPLES))

    def _release(self, held: np.ndarray, start: int) -> np.ndarray:
        self._done = True
        self._held = []
        return held[start:]


class TempoChanger:
    """Change tempo without changing pitch (ffmpeg's atempo through PyAV), streaming."""

    def __init__(self, factor: float) -> None:
        self._factor = factor
        self._pts = 0
        self._graph: av.filter.Graph | None = None
        if factor != 1.0:
            graph = av.filter.Graph()
            source = graph.add_abuffer(
                sample_rate=SAMPLE_RATE,
                format="s16",
                layout="mono",
                time_base=Fraction(1, SAMPLE_RATE),
            )
            last = source
            for step in _atempo_steps(factor):
                tempo = graph.add("atempo", f"{step}")
                last.link_to(tempo)
                last = tempo
            sink = graph.add("abuffersink")
            last.link_to(sink)
            graph.configure()
            self._graph = graph

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Feed int16 samples; return the int16 samples ready so far."""
        if self._graph is None or len(samples) == 0:
            return samples
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._pts
        self._pts += len(samples)
        self._graph.push(frame)
        return self._pull()

    def flush(self) -> np.ndarray:
        """Return the samples the filter still holds."""
        if self._graph is None:
            return np.zeros(0, dtype=np.int16)
        self._graph.push(None)
        return self._pull()

    def _pull(self) -> np.ndarray:
        assert self._graph is not None
        out = []
        while True:
            try:
                frame = self._graph.pull()
            except (av.BlockingIOError, av.EOFError):
                break
            out.append(frame.to_ndarray().reshape(-1))
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int16)


def _atempo_steps(factor: float) -> list[float]:
    """Split a tempo factor into atempo filters: one filter slows by at most 2x."""
    steps = []
    while factor < 0.5:
        steps.append(0.5)
        factor /= 0.5
    return [*steps, factor]
