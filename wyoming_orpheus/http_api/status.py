"""GET /health and /metrics: is it ready, and how is it doing."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .. import __version__
from ..engine import Engine
from ..fetch.progress import Downloads
from ..managed.server import ManagedLlamaServer
from ..metrics import CONTENT_TYPE
from ..upstream.rate import RollingRate


def health_body(
    engine: Engine | None,
    draining: bool,
    managed: ManagedLlamaServer | None = None,
    downloads: Downloads | None = None,
) -> tuple[int, dict[str, Any]]:
    """Return the status code and body: 200 when ready, 503 while starting or stopping."""
    extra: dict[str, Any] = {}
    if managed is not None:
        extra["llm_server"] = managed.status()
    fetching = downloads.active() if downloads is not None else []
    if fetching:
        extra["downloading"] = fetching
    if engine is None:
        status = "downloading" if fetching else "starting"
        return 503, {"status": status, "ready": False, "version": __version__, **extra}
    llm_up = managed is None or managed.running
    ready = not draining and llm_up
    if draining:
        status = "stopping"
    elif not llm_up:
        # Before its first health answer it is starting; later it crashed and is restarting.
        status = "llm-restarting" if managed is not None and managed.ready.is_set() else "starting"
    else:
        status = "ok"
    synthesizer = engine.synthesizer
    tier = engine.tier
    return (200 if ready else 503), {
        "status": status,
        "ready": ready,
        "version": __version__,
        **extra,
        "snac_loaded": True,
        "device": {"kind": engine.facts.kind, "name": engine.facts.name},
        "tier": {
            "name": tier.name,
            "decode_mode": tier.decode_mode,
            "batch_size": tier.batch_size,
            "threads": tier.threads,
            "compile": tier.compile,
        },
        "syntheses": {
            "running": synthesizer.stats.active,
            "queued": synthesizer.stats.queued,
            "max": synthesizer.max_concurrent,
        },
        "upstreams": [
            {
                "url": u.url,
                "api": u.settings.api,
                "state": "cooling-down" if engine.pool.cooling_down(u) else "ok",
                "in_flight": u.in_flight,
                "slots": u.slots,
                "last_error": u.last_error,
                **_speed(u.rate),
                # Per request, by how many ran at once: how this server batches (issue 29).
                "tokens_per_second_at": {
                    str(running): round(tokens, 1)
                    for running, rate in sorted(u.rate_at.items())
                    if (tokens := rate.tokens_per_second()) is not None
                },
            }
            for u in engine.pool.upstreams
        ],
    }


def _speed(rate: RollingRate) -> dict[str, Any]:
    """An LLM server's speed over its last requests (None before one was measured)."""
    tokens = rate.tokens_per_second()
    factor = rate.real_time_factor()
    return {
        "tokens_per_second": None if tokens is None else round(tokens, 1),
        "real_time_factor": None if factor is None else round(factor, 3),
        "keeps_real_time": None if factor is None else factor >= 1.0,
    }


async def metrics(request: web.Request, engine: Engine) -> web.Response:
    """Serve the Prometheus text exposition."""
    response = web.Response(body=engine.metrics.exposition())
    response.headers["Content-Type"] = CONTENT_TYPE
    return response
