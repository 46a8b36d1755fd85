"""Command line entry point: settings, logging, wiring, start and stop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from .config import ConfigError, Settings, UpstreamSettings, ignored_settings
from .config.cli import load_settings
from .decode.hardware import DeviceFacts, Tier, select_tier
from .decode.snac import CodecLoadError, local_snac_dir
from .engine import Engine
from .fetch.hub import HubError, fetch_gguf, parse_gguf_spec
from .fetch.progress import Downloads
from .fetch.release import ReleaseError, fetch_for_host
from .http_api import HttpServer, HttpState
from .managed.server import ManagedLlamaServer
from .managed.sizing import size_for
from .wyoming_server.discovery import Advertiser
from .wyoming_server.handler import build_info
from .wyoming_server.listener import WyomingServer

_LOGGER = logging.getLogger(__name__)
_PROG = "wyoming-orpheus"
T = TypeVar("T")
_CHATTY_LOGGERS = ("httpx2", "httpcore2", "httpx", "httpcore", "filelock", "urllib3")
FILES_RESERVED = 128
"""Open files kept for everything but client sockets: models, logs, LLM connections."""


async def serve(settings: Settings) -> None:
    """Run both doors until SIGTERM or SIGINT, then shut down gracefully."""
    # Handle signals from the start: a stop during start-up still shuts down cleanly.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_stop_signal, stop, sig)
    # Managed mode's binary and options are checked before anything starts (exit 2).
    managed = ManagedLlamaServer.locate(settings.managed) if not settings.llm.upstreams else None
    downloads = Downloads()
    # The HTTP door opens first so /health answers ("starting", 503) while models load.
    http_state = HttpState(settings, downloads=downloads, managed=managed)
    http = HttpServer(http_state) if settings.http.http_enabled else None
    try:
        if http is not None:
            await http.start()
        hardware = select_tier(settings.decoder)
        if managed is not None:
            # A wrong path fails before a long download (llama.cpp's release, the GGUF).
            local_snac_dir(settings.decoder.snac_model)
            parse_gguf_spec(settings.managed.llm_gguf)
            started = await _start_managed(settings, managed, hardware, downloads, stop)
            if started is None:
                return  # stopped while downloading
            settings = started
        engine = await Engine.create(settings, hardware, downloads, managed)
        http_state.engine = engine
        loop.add_signal_handler(signal.SIGHUP, engine.reload)  # the lexicon, without a restart
        try:
            await _serve_wyoming(settings, engine, stop, http)
        finally:
            await engine.close()
    finally:
        if http is not None:
            await http.stop()  # no-op when already stopped
        if managed is not None:
            await managed.stop()  # after the doors drained: their syntheses needed it


async def _start_managed(
    settings: Settings,
    managed: ManagedLlamaServer,
    hardware: tuple[DeviceFacts, Tier],
    downloads: Downloads,
    stop: asyncio.Event,
) -> Settings | None:
    """Fetch what is missing (the binary, the GGUF), start llama-server, and return settings
    that call it (None: stopped)."""
    if managed.binary is None:
        found = await _unless_stopped(
            _in_daemon_thread(
                fetch_for_host, settings.managed.llama_release_api, managed.host_gpus, downloads
            ),
            stop,
        )
        if found is None:
            return None
        # use() runs it (--help): in a thread, as the doors are open now.
        await _unless_stopped(_in_daemon_thread(managed.use, *found), stop)
        if managed.binary is None:
            return None  # stopped before it was checked
    fetch = _in_daemon_thread(fetch_gguf, settings.managed.llm_gguf, downloads)
    model = await _unless_stopped(fetch, stop)
    if model is None:
        return None
    facts, tier = hardware
    # The build's own device list when it has one; else what PyTorch sees.
    gpu = bool(managed.gpus) if managed.gpus is not None else facts.kind != "cpu"
    sizing = size_for(settings, tier.max_concurrent, gpu=gpu)
    managed.start(model, sizing)
    # The sentence plans know the server's slots (issue 29): ours, or the user's -np.
    return settings.but(upstreams=(UpstreamSettings(managed.url, slots=managed.slots(sizing)),))


def _in_daemon_thread(function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """Run a blocking call in a daemon thread: a stop mid-download need not wait for it.

    NOTE: asyncio.to_thread's executor threads are joined at exit, so a stop during a
    multi-GB download would wait for the download.
    """
    done: concurrent.futures.Future[T] = concurrent.futures.Future()

    def run() -> None:
        done.set_running_or_notify_cancel()  # running: a stop's cancel leaves it to finish
        try:
            done.set_result(function(*args))
        except BaseException as err:  # handed to the awaiting task, which raises it
            done.set_exception(err)

    threading.Thread(target=run, name=function.__name__, daemon=True).start()
    return asyncio.wrap_future(done)


async def _unless_stopped(work: Awaitable[T], stop: asyncio.Event) -> T | None:
    """Await work, or return None as soon as stop is set."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait([task, stopped], return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if not task.done():
        task.cancel()
        return None
    return task.result()


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
    info = build_info(engine.synthesizer.catalog, settings.wyoming.streaming)
    server = WyomingServer(settings.wyoming.uri, info, engine.synthesizer, engine.settings.limits)
    advertiser: Advertiser | None = None
    probe: asyncio.Task[None] | None = None
    try:
        await server.start()
        if engine.managed is not None:
            # NOTE: issue 18: not advertised before the model server answers its health check.
            await _unless_stopped(engine.managed.ready.wait(), stop)
            probe = asyncio.create_task(engine.report_llm_speed())
        tcp = settings.wyoming.uri.startswith("tcp://")
        if settings.wyoming.zeroconf is not None and tcp and not stop.is_set():
            advertiser = Advertiser(settings.wyoming.zeroconf, server.host, server.port)
            await advertiser.start()
        await stop.wait()
        _LOGGER.info("Shutting down")
    finally:
        if probe is not None:
            probe.cancel()
            await asyncio.wait([probe])  # re-raises a cancellation of ours, swallows none
        if advertiser is not None:
            await advertiser.stop()
        # Each door lets its in-flight syntheses finish within shutdown_grace.
        await asyncio.gather(
            server.shutdown(settings.process.shutdown_grace),
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
        level=logging.DEBUG if settings.process.debug else logging.INFO,
        format=settings.process.log_format,
    )
    # The hub client's libraries log every socket step at DEBUG: llama-server's lines and ours
    # would drown in them.
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for said in ignored_settings(settings):
        _LOGGER.warning("Ignored: %s", said)
    settings = fit_connections(settings, _raise_open_file_limit())
    try:
        asyncio.run(serve(settings))
    except ConfigError as err:
        print(f"{_PROG}: error: {err}", file=sys.stderr)
        return 2
    except (CodecLoadError, HubError, ReleaseError, RuntimeError, OSError) as err:
        _LOGGER.error("Cannot start: %s", err)
        return 1
    return 0


