"""What a request's text becomes before it is spoken: strings and pauses."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import OrpheusError


class TextError(OrpheusError, ValueError):
    """The text cannot be spoken; the message says why."""

    code = "bad-text"
    http_status = 400
    param = "input"


@dataclass(frozen=True)
class Pause:
    """Silence inside an utterance (an SSML break)."""

    seconds: float


Part = str | Pause
