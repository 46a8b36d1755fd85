"""Canaries: what the product relies on in other libraries beyond their public API, checked
against the installed releases (issue 30). Each check names what changed; a test per check
fakes that change once and sees the check fail, so a canary that cannot fail is caught too.

- aiohttp (http_api/server_seam.py): `web.Server.connection_made/connection_lost` wrapped,
  `web.Server.connections`, `request.protocol` and `RequestHandler.force_close()`.
- huggingface_hub (fetch/hub_cache.py): a file's blob at
  `{cache}/models--{owner}--{name}/blobs/{etag}`, linked into the snapshot.
- wyoming (wyoming_server/): only its public API now; what is checked is that the frames its
  `async_write_event` writes are what our reader (protocol.py) reads.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from wyoming.audio import AudioChunk
from wyoming.event import async_write_event
from wyoming.tts import Synthesize, SynthesizeVoice

from tests.stand_ins.hub import HubStandIn
from wyoming_orpheus.fetch.hub_cache import blob_place
from wyoming_orpheus.http_api import server_seam
from wyoming_orpheus.wyoming_server.protocol import ProtocolError, read_event

Check = Callable[..., Awaitable[None]]


# --- aiohttp -----------------------------------------------------------------------------


async def check_aiohttp_connection_seam() -> None:
    """A real connection is seen coming, listed, closed by us and seen going."""
    made: list[server_seam.Connection] = []
    lost: list[server_seam.Connection] = []
    seen: list[server_seam.Connection] = []

    async def hello(request: web.Request) -> web.Response:
        seen.append(server_seam.connection_of(request))
        return web.Response(text="hi")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    assert runner.server is not None, "aiohttp: AppRunner.server is gone"
    server_seam.watch(runner.server, lambda c, _t: made.append(c), lost.append)
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        assert b"200" in await asyncio.wait_for(reader.readline(), 5), "aiohttp: no answer"
        assert len(made) == 1, "aiohttp: connection_made is no longer called per connection"
        assert seen == made, "aiohttp: request.protocol is not the connection made"
        assert server_seam.open_connections(runner.server) == made, "aiohttp: Server.connections"
        server_seam.close(made[0])
        assert await asyncio.wait_for(reader.read(), 5) is not None
        for _ in range(50):
            if lost:
                break
            await asyncio.sleep(0.02)
        assert lost == made, "aiohttp: connection_lost is not called when a connection closes"
    finally:
        writer.close()
        await runner.cleanup()


async def test_aiohttp_connection_seam_holds() -> None:
    await check_aiohttp_connection_seam()


async def test_the_aiohttp_canary_fails_when_connection_made_is_no_longer_called(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Faked: a release that registers connections without calling connection_made.
    def watch_nothing(*_args: object) -> None:
        pass

    monkeypatch.setattr(server_seam, "watch", watch_nothing)
    with pytest.raises(AssertionError, match="connection_made"):
        await check_aiohttp_connection_seam()


# --- huggingface_hub ---------------------------------------------------------------------


async def check_hub_cache_layout(tmp_path: Path) -> None:
    """hf_hub_download keeps a file's content where blob_place says, and finds it there."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url

    data = b"GGUF canary"
    hub = HubStandIn(repos={"canary/model": {"m.gguf": data}})
    await hub.start()
    try:
        cache = tmp_path / "hub"
        url = hf_hub_url("canary/model", "m.gguf", endpoint=hub.url)
        meta = await asyncio.to_thread(get_hf_file_metadata, url)
        assert meta.etag and meta.size == len(data), "huggingface_hub: file metadata changed"
        try:
            place = blob_place("canary/model", meta.etag, cache)
        except (ImportError, AttributeError) as err:
            raise AssertionError(f"huggingface_hub: repo_folder_name is gone ({err})") from None
        path = await asyncio.to_thread(
            hf_hub_download, "canary/model", "m.gguf", cache_dir=cache, endpoint=hub.url
        )
        assert place.blob.is_file(), f"huggingface_hub: no blob at {place.blob}"
        assert Path(path).resolve() == place.blob.resolve(), "huggingface_hub: snapshot link"
        # A blob put there before (what hub.py resumes) is what a later download returns.
        place.blob.write_bytes(data)
        asked = len(hub.requests)
        again = await asyncio.to_thread(
            hf_hub_download, "canary/model", "m.gguf", cache_dir=cache, endpoint=hub.url
        )
        assert Path(again).read_bytes() == data
        assert not hub.downloads_of("m.gguf")[1:], "huggingface_hub: fetched the blob again"
        assert len(hub.requests) > asked  # it did ask the hub (HEAD), then used the blob
    finally:
        await hub.stop()


async def test_the_hub_cache_layout_holds(tmp_path: Path) -> None:
    await check_hub_cache_layout(tmp_path)


async def test_the_hub_canary_fails_when_the_folder_naming_moves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Faked: a release that moves repo_folder_name out of file_download.
    import huggingface_hub.file_download as file_download

    monkeypatch.delattr(file_download, "repo_folder_name")
    with pytest.raises(AssertionError, match="huggingface_hub: repo_folder_name is gone"):
        await check_hub_cache_layout(tmp_path)


# --- wyoming -----------------------------------------------------------------------------


async def check_wyoming_frames(write: Callable[..., Awaitable[None]] = async_write_event) -> None:
    """Events written by the wyoming package come back whole through our reader."""
    left, right = socket.socketpair()
    reader, ours = await asyncio.open_connection(sock=left)
    theirs, writer = await asyncio.open_connection(sock=right)
    events = [
        Synthesize(text="Grüße, Welt.", voice=SynthesizeVoice(name="tara")).event(),
        AudioChunk(rate=24000, width=2, channels=1, audio=b"\x01\x02" * 512).event(),
    ]
    try:
        for event in events:
            await write(event, writer)
        writer.write_eof()
        for sent in events:
            got = await read_event(reader, 1 << 20)
            assert got is not None, "wyoming: an event was not read back"
            assert (got.type, got.data, got.payload) == (sent.type, sent.data, sent.payload), (
                "wyoming: the frame its async_write_event writes is not the one protocol.py reads"
            )
    finally:
        for stream in (writer, ours):
            stream.close()
            await stream.wait_closed()
        del theirs


async def test_wyoming_frames_round_trip() -> None:
    await check_wyoming_frames()


async def test_the_wyoming_canary_fails_when_the_frame_changes() -> None:
    # Faked: a release that puts the payload before the data block.
    async def reordered(event, writer: asyncio.StreamWriter) -> None:  # type: ignore[no-untyped-def]
        data = json.dumps(event.data).encode() if event.data else b""
        header = (
            f'{{"type": "{event.type}", "data_length": {len(data)}, '
            f'"payload_length": {len(event.payload or b"")}}}\n'
        )
        writer.write(header.encode() + (event.payload or b"") + data)
        await writer.drain()

    with pytest.raises(ProtocolError):  # the payload read as the data block's JSON
        await check_wyoming_frames(reordered)
