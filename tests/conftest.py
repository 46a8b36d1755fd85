"""Fixtures: the LLM stand-in, the SNAC stand-in, settings, an engine and a Wyoming server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.managed_process import ManagedProcess, stop_and_show
from tests.stand_ins.llm_server import OrpheusStandIn
from tests.stand_ins.snac_model import write_snac_model
from tests.stand_ins.tiny_orpheus_gguf import write_tiny_orpheus
from wyoming_orpheus.config import Settings, UpstreamSettings
from wyoming_orpheus.decode.snac import load_snac
from wyoming_orpheus.engine import Engine
from wyoming_orpheus.http_api import HttpServer, HttpState
from wyoming_orpheus.wyoming_server.handler import build_info
from wyoming_orpheus.wyoming_server.listener import WyomingServer


@pytest.fixture(scope="session")
def snac_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The narrow SNAC stand-in (real rates and reach), random weights, noise off."""
    return write_snac_model(tmp_path_factory.mktemp("snac"), seed=0, noise=False, narrow=True)


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny GGUF with Orpheus's token layout that the real llama-server serves."""
    return write_tiny_orpheus(tmp_path_factory.mktemp("gguf") / "orpheus-tiny-q8_0.gguf")


@pytest.fixture
async def servers() -> AsyncIterator[list[ManagedProcess]]:
    """Server processes a test starts; killed (with their llama-servers) afterwards."""
    started: list[ManagedProcess] = []
    yield started
    await stop_and_show(started)


@pytest.fixture(scope="session")
def snac_model(snac_dir: Path) -> torch.nn.Module:
    """The stand-in loaded once through the product's loading path (for expected audio)."""
    return load_snac(str(snac_dir), "cpu")


@pytest.fixture
async def llm() -> AsyncIterator[OrpheusStandIn]:
    """A running Orpheus LLM stand-in."""
    server = OrpheusStandIn()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def make_settings(snac_dir: Path, llm: OrpheusStandIn) -> Callable[..., Settings]:
    """Build Settings pointing at the stand-ins; keyword arguments override fields."""

    def make(**overrides: Any) -> Settings:
        base = Settings.of(
            uri="tcp://127.0.0.1:0",
            upstreams=(UpstreamSettings(llm.base_url),),
            snac_model=str(snac_dir),
            device="cpu",
            first_token_timeout=5,
            stall_timeout=2,
            upstream_cooldown=0,
            http_host="127.0.0.1",
            http_port=0,
            warm_up=False,  # tests/test_stream_decoder.py covers it; each engine would pay it
            # Keep-alive silence before speech has its own tests (test_playout_doors.py,
            # test_playout.py); the rest compare their audio with an exact decode.
            playout_keepalive=False,
        )
        return base.but(**overrides)

    return make


@pytest.fixture
async def engine_factory() -> AsyncIterator[Callable[[Settings], Any]]:
    """Create engines that are closed after the test."""
    engines: list[Engine] = []

    async def create(settings: Settings) -> Engine:
        engine = await Engine.create(settings)
        engines.append(engine)
        return engine

    yield create
    for engine in engines:
        await engine.close()


@pytest.fixture
async def engine(make_settings: Callable[..., Settings], engine_factory: Any) -> Engine:
    """An engine on the stand-ins with default settings."""
    return await engine_factory(make_settings())  # type: ignore[no-any-return]


@pytest.fixture
async def wyoming_server(engine: Engine, wyoming_factory: Any) -> WyomingServer:
    """A Wyoming server on a free loopback port."""
    return await wyoming_factory(engine)  # type: ignore[no-any-return]


@pytest.fixture
async def server_factory(
    make_settings: Callable[..., Settings], engine_factory: Any, wyoming_factory: Any
) -> Callable[..., Any]:
    """Start Wyoming servers over engines with settings overrides; shut down after the test."""

    async def create(**overrides: object) -> WyomingServer:
        return await wyoming_factory(await engine_factory(make_settings(**overrides)))  # type: ignore[no-any-return]

    return create


@pytest.fixture
async def wyoming_factory() -> AsyncIterator[Callable[[Engine], Any]]:
    """Start Wyoming doors over engines on free loopback ports; shut down after the test."""
    servers: list[WyomingServer] = []

    async def start(engine: Engine) -> WyomingServer:
        server = WyomingServer(
            engine.settings.wyoming.uri,
            build_info(engine.synthesizer.catalog, True),
            engine.synthesizer,
            engine.settings.limits,
        )
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.shutdown(grace=0)


@pytest.fixture
async def http_factory() -> AsyncIterator[Callable[[Engine], Any]]:
    """Start HTTP doors over engines on free loopback ports; return their base URLs."""
    servers: list[HttpServer] = []

    async def start(engine: Engine) -> str:
        server = HttpServer(HttpState(engine.settings, engine))
        await server.start()
        servers.append(server)
        return f"http://127.0.0.1:{server.port}"

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
async def http_url(engine: Engine, http_factory: Any) -> str:
    """The HTTP door over the default engine."""
    return await http_factory(engine)  # type: ignore[no-any-return]
