"""The listener model: when a player that plays audio as it comes runs dry (pure, clock-free)."""

from __future__ import annotations


class Listener:
    """When a player that plays as audio comes (and pauses when it runs dry) runs out."""

    def __init__(self) -> None:
        self._until: float | None = None
        self._speaking = False
        self.gaps = 0.0
        """Seconds it waited with nothing to play after speech started (heard as gaps)."""
        self.silence = 0.0
        """Seconds of keep-alive silence it was sent before speech."""

    def send(self, now: float, seconds: float, speech: bool = True) -> None:
        """Hand the player `seconds` of audio at `now` (speech, or keep-alive silence)."""
        if self._until is None:
            self._until = now
        elif self._until < now:
            if self._speaking:  # silence that ran out before speech is no gap in it
                self.gaps += now - self._until
            self._until = now
        self._until += seconds
        self._speaking = self._speaking or speech
        if not speech:
            self.silence += seconds

    def ahead(self, now: float) -> float:
        """Return the seconds it still has to play."""
        return 0.0 if self._until is None else max(0.0, self._until - now)

    @property
    def started(self) -> bool:
        """Tell whether speech was sent (keep-alive silence does not count)."""
        return self._speaking
