"""A loopback stand-in of llama.cpp's GitHub releases: the release API and its downloads.

`GET /repos/ggml-org/llama.cpp/releases/tags/{tag}` answers GitHub's release JSON (`assets[]`
with `name`, `size`, `digest` = `sha256:...` and `browser_download_url`, as the REST API
does); `GET /download/{tag}/{name}` serves the archive, with Range requests and the slow or cut
links of files.py. Every request is recorded. The builds are the suite's real llama-server
(script/llama-server), packed as llama.cpp's release workflow packs its build/bin folder: a
tar.gz whose one folder `llama-{tag}/` holds llama-server, its shared libraries (links kept)
and LICENSE.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from .files import Link, listen, send_file

RELEASES = "/repos/ggml-org/llama.cpp/releases"
LICENSE = b"MIT License\n\nCopyright (c) 2023-2026 The ggml authors\n"


def build_files(binary: Path, leave_out: Iterable[str] = ()) -> list[Path]:
    """llama-server and every shared library beside it, as build/bin holds them."""
    skipped = set(leave_out)
    libraries = [p for p in binary.parent.iterdir() if p.name.startswith("lib") and ".so" in p.name]
    return [binary, *sorted(p for p in libraries if p.name not in skipped)]


def pack_tar(files: list[Path], tag: str, extra: dict[str, bytes] | None = None) -> bytes:
    """A release tar.gz: `llama-{tag}/` with the files (symlinks stay links) and LICENSE.

    NOTE: gzip level 0 (stored blocks, still a valid .tar.gz) keeps it ~20 MB, as big as real
    builds: huggingface_hub writes a download in 10 MB pieces, so a smaller archive would be
    downloaded in one piece and no cut or kill could leave a part of it to resume.
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=0) as tar:
        for path in files:
            tar.add(path, arcname=f"llama-{tag}/{path.name}", recursive=False)
        for name, data in {"LICENSE": LICENSE, **(extra or {})}.items():
            info = tarfile.TarInfo(f"llama-{tag}/{name}")
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def pack_zip(files: list[Path], tag: str) -> bytes:
    """The same build as a .zip (as llama.cpp once packed its Linux builds), modes kept."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as packed:
        for path in files:
            target = path.resolve()  # a zip has no links: each library under every name
            info = zipfile.ZipInfo(f"build/bin/{path.name}")
            info.external_attr = (target.stat().st_mode & 0o777) << 16
            packed.writestr(info, target.read_bytes())
    return buffer.getvalue()


@dataclass
class ReleaseRequest:
    """One request the stand-in received."""

    path: str
    range: str | None


@dataclass
class ReleaseStandIn:
    """GitHub's release API for one llama.cpp tag, serving {asset name: archive bytes}."""

    tag: str
    assets: dict[str, bytes]
    digests: dict[str, str] = field(default_factory=dict)
    """A digest to publish instead of the archive's own (a corrupt download)."""
    sizes: dict[str, int] = field(default_factory=dict)
    """A size to publish instead of the archive's own (a lying mirror)."""
    unreleased: set[str] = field(default_factory=set)
    """Tags that exist (the git API knows them) whose release is not published yet."""
    link: Link = field(default_factory=Link)
    requests: list[ReleaseRequest] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def api(self) -> str:
        """Return the value for llama_release_api."""
        return f"http://127.0.0.1:{self.port}{RELEASES}"

    async def start(self) -> None:
        """Listen on a free loopback port."""
        app = web.Application()
        app.router.add_get(RELEASES + "/tags/{tag}", self._release)
        app.router.add_get("/download/{tag}/{name}", self._download)
        app.router.add_get(RELEASES.removesuffix("/releases") + "/git/ref/tags/{tag}", self._ref)
        self._runner, self.port = await listen(app)

    async def stop(self) -> None:
        """Stop listening: from now on the network is down."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def downloads_of(self, name: str) -> list[ReleaseRequest]:
        """Return the download requests for one asset."""
        return [r for r in self.requests if r.path == f"/download/{self.tag}/{name}"]

    async def _release(self, request: web.Request) -> web.Response:
        self.requests.append(ReleaseRequest(request.path, None))
        if request.match_info["tag"] != self.tag:
            return web.json_response({"message": "Not Found", "status": "404"}, status=404)
        assets = [
            {
                "name": name,
                "size": self.sizes.get(name, len(data)),
                "digest": self.digests.get(name, f"sha256:{hashlib.sha256(data).hexdigest()}"),
                "content_type": "application/gzip",
                "browser_download_url": f"http://127.0.0.1:{self.port}/download/{self.tag}/{name}",
            }
            for name, data in sorted(self.assets.items())
        ]
        return web.json_response({"tag_name": self.tag, "name": self.tag, "assets": assets})

    async def _ref(self, request: web.Request) -> web.Response:
        self.requests.append(ReleaseRequest(request.path, None))
        tag = request.match_info["tag"]
        if tag != self.tag and tag not in self.unreleased:
            return web.json_response({"message": "Not Found", "status": "404"}, status=404)
        return web.json_response({"ref": f"refs/tags/{tag}", "object": {"type": "commit"}})

    async def _download(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(ReleaseRequest(request.path, request.headers.get("Range")))
        data = self.assets.get(request.match_info["name"])
        if data is None or request.match_info["tag"] != self.tag:
            return web.Response(status=404, text="Not Found")
        return await send_file(request, data, self.link, {"Content-Type": "application/gzip"})
