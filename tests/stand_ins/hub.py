"""A local stand-in of the Hugging Face hub's file API, for HF_ENDPOINT in tests.

It answers what huggingface_hub asks when it lists a repository (`GET /api/models/{repo}`)
and downloads a file (`HEAD` then `GET /{repo}/resolve/{revision}/{path}` with `Range` for a
resume), with the hub's headers: `X-Repo-Commit`, `ETag` (the sha256, as for LFS files),
`Content-Length`, and `X-Error-Code` (`RepoNotFound`, `EntryNotFound`) on a 404. Knobs slow a
download down or cut its connection, and every request is recorded.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from aiohttp import web

from .files import Link, listen, send_file

COMMIT = "0123456789abcdef0123456789abcdef01234567"


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
    link: Link = field(default_factory=Link)
    """A slow or cut connection for file bodies."""
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
        self._runner, self.port = await listen(app)

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
        headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{hashlib.sha256(data).hexdigest()}"'}
        return await send_file(request, data, self.link, headers)


def _not_found(code: str, message: str) -> web.Response:
    return web.json_response(
        {"error": message},
        status=404,
        headers={"X-Error-Code": code, "X-Error-Message": message},
    )
