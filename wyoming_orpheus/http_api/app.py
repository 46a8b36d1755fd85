"""The aiohttp application factory and the server that starts and stops it."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler
from swagger_ui_bundle import swagger_ui_path

from ..config import Settings
from ..engine import Engine
from ..fetch.progress import Downloads
from ..managed.server import ManagedLlamaServer
from . import catalog, pages, speech, status
from .connections import ConnectionGuard
from .errors import ApiError, error_middleware
from .middlewares import auth_middleware, cors

_LOGGER = logging.getLogger(__name__)

EngineHandler = Callable[[web.Request, Engine], Awaitable[web.StreamResponse]]


@dataclass
class HttpState:
    """What the routes see: the engine once loaded, and whether the server is stopping."""

    settings: Settings
    engine: Engine | None = None
    draining: bool = False
    downloads: Downloads | None = None
    """Model files being fetched at start (shown in /health)."""
    managed: ManagedLlamaServer | None = None
    """Managed mode's llama-server (shown in /health; ready only once it answers)."""


STATE = web.AppKey("state", HttpState)


def _with_engine(handler: EngineHandler) -> Handler:
    """Give a route the engine, or answer 503 while it is loading or shutting down."""

    async def route(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE]
        if state.engine is None or state.draining:
            doing = "starting" if state.engine is None else "shutting down"
            raise ApiError(
                503,
                f"the server is {doing}; try again shortly",
                code="unavailable",
                headers={"Retry-After": "2"},
            )
        return await handler(request, state.engine)

    return route


async def _health(request: web.Request) -> web.Response:
    state = request.app[STATE]
    code, body = status.health_body(state.engine, state.draining, state.managed, state.downloads)
    return web.json_response(body, status=code)


def create_app(state: HttpState, guard: ConnectionGuard | None = None) -> web.Application:
    """Build the HTTP door: routes, middlewares and package assets."""
    settings = state.settings
    # client_max_size is aiohttp's own bound; read_json refuses earlier and with our envelope.
    app = web.Application(
        middlewares=[error_middleware], client_max_size=settings.http.http_max_body_bytes
    )
    if guard is not None:
        app.middlewares.insert(0, guard.middleware)
    if settings.http.http_cors_origins:
        app.middlewares.append(cors(app, settings.http.http_cors_origins))
    if settings.http.http_api_key:
        app.middlewares.append(auth_middleware(settings.http.http_api_key))
    app[STATE] = state
    router = app.router
    router.add_post("/v1/audio/speech", _with_engine(speech.speech))
    router.add_post("/speak", _with_engine(speech.speak))
    router.add_get("/v1/audio/voices", _with_engine(catalog.audio_voices))
    router.add_get("/v1/voices", _with_engine(catalog.voices))
    router.add_get("/v1/models", _with_engine(catalog.models))
    router.add_get("/health", _health)
    router.add_get("/metrics", _with_engine(status.metrics))
    router.add_get("/openapi.json", pages.openapi_json)
    router.add_get("/docs", pages.docs)
    router.add_get("/docs/openapi.json", pages.docs_openapi_json)
    router.add_get("/docs/assets/{filename}", pages.folder(Path(swagger_ui_path)))
    router.add_get("/", pages.index)
    router.add_get("/static/{filename}", pages.folder(pages.STATIC_DIR))
    return app


class HttpServer:
    """Serves the HTTP door on http_host:http_port."""

    def __init__(self, state: HttpState) -> None:
        self._state = state
        self._runner: web.AppRunner | None = None

    @property
    def port(self) -> int:
        """Return the bound port (the real one when port 0 was asked for)."""
        assert self._runner is not None and self._runner.addresses
        return int(self._runner.addresses[0][1])

    async def start(self) -> None:
        """Start listening; routes that need the engine answer 503 until it is set."""
        settings = self._state.settings
        guard = ConnectionGuard(settings.limits.http_max_connections)
        # NOTE: handler_cancellation: a client that disconnects cancels its handler at once,
        # which closes its synthesis and upstream request (REFERENCE.md 7: aiohttp's default
        # notices only at the next write, which may be 30 s away while the LLM starts).
        # keepalive_timeout: aiohttp closes a connection whose request line and headers are
        # not complete by then, counted from its opening or its last answer, so it is also
        # the header deadline against slowloris clients (issue 19).
        self._runner = web.AppRunner(
            create_app(self._state, guard),
            handler_cancellation=True,
            shutdown_timeout=settings.process.shutdown_grace,
            keepalive_timeout=settings.limits.http_header_timeout,
        )
        await self._runner.setup()
        assert self._runner.server is not None
        guard.attach(self._runner.server)
        site = web.TCPSite(self._runner, settings.http.http_host, settings.http.http_port)
        await site.start()
        _LOGGER.info("HTTP API listening on http://%s:%d", settings.http.http_host, self.port)

    async def stop(self) -> None:
        """Stop accepting; in-flight requests get shutdown_grace seconds to finish."""
        self._state.draining = True
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
