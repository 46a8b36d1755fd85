"""Domain errors -> the code and text a client sees (one place for both front doors)."""

from __future__ import annotations

from .decode.snac import CodecLoadError
from .synthesis import BusyError, VoiceError
from .text import TextError
from .upstream.completion import UpstreamError

# Codes a client can act on; anything else is an internal error (and gets logged in full).
_CODES: tuple[tuple[type[Exception], str], ...] = (
    (BusyError, "busy"),
    (VoiceError, "unknown-voice"),
    (TextError, "bad-text"),
    (CodecLoadError, "codec-error"),
)


def error_code(err: BaseException) -> str:
    """Return the machine-readable code for an error."""
    if isinstance(err, UpstreamError):
        return err.code  # the subclass says which upstream failure it was
    for kind, code in _CODES:
        if isinstance(err, kind):
            return code
    return "internal-error"


def error_text(err: BaseException) -> str:
    """Return the text a user reads for an error."""
    if error_code(err) == "internal-error":
        return f"internal error ({type(err).__name__}): {err}"
    return str(err)


def log_safe(text: str) -> str:
    """Client-supplied text escaped for a log line: a newline in it cannot forge another line."""
    return text[:300].encode("unicode_escape").decode("ascii")
