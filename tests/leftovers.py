"""What a finished exchange must leave behind: nothing. Tasks, sockets, upstream requests."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

from tests.stand_ins.llm_server import OrpheusStandIn

_LISTEN = "0A"  # /proc/net/tcp's state of a listening socket


def server_sockets(port: int) -> int:
    """Count this process's open TCP sockets whose local port is `port`, listeners apart."""
    ours = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            ours.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] != _LISTEN and fields[9] in ours:
                count += 1
    return count


def extra_tasks(baseline: set[asyncio.Task[object]]) -> list[asyncio.Task[object]]:
    """Return the tasks that run now and did not at the baseline (this one apart).

    aiohttp runs one task per open server connection: the upstream pool's idle keep-alive
    connections to the LLM stand-in are meant to stay, and the HTTP door's own connections are
    counted as sockets, so those tasks are not counted here.
    """
    current = asyncio.current_task()
    return [
        t
        for t in asyncio.all_tasks()
        if t not in baseline
        and t is not current
        and t.get_coro().__qualname__ != "RequestHandler.start"  # type: ignore[union-attr]
    ]


async def settle(check: Callable[[], object], timeout: float = 10.0) -> None:
    """Poll until check() returns something falsy; fail with its last value after timeout."""
    deadline = asyncio.get_running_loop().time() + timeout
    while value := check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"still left after {timeout:g} s: {value}")
        await asyncio.sleep(0.01)


def leftovers(
    port: int,
    baseline: set[asyncio.Task[object]],
    llm: OrpheusStandIn,
    connections: Callable[[], int],
) -> dict[str, object]:
    """Everything still open from earlier exchanges (an empty dict: nothing)."""
    found: dict[str, object] = {}
    if n := connections():
        found["registered connections"] = n
    if n := server_sockets(port):
        found["server sockets"] = n
    if tasks := extra_tasks(baseline):
        found["tasks"] = [t.get_coro() for t in tasks][:5]
    if open_requests := [r for r in llm.requests if r.closed_at is None]:
        found["upstream requests"] = len(open_requests)
    return found
