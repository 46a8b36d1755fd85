"""Output level: gain in dB and a streaming peak limiter that never clips and adds no click."""

from __future__ import annotations

import numpy as np
import pytest

from wyoming_orpheus.audio.level import CEILING_DB, LOOKAHEAD_SAMPLES, LevelControl
from wyoming_orpheus.format import SAMPLE_RATE


def tone(seconds: float, peak: float, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return np.round(np.sin(2 * np.pi * hz * t) * peak * 32767).astype(np.int16)


def stream(level: LevelControl, samples: np.ndarray, chunk: int) -> np.ndarray:
    pieces = [level.push(samples[i : i + chunk]) for i in range(0, len(samples), chunk)]
    return np.concatenate([*pieces, level.flush()])


def dbfs(samples: np.ndarray) -> float:
    return float(20 * np.log10(np.max(np.abs(samples.astype(np.float64))) / 32768))


@pytest.mark.parametrize("chunk", [1, 100, 1024, 24000])
def test_quiet_audio_passes_unchanged_only_delayed_by_the_lookahead(chunk: int) -> None:
    quiet = tone(1.0, 0.5)
    out = stream(LevelControl(0.0, limiter=True), quiet, chunk)
    assert np.array_equal(out, quiet)  # same length, same samples: nothing added or lost


@pytest.mark.parametrize("chunk", [7, 1024])
def test_gain_raises_the_level_and_the_limiter_holds_the_ceiling(chunk: int) -> None:
    speech_like = tone(1.0, 0.3) + tone(1.0, 0.3, hz=1234.0)  # peaks near -4.4 dBFS
    out = stream(LevelControl(12.0, limiter=True), speech_like, chunk)
    assert len(out) == len(speech_like)
    assert dbfs(out) <= CEILING_DB + 0.05  # 12 dB of gain, and still no peak over -1 dBFS
    # What the limiter left of the gain is there: peaks at the ceiling (+3.4 dB), RMS up too.
    rms_gain = 20 * np.log10(np.std(out.astype(float)) / np.std(speech_like.astype(float)))
    assert 3.0 < rms_gain <= 12.0


def test_without_the_limiter_gain_clips_at_full_scale() -> None:
    out = stream(LevelControl(12.0, limiter=False), tone(0.5, 0.5), 1024)
    assert out.max() == 32767 and out.min() == -32768


def test_the_gain_goes_down_before_a_peak_not_after_it() -> None:
    # Silence-level tone, then a sudden full-scale burst: the look-ahead starts the
    # reduction before the burst, so the first loud sample is already under the ceiling.
    quiet, loud = tone(0.2, 0.05), tone(0.2, 1.0)
    out = stream(LevelControl(12.0, limiter=True), np.concatenate([quiet, loud]), 480)
    burst = out[len(quiet) : len(quiet) + 240]
    assert dbfs(burst) <= CEILING_DB + 0.05
    # The quiet part before the look-ahead got the full 12 dB: nothing is turned down early.
    early = out[: len(quiet) - LOOKAHEAD_SAMPLES].astype(float)
    assert np.std(early) / np.std(quiet[: len(early)].astype(float)) == pytest.approx(
        10 ** (12 / 20), rel=1e-3
    )


def test_zero_db_without_limiter_is_inactive() -> None:
    assert not LevelControl(0.0, limiter=False).active
    assert LevelControl(0.0, limiter=True).active and LevelControl(3.0, limiter=False).active
