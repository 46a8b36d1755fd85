"""Run `python -m wyoming_orpheus` in managed mode (no LLM server named) as a user would."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from wyoming.client import AsyncTcpClient
from wyoming.tts import Synthesize

from tests.stand_ins.tcp_recorder import frames_of
from tests.test_end_to_end import free_port
from tests.waiting import until
from tests.wyoming_client import assert_well_formed, read_reply
from wyoming_orpheus.audio.pcm import to_int16
from wyoming_orpheus.config import SamplingSettings, UpstreamSettings
from wyoming_orpheus.decode.snac import decode_batch
from wyoming_orpheus.upstream.completion import Sampling, request_body

START_TIMEOUT = 90.0


@dataclass
class ManagedProcess:
    """One server process, its ports and its log."""

    process: asyncio.subprocess.Process
    port: int
    http_port: int
    log_path: Path
    args: list[str] = field(default_factory=list)

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def health(self) -> tuple[int, dict[str, Any]]:
        """GET /health: (status, body); (0, {}) while the HTTP door is not up."""
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(
                    self.http_url + "/health", timeout=aiohttp.ClientTimeout(total=5)
                ) as answer,
            ):
                return answer.status, await answer.json()
        except (aiohttp.ClientError, TimeoutError):
            return 0, {}

    async def wait_health(self, check: Any, timeout: float = START_TIMEOUT) -> dict[str, Any]:
        """Poll /health until check(status, body) holds; fail if the process exits."""
        async with asyncio.timeout(timeout):
            while True:
                if self.process.returncode is not None:
                    raise AssertionError(f"server exited with {self.process.returncode}")
                status, body = await self.health()
                if status and check(status, body):
                    return body
                await asyncio.sleep(0.1)

    async def wait_ready(self, timeout: float = START_TIMEOUT) -> dict[str, Any]:
        """Wait until /health says ready (llama-server answered, SNAC loaded)."""
        return await self.wait_health(lambda status, _: status == 200, timeout)

    def llama_pid(self, body: dict[str, Any]) -> int:
        pid = body["llm_server"]["pid"]
        assert isinstance(pid, int)
        return pid

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


async def start_managed(
    tmp_path: Path,
    args: list[str],
    env: dict[str, str] | None = None,
    name: str = "server",
    command: list[str] | None = None,
) -> ManagedProcess:
    """Start the server with no --llm-url; the caller adds --llm-gguf and the rest.

    command: what runs it (default: this Python's `-m wyoming_orpheus`; script/run as a user).
    """
    port, http_port = free_port(), free_port()
    log_path = tmp_path / f"{name}.log"
    full_args = [
        "--uri",
        f"tcp://127.0.0.1:{port}",
        "--http-host",
        "127.0.0.1",
        "--http-port",
        str(http_port),
        "--device",
        "cpu",
        "--debug",
        *args,
    ]
    # No warm-up: these tests are about the LLM server's life, not the first decode's speed;
    # no keep-alive silence: they compare what is spoken with an exact decode.
    environ = dict(
        os.environ, ORPHEUS_WARM_UP="false", ORPHEUS_PLAYOUT_KEEPALIVE="false", **(env or {})
    )
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            *(command or [sys.executable, "-m", "wyoming_orpheus"]),
            *full_args,
            cwd=tmp_path,
            stdout=log,
            stderr=log,
            env=environ,
        )
    return ManagedProcess(process, port, http_port, log_path, full_args)


async def run_to_exit(
    tmp_path: Path, args: list[str], env: dict[str, str] | None = None, timeout: float = 60
) -> tuple[int, str]:
    """Run the server until it exits by itself; return its exit code and output."""
    server = await start_managed(tmp_path, args, env, name="exit")
    try:
        code = await asyncio.wait_for(server.process.wait(), timeout)
    finally:
        await server.stop()
    return code, server.log()


def process_gone(pid: int) -> bool:
    """Tell whether a process no longer runs (a zombie awaiting its reaper counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state in ("Z", "X")
    return False


async def wait_gone(pid: int, timeout: float) -> None:
    """Wait until a process is gone; fail after timeout seconds."""
    await until(lambda: process_gone(pid), f"process {pid} to be gone", timeout, every=0.05)


def kill_quietly(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


async def stop_and_show(started: list[ManagedProcess]) -> None:
    """Kill servers a test started (and their llama-servers); print their logs for pytest."""
    for server in started:
        status, body = await server.health()
        await server.stop()
        if status and body.get("llm_server", {}).get("pid"):
            kill_quietly(body["llm_server"]["pid"])
        # Shown by pytest when a test fails; the health polls' access lines left out.
        lines = [x for x in server.log().splitlines() if '"GET /health ' not in x]
        print("\n".join(lines)[-20000:])


async def speak_wyoming(port: int, text: str) -> np.ndarray:
    """Synthesize over Wyoming as Home Assistant does; return the PCM."""
    client = AsyncTcpClient("127.0.0.1", port)
    await client.connect()
    try:
        await client.write_event(Synthesize(text=text).event())
        reply = await read_reply(client, "audio-stop")
    finally:
        await client.disconnect()
    assert reply.error is None, reply.error
    assert_well_formed(reply)
    return np.frombuffer(reply.audio, dtype="<i2")


async def speak_http(server: ManagedProcess, text: str) -> np.ndarray:
    """POST /v1/audio/speech for raw PCM; return it."""
    async with aiohttp.ClientSession() as session:
        body = {"input": text, "voice": "tara", "response_format": "pcm"}
        async with session.post(server.http_url + "/v1/audio/speech", json=body) as answer:
            assert answer.status == 200, await answer.text()
            return np.frombuffer(await answer.read(), dtype="<i2")


async def replay(llama_url: str, text: str) -> list[tuple[int, ...]]:
    """Ask llama-server directly what the product asked; return the frames it streams."""
    body = request_body(UpstreamSettings(llama_url), SamplingSettings(), "tara", text, Sampling())
    generated = ""
    async with (
        aiohttp.ClientSession() as session,
        session.post(llama_url + "/completions", json=body) as answer,
    ):
        assert answer.status == 200
        async for line in answer.content:
            data = line.decode().strip()
            if data.startswith("data:") and data != "data: [DONE]":
                generated += json.loads(data[5:])["choices"][0]["text"]
    return frames_of(generated)


def assert_is_decode_of(audio: np.ndarray, frames: list[tuple[int, ...]], snac: Any) -> None:
    """The audio is exactly the offline decode of the frames llama-server generated."""
    assert frames, "llama-server generated no complete frame"
    expected = to_int16(decode_batch(snac, np.array([frames]), "cpu")[0])
    assert len(audio) == len(expected) == 2048 * len(frames)  # nothing lost at either end
    assert np.abs(audio.astype(int) - expected.astype(int)).max() <= 1