def _raise_open_file_limit() -> int | None:
    """Allow as many sockets as the hard limit: wyoming_max_connections (1000) exceeds the
    common soft limit of 1024 files once the process's own files are counted."""
    try:
        import resource  # POSIX only

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY:
            hard = max(soft, 1 << 20)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        _LOGGER.info("Open files: up to %d (soft limit was %d)", hard, soft)
        return int(hard)
    except (ImportError, ValueError, OSError) as err:
        _LOGGER.debug("Open file limit unchanged: %s", err)
        return None


def fit_connections(settings: Settings, open_files: int | None) -> Settings:
    """Lower the connection limits to what the open-file limit can hold, and say so.

    NOTE: issue 19: at the descriptor limit accept() fails and nobody new is served, while
    under wyoming_max_connections the idle-longest connection makes room; so the limits
    must be reached first.
    """
    wanted = settings.limits.wyoming_max_connections + (
        settings.limits.http_max_connections if settings.http.http_enabled else 0
    )
    if open_files is None or wanted + FILES_RESERVED <= open_files:
        return settings
    share = max(open_files - FILES_RESERVED, 2) / wanted
    fitted = settings.but(
        wyoming_max_connections=max(1, int(settings.limits.wyoming_max_connections * share)),
        http_max_connections=max(1, int(settings.limits.http_max_connections * share)),
    )
    _LOGGER.warning(
        "The open-file limit (%d) holds %d Wyoming and %d HTTP connections, fewer than "
        "configured (%d, %d); raise it (ulimit -n) for more",
        open_files,
        fitted.limits.wyoming_max_connections,
        fitted.limits.http_max_connections,
        settings.limits.wyoming_max_connections,
        settings.limits.http_max_connections,
    )
    return fitted


def run() -> None:
    """Console script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
