"""Run `python -m wyoming_orpheus` in managed mode (no LLM server named) as a user would."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.test_end_to_end import free_port

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
) -> ManagedProcess:
    """Start the server with no --llm-url; the caller adds --llm-gguf and the rest."""
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
    # No warm-up: these tests are about the LLM server's life, not the first decode's speed.
    environ = dict(os.environ, ORPHEUS_WARM_UP="false", **(env or {}))
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "wyoming_orpheus",
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
    async with asyncio.timeout(timeout):
        while not process_gone(pid):
            await asyncio.sleep(0.05)


def kill_quietly(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
