"""Exact streaming SNAC decode of one stream: release only samples no later frame can change.

Two strategies give the same audio (a whole-utterance decode, to float rounding):
- windowed: decode the new frames with enough context that they are final; windows of all
  streams are batched by the decode worker (best on GPUs, where launches cost most);
- stateful: every decoder layer keeps what it still needs (snac_stream.py), so each frame is
  decoded once (best on CPUs, where compute costs most).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from functools import partial

import numpy as np

from .codec import SAMPLE_RATE, SAMPLES_PER_FRAME, DecodeWorker
from .snac_stream import SnacStream
from .tokens import Frame

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

    @property
    def frames(self) -> int:
        """Return how many frames were received."""
        return len(self._frames)

    def block_frames(self) -> int:
        """Return the least number of new frames worth a decode, given the lead: a power of 2."""
        by_lead = int(self._lead() / SECONDS_OF_LEAD_PER_FRAME)
        block = max(self._min_block, min(self._max_block, by_lead))
        # NOTE: few distinct block sizes mean few distinct tensor shapes, so the CPU backend
        # (oneDNN) reuses its compiled convolution primitives instead of building new ones.
        return 1 << (block.bit_length() - 1)

    @abstractmethod
    async def push(self, frames: Sequence[Frame]) -> np.ndarray | None:
        """Add frames; return newly final samples once a block is ready."""

    @abstractmethod
    async def finish(self) -> np.ndarray:
        """Return every sample not yet released (end of stream)."""


class WindowedStreamDecoder(StreamDecoder):
    """Decode the new samples inside a window with enough context on both sides."""

    def __init__(self, decode: DecodeFn, lead: LeadFn = lambda: 0.0, **kwargs: int) -> None:
        super().__init__(lead, **kwargs)
        self._decode = decode
        self._released = 0  # index of the next sample to release

    async def push(self, frames: Sequence[Frame]) -> np.ndarray | None:
        """Add frames; decode and return newly final samples once a block is ready."""
        self._frames.extend(frames)
        final = len(self._frames) * SAMPLES_PER_FRAME - RIGHT_REACH_SAMPLES
        if final - self._released < self.block_frames() * SAMPLES_PER_FRAME:
            return None
        return await self._release(final, ended=False)

    async def finish(self) -> np.ndarray:
        """Decode and return every sample not yet released (end of stream)."""
        total = len(self._frames) * SAMPLES_PER_FRAME
        if total <= self._released:
            return np.zeros(0, dtype=np.float32)
        return await self._release(total, ended=True)

    async def _release(self, final: int, ended: bool) -> np.ndarray:
        """Release samples up to `final`, in windows of at most max_block_frames new frames."""
        parts = []
        while self._released < final:
            end = min(final, self._released + self._max_block * SAMPLES_PER_FRAME)
            parts.append(await self._decode_range(self._released, end, ended and end == final))
            self._released = end
        return np.concatenate(parts)

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

    def __init__(self, worker: DecodeWorker, lead: LeadFn = lambda: 0.0, **kwargs: int) -> None:
        super().__init__(lead, **kwargs)
        self._worker = worker
        self._stream = SnacStream(worker.model, worker.tier.device)
        self._stepped = 0  # frames handed to the layer caches

    async def push(self, frames: Sequence[Frame]) -> np.ndarray | None:
        """Add frames; step the caches in whole blocks of new frames."""
        self._frames.extend(frames)
        parts = []
        # Step everything pending at once (up to the largest block): a backlog stepped in
        # minimum-size blocks costs ~3x per frame and keeps the listener's lead from growing.
        while (pending := len(self._frames) - self._stepped) >= self.block_frames():
            step = min(pending, self._max_block)
            parts.append(await self._step(self._stepped + step, final=False))
        samples = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
        return samples if len(samples) else None

    async def finish(self) -> np.ndarray:
        """Flush the caches: the stream's last samples."""
        return await self._step(len(self._frames), final=True)

    async def _step(self, end: int, final: bool) -> np.ndarray:
        new = np.asarray(self._frames[self._stepped : end], dtype=np.int64).reshape(-1, 7)
        self._stepped = end
        return await self._worker.run(partial(self._stream.step, new, final))


def open_stream(worker: DecodeWorker, lead: LeadFn) -> StreamDecoder:
    """Create a stream decoder of the worker tier's strategy."""
    if worker.tier.decode_mode == "stateful":
        return StatefulStreamDecoder(worker, lead)
    return WindowedStreamDecoder(worker.decode, lead)
