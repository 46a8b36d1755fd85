"""The shared engine both front doors use: voices, upstream pool, SNAC worker, synthesizer."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from .config import ConfigError, Settings
from .decode.hardware import DeviceFacts, Tier, select_tier
from .decode.memory import release_free_memory
from .decode.snac import load_snac
from .decode.streams import warm_up
from .decode.worker import DecodeWorker
from .fetch.progress import Downloads
from .format import REAL_TIME_TOKENS_PER_SECOND
from .loop_lag import LoopLag
from .managed.server import ManagedLlamaServer
from .metrics import Metrics
from .synthesis.synthesizer import Synthesizer
from .text import LexiconError, NormalizeOptions, TextPipeline
from .upstream.completion import UpstreamError
from .upstream.pool import UpstreamPool
from .voices import VoiceCatalog, builtin_name, unknown_binding_entries, voices_for_binding

_LOGGER = logging.getLogger(__name__)


def check_voices(settings: Settings) -> VoiceCatalog:
    """Build the catalog; unknown voice bindings or an unoffered default voice are errors."""
    for index, upstream in enumerate(settings.llm.upstreams):
        unknown = unknown_binding_entries(upstream.voices)
        if unknown:
            raise ConfigError(
                f"upstreams[{index}] voices names no known voice or language: {', '.join(unknown)}"
            )
        taken = [v.name for v in upstream.custom_voices if builtin_name(v.name)]
        if taken:
            raise ConfigError(
                f"upstreams[{index}] custom voice {', '.join(taken)} has a built-in voice's "
                "name; list the name as a plain entry to bind the built-in voice instead"
            )
    catalog = VoiceCatalog(
        voices_for_binding(u.voices, u.custom_voices) for u in settings.llm.upstreams
    )
    if catalog.get(settings.speech.voice) is None:
        offered = ", ".join(v.name for v in catalog.voices)
        raise ConfigError(
            f"voice={settings.speech.voice!r} is not offered by any upstream ({offered})"
        )
    return catalog


def text_pipeline(settings: Settings) -> TextPipeline:
    """Build the text pipeline; a lexicon that cannot be read is a configuration error."""
    options = NormalizeOptions(settings.speech.normalize, settings.speech.normalize_urls)
    try:
        return TextPipeline(options, settings.speech.lexicon)
    except LexiconError as err:
        raise ConfigError(f"lexicon={settings.speech.lexicon!r}: {err}") from None


@dataclass
class Engine:
    """Everything a synthesis needs, started and stopped together."""

    settings: Settings
    facts: DeviceFacts
    tier: Tier
    pool: UpstreamPool
    worker: DecodeWorker
    synthesizer: Synthesizer
    metrics: Metrics
    managed: ManagedLlamaServer | None = None
    """Managed mode's own llama-server (started and stopped by the entry point)."""
    lag: LoopLag | None = None
    """The event loop's lag, sampled while the engine runs (loop_lag.py)."""
    _lag_task: asyncio.Task[None] | None = field(default=None, init=False, repr=False)

    @classmethod
    async def create(
        cls,
        settings: Settings,
        hardware: tuple[DeviceFacts, Tier] | None = None,
        downloads: Downloads | None = None,
        managed: ManagedLlamaServer | None = None,
    ) -> Engine:
        """Check voices, pick the hardware tier, load SNAC (off the event loop) and start."""
        catalog = check_voices(settings)
        text = text_pipeline(settings)  # a bad lexicon fails before SNAC loads
        facts, tier = hardware or select_tier(settings.decoder)
        _LOGGER.info("Loading SNAC from %s", settings.decoder.snac_model)
        model = await asyncio.to_thread(
            load_snac, settings.decoder.snac_model, tier.device, downloads
        )
        metrics = Metrics()
        worker = DecodeWorker(model, tier, metrics.decode_step.observe)
        worker.start()
        pool = UpstreamPool(
            settings.llm,
            settings.requests,
            settings.sampling,
            down_reason=managed.down_reason if managed else None,
        )
        await pool.start()
        for upstream in pool.upstreams:
            metrics.track_upstream(upstream.url, upstream.rate.real_time_factor)
        synthesizer = Synthesizer(
            settings.speech,
            settings.playout,
            settings.decoder.queue_timeout,
            catalog,
            pool,
            worker,
            tier.max_concurrent,
            metrics,
            text,
        )
        if settings.decoder.warm_up:
            await _warm(worker)
        lag = LoopLag(metrics.loop_lag.observe)
        engine = cls(settings, facts, tier, pool, worker, synthesizer, metrics, managed, lag)
        engine._lag_task = asyncio.create_task(lag.run())
        return engine

    async def report_llm_speed(self) -> None:
        """Time a short generation; log the LLM's speed against real time (managed mode).

        NOTE: issue 23: below real time the speech starts later (adaptive playout) or
        stutters; the household should hear why from the log, not guess.
        """
        voice = self.synthesizer.resolve_voice(None).name
        try:
            rate = await self.pool.probe(voice)
        except UpstreamError as err:
            _LOGGER.warning("LLM speed probe failed: %s", err)
            return
        if rate is None:
            _LOGGER.info("LLM: too few audio tokens in the speed probe to tell its speed")
            return
        factor = rate / REAL_TIME_TOKENS_PER_SECOND
        _LOGGER.info("LLM: %.0f tokens/s = %.2f x real time", rate, factor)
        if factor < 1:
            _LOGGER.warning(
                "The LLM is slower than real time (%.0f of %.0f tokens/s): answers start "
                "later so they play without gaps (playout: adaptive) or stutter (immediate). "
                "What helps: the GPU (a CUDA, Vulkan or Metal llama-server with all layers on "
                "it, --llm-gpu-layers all), a smaller quantization (Q4_K_M), fewer syntheses "
                "at once (--max-concurrent)",
                rate,
                REAL_TIME_TOKENS_PER_SECOND,
            )

    def reload(self) -> None:
        """Re-read what can change without a restart (SIGHUP): the lexicon."""
        self.synthesizer.text.reload_lexicon()

    async def close(self) -> None:
        """Stop watching the loop, close upstream connections and stop the decode worker."""
        if self._lag_task is not None:
            self._lag_task.cancel()
            await asyncio.wait([self._lag_task])  # re-raises a cancellation of ours
        await self.pool.close()
        await asyncio.to_thread(self.worker.stop)


async def _warm(worker: DecodeWorker) -> None:
    """Decode every block size once before serving, so the first listener waits no longer."""
    started = time.monotonic()
    try:
        await warm_up(worker)
    except Exception:  # a failed warm-up costs speed, never the service
        _LOGGER.exception("Decoder warm-up failed")
        return
    release_free_memory()  # what the warm-up freed: an idle server stays small
    _LOGGER.info("Decoder warmed up in %.1f s", time.monotonic() - started)
