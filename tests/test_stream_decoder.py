"""Exact streaming decode: the streamed audio equals a whole-utterance decode."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.waiting import until
from wyoming_orpheus.decode.hardware import Tier
from wyoming_orpheus.decode.snac import decode_batch, load_snac
from wyoming_orpheus.decode.streams import (
    Playback,
    StatefulStreamDecoder,
    StreamDecoder,
    WindowedStreamDecoder,
    drain,
    warm_up,
)
from wyoming_orpheus.decode.worker import DecodeWorker
from wyoming_orpheus.errors import Unavailable

CPU_TIER = Tier(
    "cpu", "cpu", batch_size=8, collect_ms=20, threads=2, compile=False, max_concurrent=4
)
MODES = ("windowed", "stateful")


def make_decoder(mode: str, worker: DecodeWorker, lead=lambda: 0.0) -> StreamDecoder:
    if mode == "windowed":
        return WindowedStreamDecoder(worker.decode, lead)
    return StatefulStreamDecoder(worker, lead)


@pytest.fixture
def model(snac_model: torch.nn.Module) -> torch.nn.Module:
    return snac_model  # loaded once per session (conftest)


@pytest.fixture
async def worker(model: torch.nn.Module) -> AsyncIterator[DecodeWorker]:
    worker = DecodeWorker(model, CPU_TIER)
    worker.start()
    yield worker
    worker.stop()


def random_frames(count: int, seed: int) -> list[tuple[int, ...]]:
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 4096, size=(count, 7))
    return [tuple(int(c) for c in f) for f in frames]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def stream_decode(
    worker: DecodeWorker,
    frames: list[tuple[int, ...]],
    frames_per_push: int,
    realtime_factor: float,
    mode: str = "windowed",
) -> tuple[np.ndarray, list[int]]:
    """Feed frames as an LLM at realtime_factor x real time would; return audio and block sizes."""
    clock = FakeClock()
    playback = Playback(clock)
    decoder = make_decoder(mode, worker, playback.lead)
    out, blocks = [], []
    for start in range(0, len(frames), frames_per_push):
        clock.now = start * 2048 / 24000 / realtime_factor
        decoder.add(frames[start : start + frames_per_push])
        for samples in await drain(decoder):
            playback.sent(len(samples))
            out.append(samples)
            blocks.append(len(samples))
    decoder.end()
    out += await drain(decoder)
    return np.concatenate(out), blocks


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("count", "per_push", "realtime_factor"),
    [(1, 1, 1.0), (2, 1, 1.0), (3, 2, 1.0), (4, 1, 1.2), (20, 1, 1.2), (30, 3, 4.0), (45, 7, 20.0)],
)
async def test_streamed_audio_equals_whole_decode(
    worker: DecodeWorker,
    model: torch.nn.Module,
    count: int,
    per_push: int,
    realtime_factor: float,
    mode: str,
) -> None:
    frames = random_frames(count, seed=count)
    streamed, _ = await stream_decode(worker, frames, per_push, realtime_factor, mode)
    whole = decode_batch(model, np.array([frames]), "cpu")[0]
    assert len(streamed) == 2048 * count
    np.testing.assert_allclose(streamed, whole, rtol=0, atol=2e-5)


async def test_first_audio_after_four_frames_and_blocks_grow_with_the_lead(
    worker: DecodeWorker,
) -> None:
    frames = random_frames(48, seed=7)
    _, blocks = await stream_decode(worker, frames, 1, realtime_factor=10.0)
    # Four frames make 2048 samples final (4 x 2048 - 4608 >= 2048): that is the first block.
    assert blocks[0] <= 2 * 2048
    # A listener far ahead gets large blocks (less compute per second of audio).
    assert max(blocks) >= 8 * 2048


async def test_nothing_is_released_before_it_is_final(worker: DecodeWorker) -> None:
    decoder = WindowedStreamDecoder(worker.decode)
    decoder.add(random_frames(3, seed=1))
    assert await decoder.next_block() is None  # 3 x 2048 - 4608 < 2048
    decoder.add(random_frames(1, seed=2))
    first = await decoder.next_block()
    assert first is not None and len(first) == 4 * 2048 - 4608


async def test_concurrent_streams_share_batches_and_get_their_own_audio(
    worker: DecodeWorker, model: torch.nn.Module
) -> None:
    streams = [random_frames(12, seed=100 + i) for i in range(4)]
    results = await asyncio.gather(*(stream_decode(worker, s, 1, 1.0) for s in streams))
    for frames, (audio, _) in zip(streams, results, strict=True):
        whole = decode_batch(model, np.array([frames]), "cpu")[0]
        np.testing.assert_allclose(audio, whole, rtol=0, atol=2e-5)
    assert max(worker.stats.batch_sizes) > 1, worker.stats.batch_sizes


@pytest.mark.parametrize("mode", MODES)
async def test_several_workers_decode_streams_side_by_side_exactly(
    model: torch.nn.Module, mode: str
) -> None:
    # Each worker thread takes whole steps off one queue; a stream's steps stay in order
    # because it waits for each before handing over the next.
    tier = dataclasses.replace(CPU_TIER, threads=1, workers=2, decode_mode=mode)
    worker = DecodeWorker(model, tier)
    worker.start()
    # Two steps that can only finish together: one worker would wait here until the timeout.
    meeting = threading.Barrier(2, timeout=10)

    def meet() -> np.ndarray:
        meeting.wait()
        return np.zeros(0, dtype=np.float32)

    try:
        await asyncio.gather(worker.run(meet), worker.run(meet))
        streams = [random_frames(10, seed=300 + i) for i in range(4)]
        results = await asyncio.gather(*(stream_decode(worker, s, 2, 1.5, mode) for s in streams))
    finally:
        worker.stop()
    for frames, (audio, _) in zip(streams, results, strict=True):
        whole = decode_batch(model, np.array([frames]), "cpu")[0]
        np.testing.assert_allclose(audio, whole, rtol=0, atol=2e-5)


@pytest.mark.parametrize("mode", MODES)
async def test_noise_on_still_gives_each_sample_once(tmp_path: Path, mode: str) -> None:
    from tests.stand_ins.snac_model import write_snac_model

    noisy = load_snac(str(write_snac_model(tmp_path / mode, noise=True)), "cpu")
    worker = DecodeWorker(noisy, CPU_TIER)
    worker.start()
    try:
        audio, _ = await stream_decode(worker, random_frames(9, seed=3), 1, 1.0, mode)
    finally:
        worker.stop()
    assert len(audio) == 9 * 2048
    assert np.isfinite(audio).all() and np.abs(audio).max() <= 1.0


async def test_compile_is_left_to_the_windowed_decoder(model: torch.nn.Module) -> None:
    tier = dataclasses.replace(CPU_TIER, compile=True, decode_mode="stateful")
    worker = DecodeWorker(model, tier)
    worker.start()
    try:
        audio, _ = await stream_decode(worker, random_frames(5, seed=9), 1, 1.0, "stateful")
    finally:
        worker.stop()
    whole = decode_batch(model, np.array([random_frames(5, seed=9)]), "cpu")[0]
    np.testing.assert_allclose(audio, whole, rtol=0, atol=2e-5)


@pytest.mark.parametrize("mode", MODES)
async def test_streams_stay_exact_after_the_warm_up(model: torch.nn.Module, mode: str) -> None:
    # The warm-up picks each transposed convolution's faster form for every block size,
    # shared by all streams of the model: the audio must not change.
    worker = DecodeWorker(model, dataclasses.replace(CPU_TIER, decode_mode=mode))
    worker.start()
    try:
        await warm_up(worker)
        frames = random_frames(20, seed=20)
        streamed, _ = await stream_decode(worker, frames, 3, 1.2, mode)
    finally:
        worker.stop()
    whole = decode_batch(model, np.array([frames]), "cpu")[0]
    np.testing.assert_allclose(streamed, whole, rtol=0, atol=2e-5)


async def test_every_job_is_answered_while_the_worker_stops(model: torch.nn.Module) -> None:
    # NOTE: issue 25: a job queued behind the stop signals was never answered; its stream
    # (and the request behind it) waited forever. A stop now answers every job.
    worker = DecodeWorker(model, dataclasses.replace(CPU_TIER, workers=1))
    worker.start()
    release = threading.Event()

    def busy() -> np.ndarray:
        release.wait(5)
        return np.zeros(1, dtype=np.float32)

    running = asyncio.ensure_future(worker.run(busy))  # holds the only worker thread
    queued = asyncio.ensure_future(worker.decode(np.zeros((2, 7), dtype=np.int64)))
    await asyncio.sleep(0)  # both are on the queue
    stopping = asyncio.ensure_future(asyncio.to_thread(worker.stop))
    await until(lambda: not worker._accepting, "the stop to begin", every=0.001)
    late = asyncio.ensure_future(worker.decode(np.zeros((2, 7), dtype=np.int64)))
    release.set()
    async with asyncio.timeout(10):
        await stopping
        results = await asyncio.gather(running, queued, late, return_exceptions=True)
    assert isinstance(results[0], np.ndarray) and isinstance(results[1], np.ndarray)
    assert isinstance(results[2], Unavailable) and "shutting down" in str(results[2])
