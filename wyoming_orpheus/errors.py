"""The one error base: a failure's code, whether a retry may succeed, and its HTTP status.

Every failure a client can act on is an `OrpheusError` subclass raised where it happens; the
Wyoming door turns it into an `error` event and the HTTP door into OpenAI's envelope, both
from these attributes. Anything else is an internal error (and is logged in full).
"""

from __future__ import annotations

INTERNAL_ERROR = "internal-error"


class OrpheusError(Exception):
    """A failure a client can act on; subclasses set the attributes."""

    code: str = INTERNAL_ERROR
    """The machine-readable code both doors send (docs/troubleshooting.md explains each)."""
    retryable: bool = False
    """Whether the same request may succeed later (HTTP: no `x-should-retry: false`)."""
    http_status: int = 500
    param: str | None = None
    """The request field at fault (OpenAI's `param`), if one is."""


class BadRequest(OrpheusError):
    """A request that cannot be read or has a field of the wrong kind."""

    code = "bad-request"
    http_status = 400


class Unavailable(OrpheusError):
    """The server is starting or stopping; a retry shortly may succeed."""

    code = "unavailable"
    retryable = True
    http_status = 503


def error_code(err: BaseException) -> str:
    """Return the machine-readable code for an error."""
    return err.code if isinstance(err, OrpheusError) else INTERNAL_ERROR


def error_text(err: BaseException) -> str:
    """Return the text a user reads for an error."""
    if error_code(err) == INTERNAL_ERROR:
        return f"internal error ({type(err).__name__}): {err}"
    return str(err)


def log_safe(text: str) -> str:
    """Client-supplied text escaped for a log line: a newline in it cannot forge another line."""
    return text[:300].encode("unicode_escape").decode("ascii")
