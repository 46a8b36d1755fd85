"""Managed mode: size, start and supervise our own llama.cpp `llama-server` (found by binary.py).

With no LLM server named, wyoming-orpheus runs one itself on 127.0.0.1 and a free port. It is
restarted with backoff when it exits, stopped (TERM, then KILL) when we stop, and dies with us
even when we are killed with SIGKILL (Linux's parent-death signal).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from ..config import ManagedSettings
from ..upstream.completion import UpstreamBroken, UpstreamError, UpstreamUnreachable
from .binary import (
    HOST,
    RELEASE,
    Devices,
    binary_options,
    check_args,
    find_binary,
    gpu_unused,
    host_gpus,
    is_vulkan_build,
    list_devices,
    own_libraries,
)
from .sizing import Sizing, build_command, slots_given

_LOGGER = logging.getLogger(__name__)

STOP_GRACE = 5.0
"""Seconds llama-server gets to exit after SIGTERM before it is killed."""
BACKOFF_FIRST, BACKOFF_MAX = 1.0, 30.0
"""Restart delays: doubled after each crash, up to the maximum."""
STABLE_SECONDS = 60.0
"""A run this long resets the backoff: the next crash is not part of a loop."""
LOG_LINES_KEPT = 20
DOWN_WAIT = 0.5
"""How long a failed request waits to learn whether llama-server itself went down."""

_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """Pick a free loopback port (kept across restarts, so the upstream URL never changes)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def exit_text(code: int | None) -> str:
    """Say how a process ended, from asyncio's return code (negative: the signal)."""
    if code is None:
        return "could not be started"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def _die_with_parent() -> Callable[[], None] | None:
    """Return a pre-exec hook that makes the child get SIGKILL when we die (Linux only).

    NOTE: issue 18 asks that llama-server never outlives us, even after our SIGKILL, when no
    code of ours runs. The kernel's parent-death signal does it; it fires when the thread
    that forked exits, and asyncio forks on the event-loop thread, which lives as long as we
    do. The getppid check covers our death between fork and prctl.
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before fork, not in the child
    parent = os.getpid()

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:
            os._exit(1)

    return hook


class ManagedLlamaServer:
    """One supervised llama-server process and what /health shows of it."""

    def __init__(self, extra_args: Sequence[str]) -> None:
        self.binary: Path | None = None
        """The llama-server run; None until llama.cpp's release is fetched (use())."""
        self.options: frozenset[str] = frozenset()
        """What the binary's --help lists (the batching options are passed only if listed)."""
        self._extra = tuple(extra_args)
        self.port = free_port()
        self.gpus: list[str] | None = None
        """What the binary's `--list-devices` named; None when it cannot tell."""
        self.host_gpus: list[str] = []
        """The GPUs this machine shows (nvidia-smi, device nodes), whatever the build can use."""
        self.gpu_unused: str | None = None
        """Why a GPU this machine shows goes unused (a WARNING at start, /health)."""
        self.state = "downloading"
        self.restarts = 0
        self.last_exit: int | None = None
        self.load_seconds: float | None = None
        self.lines: collections.deque[str] = collections.deque(maxlen=LOG_LINES_KEPT)
        self.ready = asyncio.Event()
        """Set once llama-server first answered its health check."""
        self._process: asyncio.subprocess.Process | None = None
        self._exited = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False

    @classmethod
    def locate(cls, settings: ManagedSettings) -> ManagedLlamaServer:
        """Find a binary here and check it (a ConfigError: exit 2); else the release is fetched.

        NOTE: nvidia-smi and the binary's --help run here, before anything serves.
        """
        server = cls(settings.llama_server_args)
        server.host_gpus = host_gpus()
        binary = find_binary(settings.llama_server)
        if binary is not None:
            server.use(binary)
        else:
            _LOGGER.info(
                "Managed mode: no LLM server configured, %s; using llama.cpp's prebuilt release",
                "llama_server is release"
                if settings.llama_server == RELEASE
                else "no llama-server on PATH or from the [llama] extra",
            )
        return server

    def use(self, binary: Path, devices: Devices | None = None) -> None:
        """Run this binary: check the pass-through options against it, ask it for its GPUs
        (unless its `--list-devices` was read already)."""
        self.options = binary_options(binary)
        check_args(self._extra, self.options, binary)
        self.binary = binary
        self.gpus = (devices or list_devices(binary)).gpus
        _LOGGER.info(
            "Managed mode: no LLM server configured, running %s (GPUs: %s)",
            binary,
            "unknown" if self.gpus is None else ", ".join(self.gpus) or "none",
        )

    @property
    def url(self) -> str:
        """Return the OpenAI base URL the upstream pool calls."""
        return f"http://{HOST}:{self.port}/v1"

    @property
    def running(self) -> bool:
        """Tell whether llama-server is up and answered its health check."""
        return self.state == "running"

    def slots(self, sizing: Sizing) -> int:
        """Return the requests llama-server runs at once: ours, or the user's `-np`."""
        return slots_given(self._extra, sizing)

    def start(self, model: Path, sizing: Sizing) -> None:
        """Start llama-server and keep it running until stop()."""
        assert self.binary is not None, "use() names the binary first"
        command = build_command(self.binary, model, self.port, sizing, self._extra, self.options)
        # NOTE: issue 24: a GPU box whose llama-server is a CPU build was 10-20x slower than
        # real time with nothing but "GPUs: none" at INFO to say why.
        vulkan = is_vulkan_build(self.binary)
        self.gpu_unused = gpu_unused(self.host_gpus, self.gpus, sizing.gpu_layers, vulkan)
        if self.gpu_unused is not None:
            _LOGGER.warning("The GPU goes unused: %s", self.gpu_unused)
        _LOGGER.info(
            "llama-server: %d slots of %d tokens (-c %d), %d GPU layers, on %s",
            sizing.parallel,
            sizing.ctx_per_slot,
            sizing.ctx,
            sizing.gpu_layers,
            self.url,
        )
        self._supervisor = asyncio.create_task(self._supervise(command))

    async def stop(self) -> None:
        """Stop supervising and stop llama-server: SIGTERM, then SIGKILL after a grace."""
        self._stopping = True
        process = self._process
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                async with asyncio.timeout(STOP_GRACE):
                    await self._exited.wait()
            except TimeoutError:
                _LOGGER.warning("llama-server ignored SIGTERM for %g s; killing it", STOP_GRACE)
                process.kill()
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.wait([self._supervisor])  # raises our own cancellation, not its
        self.state = "stopped"

    async def down_reason(self, err: UpstreamError) -> str | None:
        """Say why a request failed if llama-server itself is down (None while it runs)."""
        if self.running and isinstance(err, (UpstreamBroken, UpstreamUnreachable)):
            # A request broken by a crash sees the socket close before we reap the process.
            # NOTE: issue 25: the event is awaited directly (no shield), so nothing is left
            # pending, and only for the failures a dying process causes: others do not wait.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DOWN_WAIT):
                    await self._exited.wait()
        if self.running:
            return None
        if self._stopping:
            return "the managed llama-server is stopping"
        if self.last_exit is None and self.restarts == 0:
            return "the managed llama-server is still loading its model"
        return f"the managed llama-server {exit_text(self.last_exit)} and is being restarted"

    def status(self) -> dict[str, Any]:
        """Return what /health shows: state, restarts, the last exit and log lines."""
        return {
            "state": self.state,
            "url": self.url,
            "pid": self.pid,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "load_seconds": self.load_seconds,
            "gpu_unused": self.gpu_unused,
            "last_lines": list(self.lines) if not self.running else [],
        }

    async def _supervise(self, command: list[str]) -> None:
        delay = BACKOFF_FIRST
        while not self._stopping:
            started = time.monotonic()
            await self._run_once(command)
            if self._stopping:
                return
            ran = time.monotonic() - started
            delay = BACKOFF_FIRST if ran >= STABLE_SECONDS else delay
            self.restarts += 1
            self.state = "restarting"
            _LOGGER.error(
                "llama-server %s after %.1f s; restarting in %g s (restart %d). Its last "
                "lines:\n%s",
                exit_text(self.last_exit),
                ran,
                delay,
                self.restarts,
                "\n".join(self.lines) or "(none)",
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)

    async def _run_once(self, command: list[str]) -> None:
        """Run llama-server until it exits; mark it running once it answers /health."""
        self._exited.clear()
        self.state = "starting"
        started = time.monotonic()
        try:
            self._process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                # Its own session: a Ctrl-C in the terminal reaches us, not it; we stop it
                # after the in-flight syntheses drained.
                start_new_session=True,
                preexec_fn=_die_with_parent(),
                env=own_libraries(Path(command[0])),
            )
        except OSError as err:
            self.last_exit = None
            self.lines.append(f"cannot start {command[0]}: {err}")
            return
        assert self._process.stdout is not None
        output = asyncio.create_task(self._forward(self._process.stdout))
        health = asyncio.create_task(self._await_health(started))
        try:
            self.last_exit = await self._process.wait()
        finally:
            self.state = "exited"
            self._exited.set()
            health.cancel()
            await asyncio.wait([health])  # never swallows a cancellation of the supervisor
            await asyncio.wait([output], timeout=1.0)

    async def _forward(self, stream: asyncio.StreamReader) -> None:
        """Forward llama-server's output to our log at debug level; keep its last lines."""
        while True:
            try:
                line = await stream.readline()
            except ValueError:  # a line over the reader's limit: skip it
                continue
            if not line:
                return
            text = line.decode("utf-8", errors="replace").rstrip()
            self.lines.append(text)
            _LOGGER.debug("llama-server: %s", text)

    async def _await_health(self, started: float) -> None:
        """Poll llama-server's /health until it answers ok (200 once the model is loaded)."""
        url = f"http://{HOST}:{self.port}/health"
        timeout = aiohttp.ClientTimeout(total=2)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(url) as answer:
                        if answer.status == 200:
                            break
                await asyncio.sleep(0.1)
        self.load_seconds = time.monotonic() - started
        self.state = "running"
        _LOGGER.info("llama-server ready after %.2f s (pid %s)", self.load_seconds, self.pid)
        self.ready.set()

    @property
    def pid(self) -> int | None:
        """Return the running process's id."""
        return self._process.pid if self._process is not None else None
