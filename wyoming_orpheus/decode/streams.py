"""Exact streaming SNAC decode of one stream: release only samples no later frame can change.

Two strategies give the same audio (a whole-utterance decode, to float rounding):
- windowed: decode the new frames with enough context that they are final; windows of all
  streams are batched by the decode worker (best on GPUs, where launches cost most);
- stateful: every decoder layer keeps what it still needs (decode/stateful.py), so each frame is
  decoded once (best on CPUs, where compute costs most).
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import cast

import numpy as np

from ..format import SAMPLE_RATE, SAMPLES_PER_FRAME, Frame
from .stateful import SnacStream
from .worker import DecodeWorker

# NOTE: measured receptive field of the SNAC 24 kHz decoder (REFERENCE.md section 2): a
# sample depends on codes up to 5120 samples before it and 4608 samples after it. Three
# whole frames of left context (6144 samples) cover the left reach with frame alignment.
LEFT_CONTEXT_FRAMES = 3
RIGHT_REACH_SAMPLES = 4608

# Block sizing from the listener's lead: a block of C frames needs about C x 85 ms to
# arrive from the LLM plus its decode time before the client's buffer may run dry, so
# allow one frame per 120 ms of lead, between 1 frame (first audio after 4 frames) and
# MAX_BLOCK_FRAMES (bounds a window's memory; larger windows also cost more per frame on
# CPU, as their activations leave the caches).
SECONDS_OF_LEAD_PER_FRAME = 0.12
MAX_BLOCK_FRAMES = 16
# NOTE: measured on the 2-core CPU (BENCHMARKS.md): stateful steps cost ~50 ms per frame at 1
# frame, 28-34 at 2, 14-20 at 4 and 8, and more again at 16 (activations leave the caches),
# while each larger shape holds more heap; 8 is the cheapest and keeps memory in check.
STATEFUL_MAX_BLOCK_FRAMES = 8

DecodeFn = Callable[[np.ndarray], Awaitable[np.ndarray]]
LeadFn = Callable[[], float]


class Playback:
    """Audio handed to the listener against real time since the first of it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._samples = 0
        self._started: float | None = None

    def sent(self, samples: int) -> None:
        """Record samples handed to the listener."""
        if self._started is None and samples:
            self._started = self._clock()
        self._samples += samples

    def lead(self) -> float:
        """Return how far the listener's buffer runs ahead of real-time playback, in seconds."""
        if self._started is None:
            return 0.0
        return self._samples / SAMPLE_RATE - (self._clock() - self._started)


class StreamDecoder(ABC):
    """Frames in, final samples out; the block size follows the listener's lead."""

    def __init__(
        self,
        lead: LeadFn = lambda: 0.0,
        max_block_frames: int = MAX_BLOCK_FRAMES,
        min_block_frames: int = 1,
    ) -> None:
        self._lead = lead
        self._max_block = max_block_frames
        self._min_block = min_block_frames
        self._frames: list[Frame] = []
        self._ended = False

    @property
    def frames(self) -> int:
        """Return how many frames were received."""
        return len(self._frames)

    @property
    def max_block_frames(self) -> int:
        """Return the largest block this decoder steps or decodes at once."""
        return self._max_block

    def block_frames(self) -> int:
        """Return the least number of new frames worth a decode, given the lead: a power of 2."""
        by_lead = int(self._lead() / SECONDS_OF_LEAD_PER_FRAME)
        block = max(self._min_block, min(self._max_block, by_lead))
        # NOTE: few distinct block sizes mean few distinct tensor shapes, so the CPU backend
        # (oneDNN) reuses its compiled convolution primitives instead of building new ones.
        return _power_of_two_at_most(block)

    def add(self, frames: Sequence[Frame]) -> None:
        """Take newly arrived frames."""
        self._frames.extend(frames)

    def end(self) -> None:
        """Mark the end of the stream: the remaining blocks include its last samples."""
        self._ended = True

    @abstractmethod
    async def next_block(self) -> np.ndarray | None:
        """Decode one block and return its newly final samples; None when none is ready.

        NOTE: one block per call, so the caller hands each block's audio to the listener
        before decoding the next (issue #10: a backlog decoded whole held audio back for
        seconds under load).
        """


