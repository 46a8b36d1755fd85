"""OpenAI's error envelope, and the one middleware that turns every failure into it."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler

from ..errors import error_code, error_text, log_safe

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Mapping:
    status: int
    type: str
    retry: bool
    """Whether the same request may succeed later (the SDK retries 5xx unless told not to)."""
    param: str | None = None


# Domain error code (errors.py, shared with the Wyoming door) -> the HTTP answer.
_BY_CODE: dict[str, _Mapping] = {
    "unknown-voice": _Mapping(400, "invalid_request_error", False, "voice"),
    "bad-text": _Mapping(400, "invalid_request_error", False, "input"),
    "busy": _Mapping(429, "rate_limit_error", True),
    "upstream-unreachable": _Mapping(503, "server_error", True),
    "upstream-timeout": _Mapping(504, "server_error", True),
    "upstream-auth": _Mapping(502, "server_error", False),
    "no-audio": _Mapping(502, "server_error", False),
    "upstream-error": _Mapping(502, "server_error", True),
    "codec-error": _Mapping(500, "server_error", False),
    "internal-error": _Mapping(500, "server_error", False),
}
_INTERNAL = _BY_CODE["internal-error"]


class ApiError(Exception):
    """A request the HTTP door refuses; becomes the OpenAI error envelope."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str = "invalid-request",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = dict(headers or {})


def error_response(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    error_type: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """Build the envelope `{"error": {"message", "type", "param", "code"}}`."""
    kind = error_type or ("invalid_request_error" if status < 500 else "server_error")
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return web.json_response(body, status=status, headers=headers)


def domain_error_response(err: BaseException) -> web.Response:
    """Answer a synthesis failure with its code's status, the same code as on Wyoming."""
    code = error_code(err)
    mapping = _BY_CODE.get(code, _INTERNAL)
    headers = {}
    if not mapping.retry:
        # NOTE: REFERENCE.md 7: the openai SDK retries every 5xx twice unless told not to.
        headers["x-should-retry"] = "false"
    if mapping.status in (429, 503):
        headers["Retry-After"] = "1"
    return error_response(
        mapping.status,
        error_text(err),
        param=mapping.param,
        code=code,
        error_type=mapping.type,
        headers=headers,
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn refusals, routing errors and domain failures into the OpenAI envelope."""
    try:
        return await handler(request)
    except ApiError as err:
        return error_response(
            err.status, err.message, param=err.param, code=err.code, headers=err.headers
        )
    except web.HTTPException as err:
        if err.status < 400:
            raise
        return error_response(
            err.status,
            err.reason,
            code=err.reason.lower().replace(" ", "-"),
            headers={k: v for k, v in err.headers.items() if k in ("Allow",)},
        )
    except Exception as err:
        if error_code(err) == "internal-error":
            _LOGGER.exception("HTTP request %s %s failed", request.method, log_safe(request.path))
        else:
            _LOGGER.warning(
                "HTTP request %s %s failed: %s",
                request.method,
                log_safe(request.path),
                log_safe(str(err)),
            )
        return domain_error_response(err)
