"""A speech client that hangs up: the HTTP door's side of the hang-up tests."""

from __future__ import annotations

import aiohttp


async def hang_up_http(url: str, text: str, after_audio: bool) -> None:
    """POST a speech request; hang up after the headers (held) or the first audio bytes."""
    body = {"input": text, "voice": "tara", "response_format": "pcm"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + "/v1/audio/speech", json=body) as response,
    ):
        assert response.status == 200
        if after_audio:
            await response.content.readany()
        response.close()  # drops the connection
