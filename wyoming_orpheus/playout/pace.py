"""Each voice's pace, learned from finished segments: how long an answer will be before it is."""

from __future__ import annotations

from ..format import FRAME_SECONDS

SECONDS_PER_CHAR = 0.07
"""Orpheus's pace before a voice has been heard: ~14 characters a second (issue 23)."""
PACE_WEIGHT = 0.5
"""How much a finished segment moves its voice's learned pace (a few answers settle it)."""


class Pace:
    """Audio seconds per spoken character, per voice (the playout rule's length estimate)."""

    def __init__(self) -> None:
        self._seconds_per_char: dict[str, float] = {}

    def of(self, voice: str) -> float:
        """Return the voice's learned pace, or Orpheus's usual one before it was heard."""
        return self._seconds_per_char.get(voice, SECONDS_PER_CHAR)

    def learn(self, voice: str, frames: int, chars: int) -> None:
        """Move the voice's pace towards a finished segment's audio seconds per character."""
        if frames < 2 or chars < 1:
            return
        before = self.of(voice)
        heard = frames * FRAME_SECONDS / chars
        self._seconds_per_char[voice] = before + PACE_WEIGHT * (heard - before)
