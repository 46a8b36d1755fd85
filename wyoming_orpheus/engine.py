"""The shared engine both front doors use: voices, upstream pool, SNAC worker, synthesizer."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from .codec import DecodeWorker, load_snac, release_free_memory
from .config import ConfigError, Settings
from .hardware import DeviceFacts, Tier, select_tier
from .metrics import Metrics
from .stream_decoder import warm_up
from .synthesis import Synthesizer
from .upstreams import UpstreamPool
from .voices import VoiceCatalog, unknown_binding_entries

_LOGGER = logging.getLogger(__name__)


def check_voices(settings: Settings) -> VoiceCatalog:
    """Build the catalog; unknown voice bindings or an unoffered default voice are errors."""
    for index, upstream in enumerate(settings.upstreams):
        unknown = unknown_binding_entries(upstream.voices)
        if unknown:
            raise ConfigError(
                f"upstreams[{index}] voices names no known voice or language: {', '.join(unknown)}"
            )
    catalog = VoiceCatalog(u.voices for u in settings.upstreams)
    if catalog.get(settings.voice) is None:
        offered = ", ".join(v.name for v in catalog.voices)
        raise ConfigError(f"voice={settings.voice!r} is not offered by any upstream ({offered})")
    return catalog


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

    @classmethod
    async def create(cls, settings: Settings) -> Engine:
        """Check voices, pick the hardware tier, load SNAC (off the event loop) and start."""
        catalog = check_voices(settings)
        facts, tier = select_tier(settings)
        _LOGGER.info("Loading SNAC from %s", settings.snac_model)
        model = await asyncio.to_thread(load_snac, settings.snac_model, tier.device)
        metrics = Metrics()
        worker = DecodeWorker(model, tier, metrics.decode_step.observe)
        worker.start()
        pool = UpstreamPool(settings)
        await pool.start()
        synthesizer = Synthesizer(settings, catalog, pool, worker, tier.max_concurrent, metrics)
        if settings.warm_up:
            await _warm(worker)
        return cls(settings, facts, tier, pool, worker, synthesizer, metrics)

    async def close(self) -> None:
        """Close upstream connections and stop the decode worker."""
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
