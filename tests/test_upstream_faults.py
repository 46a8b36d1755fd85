"""Failing LLM servers, one table, as a Wyoming client sees each (issue #11).

Every row: what the LLM server does, what the client must get (audio, or an error with a code
and a text that names the cause), how many upstream requests that took, and then the same
server must serve the next request normally. The real llama-server killed and restarted is
at the end.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from wyoming.client import AsyncTcpClient
from wyoming.tts import Synthesize

from tests.stand_ins.llama_server import LlamaServer
from tests.stand_ins.llm_server import Behaviour, OrpheusStandIn
from tests.stand_ins.tiny_orpheus_gguf import write_tiny_orpheus
from tests.wyoming_client import Reply, assert_well_formed, read_reply
from wyoming_orpheus.config import Settings, UpstreamSettings
from wyoming_orpheus.wyoming_server.handler import build_info
from wyoming_orpheus.wyoming_server.listener import WyomingServer

TEXT = "The kitchen lights are on."  # 26 characters: 7 frames at frames_per_char 0.25


def closed_port() -> int:
    """A loopback port nobody listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Fault:
    """One row: how the LLM server misbehaves and what the client must see."""

    name: str
    behaviour: dict[str, Any] = dataclasses.field(default_factory=dict)
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    upstream_url: str | None = None
    """Replaces the stand-in's URL (servers that cannot be reached)."""
    second_upstream: bool = False
    """A healthy stand-in as a second server."""
    code: str | None = None
    """The error code the client gets; None: complete audio."""
    text: str = ""
    """A fragment of the error text that names the cause."""
    requests: int = 1
    """Upstream requests the synthesis made (retries included)."""
    audio_before_error: bool = False


FAULTS = [
    Fault(
        "refused",
        upstream_url=f"http://127.0.0.1:{closed_port()}/v1",
        code="upstream-unreachable",
        text="cannot reach the LLM server",
        requests=0,
    ),
    Fault(
        "unreachable",  # TEST-NET-1: routed nowhere; the connect timeout ends it
        upstream_url="http://192.0.2.1:8080/v1",
        settings={"connect_timeout": 0.5},
        code="upstream-unreachable",
        text="192.0.2.1",
        requests=0,
    ),
    Fault("401", {"api_key": "theirs"}, code="upstream-auth", text="llm_api_key", requests=2),
    Fault("500", {"fault": "http500"}, code="upstream-error", text="HTTP 500", requests=2),
    Fault(
        "slow first token",
        {"fault": "stall", "fault_after": 0},
        {"first_token_timeout": 0.5},
        code="upstream-timeout",
        text="no first token within 0.5 s",
        requests=2,
    ),
    Fault(
        "stall mid-stream",
        {"fault": "stall", "fault_after": 35},
        {"stall_timeout": 0.5},
        code="upstream-timeout",
        text="no next token within 0.5 s",
        audio_before_error=True,
    ),
    Fault(
        "dropped mid-stream",
        {"fault": "drop", "fault_after": 35},
        code="upstream-error",
        text="broke",
        audio_before_error=True,
    ),
    Fault(
        "dropped before audio", {"fault": "drop", "fault_after": 0, "fault_times": 1}, requests=2
    ),
    Fault("garbage tokens", {"fault": "garbage"}),
    Fault(
        "no audio tokens", {"fault": "no_audio"}, code="no-audio", text="chat template", requests=2
    ),
    Fault("never-ending stream", {"fault": "endless"}),
    Fault(
        "never-ending line",
        {"fault": "endless_line", "fault_after": 35},
        code="upstream-error",
        text="without an end",
        audio_before_error=True,
    ),
    Fault(
        "one of two down",
        upstream_url=f"http://127.0.0.1:{closed_port()}/v1",
        second_upstream=True,
        requests=1,
    ),
]


async def start_server(settings: Settings, engine_factory: Any) -> WyomingServer:
    engine = await engine_factory(settings)
    server = WyomingServer(
        settings.wyoming.uri,
        build_info(engine.synthesizer.catalog, True),
        engine.synthesizer,
        engine.settings.limits,
    )
    await server.start()
    return server


async def synthesize(server: WyomingServer, text: str, until: str = "audio-stop") -> Reply:
    """One request on its own connection; a failure ends with audio-stop, then the error."""
    client = AsyncTcpClient("127.0.0.1", server.port)
    await client.connect()
    try:
        await client.write_event(Synthesize(text=text).event())
        return await read_reply(client, until, timeout=30)
    finally:
        await client.disconnect()


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
async def test_each_upstream_fault_is_told_clearly_and_the_next_request_works(
    fault: Fault, llm: OrpheusStandIn, make_settings: Callable[..., Settings], engine_factory
) -> None:
    upstreams = [UpstreamSettings(fault.upstream_url or llm.base_url)]
    healthy = OrpheusStandIn()
    if fault.second_upstream:
        await healthy.start()
        upstreams.append(UpstreamSettings(healthy.base_url))
    server = await start_server(
        make_settings(upstreams=tuple(upstreams), **fault.settings), engine_factory
    )
    try:
        llm.behaviour = Behaviour(**fault.behaviour)
        reply = await synthesize(server, TEXT, "audio-stop" if fault.code is None else "error")
        if fault.code is None:
            assert reply.error is None and reply.seconds > 0
            assert_well_formed(reply)
        else:
            assert reply.error is not None and reply.error.code == fault.code, reply.error
            assert fault.text in reply.error.text
            assert (len(reply.audio) > 0) == fault.audio_before_error
        made = len(llm.requests) + len(healthy.requests)
        assert made == fault.requests
        for record in llm.requests:  # no upstream request is left open
            await llm.wait_closed(record, timeout=10)
        if fault.name == "never-ending line":
            # It stopped reading early: at most the line limit and the socket buffers.
            assert llm.requests[0].endless_bytes < 16 * 2**20
        # The same server, the fault gone (or a reachable server behind the same settings).
        llm.behaviour = Behaviour()
        if fault.upstream_url is None or fault.second_upstream:
            after = await synthesize(server, TEXT)
            assert after.error is None and after.seconds > 0
    finally:
        await server.shutdown(grace=0)
        await healthy.stop()


async def test_an_llm_server_that_restarts_is_used_again_without_a_restart_here(
    tmp_path: Path, make_settings: Callable[..., Settings], engine_factory
) -> None:
    model = write_tiny_orpheus(tmp_path / "tiny.gguf", end_every=None)  # never ends by itself
    llama = LlamaServer(model, tmp_path / "llama.log")
    await llama.start()
    settings = make_settings(upstreams=(UpstreamSettings(llama.url),), max_tokens=4000)
    server = await start_server(settings, engine_factory)
    try:
        client = AsyncTcpClient("127.0.0.1", server.port)
        await client.connect()
        try:
            await client.write_event(Synthesize(text="A long answer. " * 20).event())
            await read_reply(client, "audio-chunk")
            await llama.kill()  # mid-stream, like a crash or a power cut
            reply = await read_reply(client, "error", timeout=30)
        finally:
            await client.disconnect()
        assert reply.error is not None and reply.error.code == "upstream-error"
        down = await synthesize(server, "Is anyone there?", "error")
        assert down.error is not None and down.error.code == "upstream-unreachable"
        await llama.start(port=llama.port)  # back, on the same address
        back = await synthesize(server, "Welcome back.")
        assert back.error is None and back.seconds > 0
        assert_well_formed(back)
    finally:
        await server.shutdown(grace=0)
        await llama.stop()
