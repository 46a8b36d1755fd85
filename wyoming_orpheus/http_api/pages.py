"""The page to try the voices, the OpenAPI description and Swagger UI, all from the package."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from .errors import ApiError

STATIC_DIR = Path(__file__).with_name("static")
OPENAPI_FILE = Path(__file__).with_name("openapi.json")


@cache
def openapi() -> dict[str, Any]:
    """Return the OpenAPI 3.1 description kept in the package."""
    description: dict[str, Any] = json.loads(OPENAPI_FILE.read_text(encoding="utf-8"))
    return description


def openapi_30() -> dict[str, Any]:
    """Return the same description labelled 3.0.3, for the bundled Swagger UI 4.

    NOTE: swagger-ui-bundle ships Swagger UI 4.15, which renders OpenAPI 3.0 only; the
    description is written in the subset that 3.0 and 3.1 share, so only the label differs.
    """
    return {**_as_30(openapi()), "openapi": "3.0.3"}


def _as_30(node: Any) -> Any:
    """Write 3.1's `"type": [T, "null"]` as 3.0's `"type": T, "nullable": true`."""
    if isinstance(node, list):
        return [_as_30(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _as_30(value) for key, value in node.items()}
    kinds = node.get("type")
    if isinstance(kinds, list) and "null" in kinds:
        (kind,) = [k for k in kinds if k != "null"]
        converted.update(type=kind, nullable=True)
    return converted


def folder(directory: Path) -> Handler:
    """Serve the files directly inside `directory` by name, and nothing else.

    The names are listed once at start: a request can only pick one of them, so no path
    (`..`, encoded slashes, symlinks added later) can reach a file outside the folder.
    """
    files = {path.name: path for path in directory.iterdir() if path.is_file()}

    async def serve(request: web.Request) -> web.StreamResponse:
        path = files.get(request.match_info["filename"])
        if path is None:
            raise ApiError(404, "no such file", code="not-found")
        return web.FileResponse(path)

    return serve


async def index(request: web.Request) -> web.FileResponse:
    """Serve the page to try the voices."""
    return web.FileResponse(STATIC_DIR / "index.html")


async def docs(request: web.Request) -> web.FileResponse:
    """Serve Swagger UI for the API description."""
    return web.FileResponse(STATIC_DIR / "docs.html")


async def openapi_json(request: web.Request) -> web.Response:
    """Serve the OpenAPI 3.1 description."""
    return web.json_response(openapi())


async def docs_openapi_json(request: web.Request) -> web.Response:
    """Serve the description as Swagger UI 4 reads it."""
    return web.json_response(openapi_30())
