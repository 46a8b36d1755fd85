"""API key and CORS: who may call the HTTP door."""

from __future__ import annotations

import hmac

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from .errors import ApiError

# Reachable without the key: liveness for health checks, and the page and docs assets,
# which hold no data (the page itself asks for the key).
PUBLIC_PATHS = frozenset({"/", "/health", "/docs", "/openapi.json", "/favicon.ico"})
PUBLIC_PREFIXES = ("/static/", "/docs/")

_ALLOWED_METHODS = "GET, POST, OPTIONS"
_EXPOSED_HEADERS = "X-Audio-Sample-Rate, Retry-After"


def is_public(path: str) -> bool:
    """Tell whether a path is served without the API key."""
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def auth_middleware(key: str) -> Middleware:
    """Require `Authorization: Bearer <key>` on every non-public route."""
    expected = key.encode()

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        needs_key = request.method != "OPTIONS" and not is_public(request.path)
        if needs_key and not _authorized(request, expected):
            raise ApiError(
                401,
                "missing or wrong API key: send 'Authorization: Bearer <key>'",
                code="invalid-api-key",
                headers={"WWW-Authenticate": "Bearer", "x-should-retry": "false"},
            )
        return await handler(request)

    return check


def _authorized(request: web.Request, expected: bytes) -> bool:
    # Exactly one header, scheme "Bearer" (any case, RFC 6750), the key byte for byte; a key
    # in the query string or a second header never counts.
    values = request.headers.getall("Authorization", [])
    if len(values) != 1:
        return False
    scheme, _, token = values[0].partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(token.encode(), expected)


def cors(app: web.Application, origins: tuple[str, ...]) -> Middleware:
    """Answer preflights and add CORS headers for the allowed origins (none by default)."""
    any_origin = "*" in origins

    def allowed(origin: str | None) -> bool:
        return origin is not None and (any_origin or origin in origins)

    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        # on_response_prepare: streamed bodies send their headers before the handler returns.
        origin = request.headers.get("Origin")
        if allowed(origin):
            assert origin is not None
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = _EXPOSED_HEADERS
            response.headers.add("Vary", "Origin")

    app.on_response_prepare.append(add_headers)

    @web.middleware
    async def preflight(request: web.Request, handler: Handler) -> web.StreamResponse:
        preflight_request = (
            request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers
        )
        if not preflight_request:
            return await handler(request)
        if not allowed(request.headers.get("Origin")):
            raise ApiError(
                403, "this origin may not call the API (http_cors_origins)", code="cors-forbidden"
            )
        return web.Response(
            status=204,
            headers={
                "Access-Control-Allow-Methods": _ALLOWED_METHODS,
                "Access-Control-Allow-Headers": request.headers.get(
                    "Access-Control-Request-Headers", "Authorization, Content-Type"
                ),
                "Access-Control-Max-Age": "600",
            },
        )

    return preflight
