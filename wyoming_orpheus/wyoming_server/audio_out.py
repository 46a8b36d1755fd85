"""PCM out: fixed 1024-sample audio-chunk events with millisecond timestamps."""

from __future__ import annotations

import numpy as np
from wyoming.audio import AudioChunk

from ..format import CHANNELS, SAMPLE_RATE, SAMPLE_WIDTH

SAMPLES_PER_CHUNK = 1024  # the chunk size of the ecosystem's servers (wyoming-piper)


class Chunker:
    """Cut PCM into fixed chunks with millisecond timestamps."""

    def __init__(self) -> None:
        self._buffer = np.zeros(0, dtype=np.int16)
        self._sent = 0

    @property
    def timestamp_ms(self) -> int:
        """Return the position of the next chunk in milliseconds."""
        return self._sent * 1000 // SAMPLE_RATE

    def push(self, samples: np.ndarray) -> list[AudioChunk]:
        """Return the whole chunks the buffer now holds."""
        self._buffer = np.concatenate([self._buffer, samples])
        whole = len(self._buffer) // SAMPLES_PER_CHUNK * SAMPLES_PER_CHUNK
        chunks = [
            self._chunk(self._buffer[i : i + SAMPLES_PER_CHUNK])
            for i in range(0, whole, SAMPLES_PER_CHUNK)
        ]
        self._buffer = self._buffer[whole:]
        return chunks

    def flush(self) -> list[AudioChunk]:
        """Return the last, shorter chunk."""
        rest, self._buffer = self._buffer, self._buffer[:0]
        return [self._chunk(rest)] if len(rest) else []

    def _chunk(self, samples: np.ndarray) -> AudioChunk:
        chunk = AudioChunk(
            rate=SAMPLE_RATE,
            width=SAMPLE_WIDTH,
            channels=CHANNELS,
            audio=samples.astype("<i2").tobytes(),
            timestamp=self.timestamp_ms,
        )
        self._sent += len(samples)
        return chunk
