"""The listener model: when a player that plays audio as it comes runs dry (pure, clock-free)."""

from __future__ import annotations


class Listener:
    """When a player that plays as audio comes (and pauses when it runs dry) runs out."""

    def __init__(self) -> None:
        self._until: float | None = None
        self.gaps = 0.0
        """Seconds it waited with nothing to play after it started (what was heard as gaps)."""

    def send(self, now: float, seconds: float) -> None:
        """Hand the player `seconds` of audio at `now`."""
        if self._until is None:
            self._until = now
        elif self._until < now:
            self.gaps += now - self._until
            self._until = now
        self._until += seconds

    def ahead(self, now: float) -> float:
        """Return the seconds it still has to play."""
        return 0.0 if self._until is None else max(0.0, self._until - now)

    @property
    def started(self) -> bool:
        """Tell whether anything was sent."""
        return self._until is not None
