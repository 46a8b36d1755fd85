"""What a request's text becomes before it is spoken: strings and pauses."""

from __future__ import annotations

from dataclasses import dataclass


class TextError(ValueError):
    """The text cannot be spoken; the message says why."""


@dataclass(frozen=True)
class Pause:
    """Silence inside an utterance (an SSML break)."""

    seconds: float


Part = str | Pause
