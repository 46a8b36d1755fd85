"""SNAC loading and the shared decode worker that batches windows of all live streams."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn.utils import parametrize

from .hardware import Tier
from .hub import Downloads, HubError, fetch_file
from .memory import release_free_memory

_LOGGER = logging.getLogger(__name__)

SAMPLE_RATE = 24000
SAMPLES_PER_FRAME = 2048
SNAC_FILES = ("config.json", "pytorch_model.bin")

# Frame slot -> (level, position within the frame): slot 0 is level 0; slots 1 and 4 are
# level 1; slots 2, 3, 5, 6 are level 2, in that order (REFERENCE.md section 1).
_LEVEL1_SLOTS = [1, 4]
_LEVEL2_SLOTS = [2, 3, 5, 6]


# Seconds the decode worker must be idle before freed heap goes back to the OS.
_IDLE_TRIM_SECONDS = 1.0


class CodecLoadError(Exception):
    """SNAC could not be loaded; the message says what to fix."""


def load_snac(path_or_id: str, device: str, downloads: Downloads | None = None) -> torch.nn.Module:
    """Load SNAC from a local directory or a hub id, ready for fast inference."""
    from snac import SNAC  # import here: snac pulls in huggingface_hub

    local = local_snac_dir(path_or_id) or _fetch_snac(path_or_id, downloads or Downloads())
    try:
        model = SNAC.from_pretrained(str(local))
    except Exception as err:
        raise CodecLoadError(
            f"cannot load SNAC model '{path_or_id}': {err}. Give --snac-model a local directory "
            "with config.json and pytorch_model.bin, or a reachable hub id."
        ) from err
    model.encoder = torch.nn.Identity()  # TTS only decodes; free the encoder's memory
    _remove_weight_norm(model)
    return model.eval().to(device)


def local_snac_dir(path_or_id: str) -> Path | None:
    """Return the local SNAC directory it names, None for a hub id; a bad path raises."""
    local = Path(path_or_id).expanduser()
    if local.exists() and not (local / "config.json").is_file():
        raise CodecLoadError(f"SNAC directory {local} has no config.json")
    if not local.exists() and path_or_id.startswith(("/", ".", "~")):
        raise CodecLoadError(f"SNAC directory {local} does not exist")
    return local if local.exists() else None


def _fetch_snac(repo: str, downloads: Downloads) -> Path:
    """Fetch SNAC's two files by the same path as the GGUF (cache, resume, progress)."""
    try:
        for name in SNAC_FILES:
            path = fetch_file(repo, name, downloads)
    except HubError as err:
        raise CodecLoadError(
            f"cannot load SNAC model '{repo}': {err}. Give --snac-model a local directory "
            "with config.json and pytorch_model.bin, or a reachable hub id."
        ) from None
    return path.parent


def _remove_weight_norm(model: torch.nn.Module) -> None:
    """Fold weight-norm parametrizations into plain weights once.

    NOTE: SNAC recomputes weight norm on every call; folding gives the same function
    and was 20-30% faster on CPU (REFERENCE.md section 2).
    """
    for module in model.modules():
        if parametrize.is_parametrized(module):
            names = list(module.parametrizations.keys())  # type: ignore[union-attr,operator]
            for name in names:
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)


def frames_to_codes(frames: np.ndarray) -> list[np.ndarray]:
    """Split (B, T, 7) frame codes into SNAC's three levels: (B,T), (B,2T), (B,4T)."""
    batch = frames.shape[0]
    return [
        frames[:, :, 0],
        frames[:, :, _LEVEL1_SLOTS].reshape(batch, -1),
        frames[:, :, _LEVEL2_SLOTS].reshape(batch, -1),
    ]


def decode_batch(model: torch.nn.Module, frames: np.ndarray, device: str) -> np.ndarray:
    """Decode (B, T, 7) frames into (B, T*2048) float32 samples."""
    codes = [torch.from_numpy(level).to(device) for level in frames_to_codes(frames)]
    with torch.inference_mode():
        audio: torch.Tensor = model.decode(codes)  # type: ignore[operator]
    return audio[:, 0, :].float().cpu().numpy()


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
        """Stop the worker threads after the queued work."""
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()
        self._threads = []

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
        if not self._threads:
            raise RuntimeError("decode worker is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()
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
