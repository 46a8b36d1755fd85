"""One place that counts and logs how a request ended, for both doors."""

from __future__ import annotations

import asyncio
import logging

from .errors import INTERNAL_ERROR, error_code, log_safe
from .metrics import Metrics

_LOGGER = logging.getLogger(__name__)

CANCELLED = "cancelled"
"""The outcome of a request whose client went away (a hang-up, or dropped for not reading)."""


def client_gone(err: BaseException) -> bool:
    """Tell whether a failure is the client's leaving rather than ours."""
    return isinstance(err, (asyncio.CancelledError, ConnectionError))


def record(metrics: Metrics, door: str, err: BaseException | None) -> str | None:
    """Count one request's outcome and log a failure; return its code (None: success)."""
    if err is None:
        metrics.finished(door, None)
        return None
    if client_gone(err):
        _LOGGER.debug("%s request ended: the client went away (%s)", door, type(err).__name__)
        metrics.finished(door, CANCELLED)
        return CANCELLED
    code = error_code(err)
    metrics.finished(door, code)
    if code == INTERNAL_ERROR:
        _LOGGER.error("%s request failed", door, exc_info=err)
    else:
        _LOGGER.warning("%s request failed (%s): %s", door, code, log_safe(str(err)))
    return code
