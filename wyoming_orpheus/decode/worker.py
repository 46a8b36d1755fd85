"""The decode workers: threads that take queued decode jobs and batch windows of all streams."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import Unavailable
from .hardware import Tier
from .memory import release_free_memory
from .snac import decode_batch

_LOGGER = logging.getLogger(__name__)

# Seconds the decode worker must be idle before freed heap goes back to the OS.
_IDLE_TRIM_SECONDS = 1.0


@dataclass
class _Job:
    frames: np.ndarray  # (T, 7) int64: a window to batch; unused for a call
    future: asyncio.Future[np.ndarray]
    loop: asyncio.AbstractEventLoop
    call: Callable[[], np.ndarray] | None = None
    """A stream's own decode step (stateful mode), run as is."""


@dataclass
class DecodeStats:
    """How well windows were batched: batch size -> number of batched calls."""

    batch_sizes: dict[int, int] = field(default_factory=dict)


class DecodeWorker:
    """One thread per device: takes queued windows, batches equal lengths, decodes them."""

    def __init__(
        self,
        model: torch.nn.Module,
        tier: Tier,
        observe_step: Callable[[float], None] = lambda seconds: None,
    ) -> None:
        self._model = model
        self._tier = tier
        self._observe_step = observe_step
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._accepting = False
        self._lock = threading.Lock()
        """Makes "still accepting" and "queued" one step, so no job lands after the stop."""
        self.stats = DecodeStats()
        if tier.compile and tier.decode_mode == "windowed":
            # NOTE: ~40 s to compile on CPU (REFERENCE.md); only when asked for or on GPU tiers.
            decoder = self._model.get_submodule("decoder")
            self._model.decoder = torch.compile(decoder, dynamic=True)  # type: ignore[assignment]
        elif tier.compile:
            # The stateful decoder runs the decoder's layers one by one, not the module whole.
            _LOGGER.warning("compile applies to the windowed decoder only; ignored")

    def start(self) -> None:
        """Start the worker threads (the tier's `workers`, each taking whole jobs)."""
        self._accepting = True
        if not self._threads:
            if self._tier.device == "cpu":
                torch.set_num_threads(self._tier.threads)
            for index in range(max(1, self._tier.workers)):
                thread = threading.Thread(
                    target=self._run, name=f"snac-decode-{index}", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def stop(self) -> None:
        """Stop the worker threads after the queued work; later jobs fail at once."""
        with self._lock:
            self._accepting = False
            for _ in self._threads:
                self._queue.put(None)
        for thread in self._threads:
            thread.join()
        self._threads = []
        # NOTE: issue 25: a job queued behind the stop signals was never answered, and its
        # stream waited forever. Whatever is left gets the stop as its answer.
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if job is not None:
                job.loop.call_soon_threadsafe(_settle, job.future, None, _stopped())

    @property
    def model(self) -> torch.nn.Module:
        """Return the loaded SNAC model."""
        return self._model

    @property
    def tier(self) -> Tier:
        """Return the hardware tier the worker runs."""
        return self._tier

    async def decode(self, frames: np.ndarray) -> np.ndarray:
        """Decode one window of (T, 7) frame codes into T*2048 samples, off the event loop."""
        return await self._submit(np.ascontiguousarray(frames, dtype=np.int64), None)

    async def run(self, call: Callable[[], np.ndarray]) -> np.ndarray:
        """Run a stream's decode step on the worker thread (torch work stays off the loop)."""
        return await self._submit(np.zeros((0, 7), dtype=np.int64), call)

    async def _submit(
        self, frames: np.ndarray, call: Callable[[], np.ndarray] | None
    ) -> np.ndarray:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()
        with self._lock:
            if not self._accepting:
                raise _stopped()
            self._queue.put(_Job(frames, future, loop, call))
        return await future

    def _run(self) -> None:
        worked = False
        while True:
            try:
                first = self._queue.get(timeout=_IDLE_TRIM_SECONDS if worked else None)
            except queue.Empty:
                release_free_memory()
                worked = False
                continue
            if first is None:
                return
            worked = True
            if first.call is not None:
                # A stream's own step batches with nothing: run it at once, and leave what
                # else is queued to the other workers.
                self._decode_jobs([first])
                continue
            jobs = [first, *self._collect(self._tier.batch_size - 1)]
            stop = jobs[-1] is None
            self._decode_jobs([job for job in jobs if job is not None])
            if stop:
                return

    def _collect(self, room: int) -> list[_Job | None]:
        """Take what else is queued, waiting at most the tier's collection window."""
        jobs: list[_Job | None] = []
        deadline = time.monotonic() + self._tier.collect_ms / 1000
        while len(jobs) < room:
            remaining = deadline - time.monotonic()
            try:
                job = (
                    self._queue.get(timeout=remaining)
                    if remaining > 0
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                break
            jobs.append(job)
            if job is None:
                break
        return jobs

    def _decode_jobs(self, jobs: list[_Job]) -> None:
        groups: dict[int, list[_Job]] = {}
        for job in jobs:
            if job.call is not None:
                self._call(job)  # even if cancelled: a stream's state must stay consistent
            elif not job.future.cancelled():
                groups.setdefault(len(job.frames), []).append(job)
        for group in groups.values():
            started = time.perf_counter()
            try:
                audio = decode_batch(
                    self._model, np.stack([j.frames for j in group]), self._tier.device
                )
            except Exception as err:  # the stream gets the error; the worker lives on
                _LOGGER.exception("SNAC decode of %d windows failed", len(group))
                for job in group:
                    job.loop.call_soon_threadsafe(_settle, job.future, None, err)
                continue
            self._observe_step(time.perf_counter() - started)
            sizes = self.stats.batch_sizes
            sizes[len(group)] = sizes.get(len(group), 0) + 1
            for index, job in enumerate(group):
                job.loop.call_soon_threadsafe(_settle, job.future, audio[index], None)

    def _call(self, job: _Job) -> None:
        assert job.call is not None
        started = time.perf_counter()
        try:
            result = job.call()
        except Exception as err:
            _LOGGER.exception("SNAC stream step failed")
            job.loop.call_soon_threadsafe(_settle, job.future, None, err)
            return
        self._observe_step(time.perf_counter() - started)
        job.loop.call_soon_threadsafe(_settle, job.future, result, None)


def _settle(
    future: asyncio.Future[np.ndarray], result: np.ndarray | None, error: BaseException | None
) -> None:
    if future.done():
        return  # the stream was cancelled meanwhile
    if error is not None:
        future.set_exception(error)
    else:
        assert result is not None
        future.set_result(result)


def _stopped() -> Unavailable:
    return Unavailable("the decoder is stopped: the server is shutting down")
