"""Output level: a gain in dB and a peak limiter, streaming, with 2 ms of look-ahead.

The limiter works on the gain in dB. The gain each sample needs (so it stays under the
ceiling) is spread backwards over the look-ahead as a ramp (the attack: the gain is down
before the peak arrives, no click) and forwards as a slow ramp back up (the release).
Both are min-plus convolutions with a linear ramp, which numpy computes with cumulative
minima: no per-sample Python loop, whatever the chunk size.
"""

from __future__ import annotations

import numpy as np

from ..format import SAMPLE_RATE

CEILING_DB = -1.0
"""Peaks stay 1 dB under full scale: room for lossy encoders' overshoot."""
LOOKAHEAD_SAMPLES = SAMPLE_RATE * 2 // 1000
ATTACK_DB_PER_SAMPLE = 40.0 / LOOKAHEAD_SAMPLES
"""Reductions up to 40 dB are reached within the look-ahead; deeper ones are clipped."""
RELEASE_DB_PER_SAMPLE = 20.0 / (SAMPLE_RATE * 0.2)
"""Back up 20 dB in 200 ms: slow enough not to pump on speech."""
_CEILING = 10 ** (CEILING_DB / 20)


class LevelControl:
    """Apply gain and limit peaks, chunk by chunk; holds back LOOKAHEAD_SAMPLES."""

    def __init__(self, gain_db: float, limiter: bool) -> None:
        self._gain = 10 ** (gain_db / 20)
        self._limiter = limiter
        self._held = np.zeros(0, np.float32)
        self._release_from = 0.0
        """The gain (dB) at the last released sample: where the release ramp continues."""

    @property
    def active(self) -> bool:
        """False when it would change nothing (0 dB, no limiter): callers skip it."""
        return self._gain != 1.0 or self._limiter

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Take int16 samples; return as many int16 samples, LOOKAHEAD_SAMPLES later."""
        if not self._limiter:
            return _to_int16(samples.astype(np.float32) * self._gain)
        scaled = samples.astype(np.float32) * (self._gain / 32768.0)
        self._held = np.concatenate([self._held, scaled])
        ready = len(self._held) - LOOKAHEAD_SAMPLES
        if ready <= 0:
            return np.zeros(0, np.int16)
        return self._release(ready, final=False)

    def flush(self) -> np.ndarray:
        """Return the held samples at the end of the stream."""
        if not self._limiter or not len(self._held):
            return np.zeros(0, np.int16)
        return self._release(len(self._held), final=True)

    def _release(self, count: int, final: bool) -> np.ndarray:
        window = self._held
        gain_db = _attack(_needed_db(window), final)
        gain_db = _release_ramp(gain_db[:count], self._release_from)
        self._release_from = float(gain_db[-1])
        out = window[:count] * (10 ** (gain_db / 20))
        self._held = window[count:]
        return _to_int16(out * 32768.0)


def _needed_db(samples: np.ndarray) -> np.ndarray:
    """The gain (<= 0 dB) each sample needs to stay under the ceiling."""
    peak = np.maximum(np.abs(samples), 1e-9)
    return np.minimum(0.0, 20 * np.log10(_CEILING / peak)).astype(np.float64)


def _attack(needed: np.ndarray, final: bool) -> np.ndarray:
    """g[n] = min over k >= 0 of needed[n + k] + k * attack: down before each peak."""
    index = np.arange(len(needed)) * ATTACK_DB_PER_SAMPLE
    reverse_min = np.minimum.accumulate((needed + index)[::-1])[::-1]
    return reverse_min - index


def _release_ramp(gain: np.ndarray, start: float) -> np.ndarray:
    """g[n] = min(gain[n], min over j < n of gain[j] + (n - j) * release), capped at 0 dB."""
    index = np.arange(1, len(gain) + 1) * RELEASE_DB_PER_SAMPLE
    carried = np.minimum.accumulate(np.minimum(gain - index, start))
    return np.minimum(np.minimum(gain, carried + index), 0.0)


def _to_int16(samples: np.ndarray) -> np.ndarray:
    return np.clip(np.round(samples), -32768, 32767).astype(np.int16)
