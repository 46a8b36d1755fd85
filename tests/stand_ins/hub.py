"""A local stand-in of the Hugging Face hub's file API, for HF_ENDPOINT in tests.

It answers what huggingface_hub asks when it lists a repository (`GET /api/models/{repo}`)
and downloads a file (`HEAD` then `GET /{repo}/resolve/{revision}/{path}` with `Range` for a
resume), with the hub's headers: `X-Repo-Commit`, `ETag` (the sha256, as for LFS files),
`Content-Length`, and `X-Error-Code` (`RepoNotFound`, `EntryNotFound`) on a 404. Knobs slow a
download down or cut its connection, and every request is recorded.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
from dataclasses import dataclass, field

from aiohttp import web

COMMIT = "0123456789abcdef0123456789abcdef01234567"
CHUNK = 64 * 1024


@dataclass
class HubRequest:
    """One request the stand-in received."""

    method: str
    path: str
    range: str | None


@dataclass
class HubStandIn:
    """A hub on 127.0.0.1 serving in-memory repositories {repo: {path: bytes}}."""

    repos: dict[str, dict[str, bytes]] = field(default_factory=dict)
    bytes_per_second: float | None = None
    """Throttle file bodies (None: as fast as possible)."""
    cut_after: int | None = None
    """Close the connection after this many body bytes of the next download (once)."""
    requests: list[HubRequest] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """Return the endpoint for HF_ENDPOINT."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Listen on a free loopback port."""
        app = web.Application()
        app.router.add_get("/api/models/{owner}/{name}", self._info)
        app.router.add_get("/api/models/{owner}/{name}/revision/{revision}", self._info)
        app.router.add_route("*", "/{owner}/{name}/resolve/{revision}/{path:.+}", self._file)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def downloads_of(self, path: str) -> list[HubRequest]:
        """Return the GET requests for one file."""
        return [r for r in self.requests if r.method == "GET" and r.path.endswith("/" + path)]

    def _record(self, request: web.Request) -> None:
        self.requests.append(HubRequest(request.method, request.path, request.headers.get("Range")))

    async def _info(self, request: web.Request) -> web.Response:
        self._record(request)
        repo = f"{request.match_info['owner']}/{request.match_info['name']}"
        if repo not in self.repos:
            return _not_found("RepoNotFound", "Repository not found")
        siblings = [{"rfilename": name} for name in sorted(self.repos[repo])]
        return web.json_response({"id": repo, "sha": COMMIT, "siblings": siblings})

    async def _file(self, request: web.Request) -> web.StreamResponse:
        self._record(request)
        repo = f"{request.match_info['owner']}/{request.match_info['name']}"
        if repo not in self.repos:
            return _not_found("RepoNotFound", "Repository not found")
        data = self.repos[repo].get(request.match_info["path"])
        if data is None:
            return _not_found("EntryNotFound", "Entry not found")
        start = _range_start(request.headers.get("Range"))
        headers = {
            "X-Repo-Commit": COMMIT,
            "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
            "Accept-Ranges": "bytes",
            "Content-Length": str(len(data) - start),
        }
        status = 200
        if start:
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        response = web.StreamResponse(status=status, headers=headers)
        if request.method == "HEAD":
            headers["Content-Length"] = str(len(data))
            return web.Response(status=200, headers=headers)
        await response.prepare(request)
        await self._send(request, response, data[start:])
        return response

    async def _send(self, request: web.Request, response: web.StreamResponse, body: bytes) -> None:
        cut, self.cut_after = self.cut_after, None
        sent = 0
        while sent < len(body):
            piece = body[sent : sent + CHUNK]
            if cut is not None and sent + len(piece) > cut:
                await response.write(piece[: cut - sent])
                assert request.transport is not None
                request.transport.abort()  # the connection breaks mid-file
                return
            await response.write(piece)
            sent += len(piece)
            if self.bytes_per_second:
                await asyncio.sleep(len(piece) / self.bytes_per_second)
        await response.write_eof()


def _range_start(header: str | None) -> int:
    if not header or not header.startswith("bytes="):
        return 0
    return int(header[len("bytes=") :].split("-", 1)[0] or 0)


def _not_found(code: str, message: str) -> web.Response:
    return web.json_response(
        {"error": message},
        status=404,
        headers={"X-Error-Code": code, "X-Error-Message": message},
    )
