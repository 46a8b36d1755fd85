"""The page to try the voices, the OpenAPI description and Swagger UI, all from the package."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from aiohttp import web

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
    return {**openapi(), "openapi": "3.0.3"}


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