class WindowedStreamDecoder(StreamDecoder):
    """Decode the new samples inside a window with enough context on both sides."""

    def __init__(self, decode: DecodeFn, lead: LeadFn = lambda: 0.0, **kwargs: int) -> None:
        super().__init__(lead, **kwargs)
        self._decode = decode
        self._released = 0  # index of the next sample to release

    async def next_block(self) -> np.ndarray | None:
        """Decode the next window of at most max_block_frames new frames, once it is due."""
        total = len(self._frames) * SAMPLES_PER_FRAME
        target = total if self._ended else total - RIGHT_REACH_SAMPLES
        if target <= self._released:
            return None
        if not self._ended and target - self._released < self.block_frames() * SAMPLES_PER_FRAME:
            return None
        end = min(target, self._released + self._max_block * SAMPLES_PER_FRAME)
        samples = await self._decode_range(self._released, end, self._ended and end == total)
        self._released = end
        return samples

    async def _decode_range(self, start: int, end: int, to_end: bool) -> np.ndarray:
        """Decode samples [start, end) with enough context that they are exact."""
        first = max(0, start // SAMPLES_PER_FRAME - LEFT_CONTEXT_FRAMES)
        if to_end:
            last = len(self._frames)
        else:
            reach = end + RIGHT_REACH_SAMPLES
            last = min(len(self._frames), -(-reach // SAMPLES_PER_FRAME))
        window = np.asarray(self._frames[first:last], dtype=np.int64)
        audio = await self._decode(window)
        offset = first * SAMPLES_PER_FRAME
        return audio[start - offset : end - offset]


class StatefulStreamDecoder(StreamDecoder):
    """Step the stream's layer caches with each block of new frames, on the worker thread."""

    def __init__(
        self,
        worker: DecodeWorker,
        lead: LeadFn = lambda: 0.0,
        max_block_frames: int = STATEFUL_MAX_BLOCK_FRAMES,
        min_block_frames: int = 1,
    ) -> None:
        super().__init__(lead, max_block_frames, min_block_frames)
        self._worker = worker
        self._stream = SnacStream(worker.model, worker.tier.device)
        self._stepped = 0  # frames handed to the layer caches
        self._flushed = False

    async def next_block(self) -> np.ndarray | None:
        """Step the caches with one block of what is pending; at the end, flush them."""
        pending = len(self._frames) - self._stepped
        if self._flushed:
            return None
        if self._ended and pending <= self._max_block:
            self._flushed = True
            return await self._step(len(self._frames), final=True)
        if not self._ended and pending < self.block_frames():
            return None
        # Step as much of what is pending as one power-of-two block holds: a backlog stepped
        # in minimum-size blocks costs ~3x per frame and keeps the listener's lead from
        # growing (issue #10), and few distinct sizes keep oneDNN's per-shape primitives and
        # memory bounded (every new shape cost time and ~60-100 MB, BENCHMARKS.md).
        step = _power_of_two_at_most(min(pending, self._max_block))
        return await self._step(self._stepped + step, final=False)

    async def step_exactly(self, frames: Sequence[Frame]) -> np.ndarray:
        """Add frames and step them as one block, whatever their number (warm-up)."""
        self._frames.extend(frames)
        return await self._step(len(self._frames), final=False)

    async def _step(self, end: int, final: bool) -> np.ndarray:
        new = np.asarray(self._frames[self._stepped : end], dtype=np.int64).reshape(-1, 7)
        self._stepped = end
        return await self._worker.run(partial(self._stream.step, new, final))


def _power_of_two_at_most(frames: int) -> int:
    return 1 << (frames.bit_length() - 1)


async def warm_up(worker: DecodeWorker) -> None:
    """Decode random frames as streams of every block size do, so no listener pays for it.

    The first use of a shape costs (oneDNN primitives, the transposed convolutions' timing,
    each thread's own heap); a stream of each block size covers its first steps and its steady
    state, and one such stream per decode worker, side by side, keeps every worker busy.
    """
    await asyncio.gather(*(_warm_stream(worker, seed) for seed in range(worker.tier.workers)))


async def _warm_stream(worker: DecodeWorker, seed: int) -> None:
    rng = np.random.default_rng(seed)
    decoder = open_stream(worker, lambda: 0.0)
    size = 1
    while size <= decoder.max_block_frames:
        decoder = open_stream(worker, lambda: 0.0)
        for _ in range(4):
            codes = rng.integers(0, 4096, size=(size, 7))
            frames = [cast(Frame, tuple(int(c) for c in frame)) for frame in codes]
            if isinstance(decoder, StatefulStreamDecoder):
                await decoder.step_exactly(frames)
            else:
                decoder.add(frames)
                await drain(decoder)
        decoder.end()
        await drain(decoder)
        size *= 2


async def drain(decoder: StreamDecoder) -> list[np.ndarray]:
    """Decode every block that is ready; return their samples."""
    blocks = []
    while (samples := await decoder.next_block()) is not None:
        blocks.append(samples)
    return blocks


def open_stream(worker: DecodeWorker, lead: LeadFn) -> StreamDecoder:
    """Create a stream decoder of the worker tier's strategy."""
    if worker.tier.decode_mode == "stateful":
        return StatefulStreamDecoder(worker, lead)
    return WindowedStreamDecoder(worker.decode, lead)
