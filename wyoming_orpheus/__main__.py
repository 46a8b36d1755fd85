"""Command line entry point: settings, logging, wiring, start and stop."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from .cli import load_settings
from .codec import CodecLoadError
from .config import ConfigError, Settings
from .discovery import Advertiser
from .engine import Engine
from .http_api import HttpServer, HttpState
from .wyoming_handler import build_info
from .wyoming_server import WyomingServer

_LOGGER = logging.getLogger(__name__)
_PROG = "wyoming-orpheus"


async def serve(settings: Settings) -> None:
    """Run both doors until SIGTERM or SIGINT, then shut down gracefully."""
    # Handle signals from the start: a stop during start-up still shuts down cleanly.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_stop_signal, stop, sig)
    # The HTTP door opens first so /health answers ("starting", 503) while SNAC loads.
    http_state = HttpState(settings)
    http = HttpServer(http_state) if settings.http_enabled else None
    try:
        if http is not None:
            await http.start()
        engine = await Engine.create(settings)
        http_state.engine = engine
        loop.add_signal_handler(signal.SIGHUP, engine.reload)  # the lexicon, without a restart
        try:
            await _serve_wyoming(settings, engine, stop, http)
        finally:
            await engine.close()
    finally:
        if http is not None:
            await http.stop()  # no-op when already stopped


def _on_stop_signal(stop: asyncio.Event, sig: signal.Signals) -> None:
    """First SIGTERM/SIGINT: drain gracefully. Second: exit at once (an impatient operator,
    or a supervisor that gives up waiting), without waiting for any synthesis."""
    if not stop.is_set():
        stop.set()
        return
    _LOGGER.warning("Second %s: exiting now, in-flight syntheses are cut", sig.name)
    logging.shutdown()
    os._exit(128 + sig.value)


async def _serve_wyoming(
    settings: Settings, engine: Engine, stop: asyncio.Event, http: HttpServer | None
) -> None:
    """Serve Wyoming (and zeroconf) until stop is set; then drain both doors at once."""
    info = build_info(engine.synthesizer.catalog, settings.streaming)
    server = WyomingServer(settings.uri, info, engine.synthesizer)
    advertiser: Advertiser | None = None
    try:
        await server.start()
        if settings.zeroconf is not None and settings.uri.startswith("tcp://"):
            advertiser = Advertiser(settings.zeroconf, server.host, server.port)
            await advertiser.start()
        await stop.wait()
        _LOGGER.info("Shutting down")
    finally:
        if advertiser is not None:
            await advertiser.stop()
        # Each door lets its in-flight syntheses finish within shutdown_grace.
        await asyncio.gather(
            server.shutdown(settings.shutdown_grace),
            *([http.stop()] if http is not None else []),
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Parse settings and run; return the exit code."""
    try:
        settings = load_settings(argv, os.environ, Path.cwd())
    except ConfigError as err:
        print(f"{_PROG}: error: {err}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.DEBUG if settings.debug else logging.INFO, format=settings.log_format
    )
    _raise_open_file_limit()
    try:
        asyncio.run(serve(settings))
    except ConfigError as err:
        print(f"{_PROG}: error: {err}", file=sys.stderr)
        return 2
    except (CodecLoadError, RuntimeError, OSError) as err:
        _LOGGER.error("Cannot start: %s", err)
        return 1
    return 0


def _raise_open_file_limit() -> None:
    """Allow as many sockets as the hard limit: wyoming_max_connections (1000) exceeds the
    common soft limit of 1024 files once the process's own files are counted."""
    try:
        import resource  # POSIX only

        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError) as err:
        _LOGGER.debug("Open file limit unchanged: %s", err)


def run() -> None:
    """Console script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
