"""What an LLM server tells of itself: llama-server's slots, from its /props."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlparse

import aiohttp

from ..config import UpstreamSettings
from .completion import endpoint_url, shown_url
from .server import Upstream

_LOGGER = logging.getLogger(__name__)
ASK_TIMEOUT = 5.0
"""Seconds one /props request may take."""
ASK_AGAIN = 30.0
"""Seconds between asks while the server is not up yet (it may start after us)."""


class NotYet(Exception):
    """The server cannot say yet: unreachable, or still loading its model (503)."""


async def learn_slots(session: aiohttp.ClientSession, upstream: Upstream) -> None:
    """Ask the server its slots until it answers, and remember what it said.

    NOTE: issue 29: sentence plans send no more requests at once than the server runs; a
    llama-server started with -np 1 or 8 and no `slots` setting was planned for 4.
    """
    while True:
        try:
            upstream.told_slots = await ask_slots(session, upstream.settings)
            return
        except NotYet:
            await asyncio.sleep(ASK_AGAIN)


def props_url(upstream: UpstreamSettings) -> str | None:
    """Return where llama-server serves /props (beside /v1), or None for Ollama's API."""
    if upstream.api != "openai":
        return None
    url = endpoint_url(upstream)
    path = urlparse(url).path
    for tail in ("/v1/completions", "/completions"):
        if path.endswith(tail):
            return url[: len(url) - len(tail)] + "/props"
    return None


async def ask_slots(session: aiohttp.ClientSession, upstream: UpstreamSettings) -> int | None:
    """Return the slots the server says it has (llama-server's `total_slots`).

    None: it answered without saying (not llama-server: vLLM, LM Studio, ... have no /props).
    Raises NotYet while it cannot be reached or is loading its model.
    """
    url = props_url(upstream)
    if url is None:
        return None
    headers = {"Authorization": f"Bearer {upstream.api_key}"} if upstream.api_key else {}
    timeout = aiohttp.ClientTimeout(total=ASK_TIMEOUT)
    try:
        async with session.get(url, headers=headers, timeout=timeout) as response:
            if response.status == 503:
                raise NotYet(f"{shown_url(url)} is loading its model")
            if response.status != 200:
                return None
            try:
                props: Any = await response.json(content_type=None)
            except ValueError:
                return None
    except (aiohttp.ClientError, TimeoutError, OSError) as err:
        raise NotYet(str(err)) from err
    slots = props.get("total_slots") if isinstance(props, dict) else None
    if isinstance(slots, int) and not isinstance(slots, bool) and slots >= 1:
        _LOGGER.info("The LLM server at %s has %d slots (its /props)", shown_url(url), slots)
        return slots
    return None
