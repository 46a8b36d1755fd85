"""OpenAI's error envelope, and the one middleware that turns every failure into it."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from aiohttp import web
from aiohttp.typedefs import Handler

from ..errors import OrpheusError, error_text, log_safe

_LOGGER = logging.getLogger(__name__)


class ApiError(OrpheusError):
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
        self.http_status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = dict(headers or {})


def error_type(status: int) -> str:
    """Return OpenAI's error `type` for a status."""
    if status == 429:
        return "rate_limit_error"
    return "invalid_request_error" if status < 500 else "server_error"


def error_response(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """Build the envelope `{"error": {"message", "type", "param", "code"}}`."""
    body = {"error": {"message": message, "type": error_type(status), "param": param, "code": code}}
    return web.json_response(body, status=status, headers=headers)


def domain_error_response(err: BaseException) -> web.Response:
    """Answer a failure with its status and code, the same code as on Wyoming."""
    failure = err if isinstance(err, OrpheusError) else OrpheusError()
    headers = dict(getattr(failure, "headers", {}))
    if not failure.retryable:
        # NOTE: REFERENCE.md 7: the openai SDK retries every 5xx twice unless told not to.
        headers.setdefault("x-should-retry", "false")
    if failure.http_status in (429, 503):
        headers.setdefault("Retry-After", "1")
    return error_response(
        failure.http_status,
        error_text(err),
        param=failure.param,
        code=failure.code,
        headers=headers,
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn refusals, routing errors and domain failures into the OpenAI envelope."""
    try:
        return await handler(request)
    except ApiError as err:
        return error_response(
            err.http_status, err.message, param=err.param, code=err.code, headers=err.headers
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
        # Syntheses are counted and logged where they end (outcomes.record); this is any
        # other route's failure.
        _LOGGER.error(
            "HTTP request %s %s failed", request.method, log_safe(request.path), exc_info=err
        )
        return domain_error_response(err)
