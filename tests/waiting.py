"""Waiting in tests on what a wait means, each wait bounded and saying what it waited for."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def until(
    condition: Callable[[], object], what: str, timeout: float = 10.0, every: float = 0.01
) -> float:
    """Poll condition until it holds; return the seconds it took.

    Fails with `what` after `timeout` seconds, so a hang reads as what never happened rather
    than as pytest-timeout's stack dump minutes later.
    """
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"waited {timeout:g} s for {what}")
        await asyncio.sleep(every)
    return time.monotonic() - started
