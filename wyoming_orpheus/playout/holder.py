"""Holding one request's blocks by the rule: what the rule knows of a request, and the holder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from ..upstream.rate import RateMeter
from ..upstream.tokens import Piece
from .rule import KeepAlive, Outcome, Policy, Release, decide, least_wait
from .timeline import Listener

T = TypeVar("T")


@dataclass
class Progress:
    """What the rule knows of one request; the synthesis writes it as text and tokens come."""

    speed: float
    seconds_per_char: float
    """The voice's pace: audio seconds (at speed 1) per spoken character."""
    remembered: float | None
    """The real-time factor its LLM server had on its last requests (None: never measured)."""
    chars: int = 0
    """Spoken characters known so far (streamed text grows)."""
    meter: RateMeter = field(default_factory=RateMeter)
    lead: Callable[[float], float] | None = None
    """The lead an answer's sentence plan needs in hand at a time (None: one request, the
    rate's rule)."""

    def arrived(self, piece: Piece) -> None:
        """Count a parsed piece of LLM text (every segment's, as it arrives)."""
        self.meter.add(piece.arrived, piece.tokens)

    def rate(self, now: float, policy: Policy) -> float | None:
        """Return output audio seconds per wall second: live once measured, else remembered."""
        live = self.meter.rate(now) if self.meter.made >= policy.measured else None
        rate = live if live is not None else self.remembered
        return None if rate is None else rate / self.speed

    def estimate(self, produced: float) -> float:
        """Return the whole answer's estimated output seconds (never under what was made)."""
        return max(self.chars * self.seconds_per_char / self.speed, produced)


class Holder(Generic[T]):
    """Holds a request's blocks by the rule; what each call returns may go to the listener now.

    A block that starts the audio or a new segment is held until `decide` lets it go; after
    that, blocks of the same segment pass straight through.
    """

    def __init__(self, policy: Policy, progress: Progress) -> None:
        self.policy = policy
        self._progress = progress
        self.listener = Listener()
        self._held: list[tuple[T, float]] = []
        self._since: float | None = None
        self._segment = -1
        self._produced = 0.0
        self.outcome = Outcome()

    @property
    def deadline(self) -> float | None:
        """Return when the hold reaches its cap, or None while nothing is held."""
        return None if self._since is None else self._since + self.policy.max_hold

    @property
    def holding(self) -> bool:
        """Tell whether blocks are held."""
        return self._since is not None

    def offer(self, now: float, block: T, seconds: float, segment: int) -> list[T]:
        """Take one block of `seconds` of audio from `segment`; return what may go now."""
        self._produced += seconds
        if self._since is None and segment == self._segment:
            self.listener.send(now, seconds)
            return [block]
        self._segment = segment
        if self._since is None:
            self._since = now
        self._held.append((block, seconds))
        held = sum(s for _, s in self._held)
        rate, need = self._judged(now)
        if need is not None and self._progress.lead is not None and self.listener.started:
            # A later sentence of a plan: its margin was given at the first release and the
            # plan keeps it; held for it again here, the listener would run dry for certain
            # to avoid a gap the plan does not expect. Held only while it would run dry.
            need = max(0.0, need - self.policy.margin)
        decision = decide(
            self.policy,
            ahead=self.listener.ahead(now) + held,
            remaining=self._remaining,
            rate=rate,
            held_for=now - self._since,
            finished=False,
            need=need,
        )
        return [] if decision is None else self._release(now, decision)

    def in_hand(self, now: float) -> float | None:
        """Return the audio the listener has to play, held blocks included, once speech was
        sent (None before: nothing plays yet)."""
        if not self.listener.started:
            return None
        return self.listener.ahead(now) + sum(s for _, s in self._held)

    @property
    def _remaining(self) -> float:
        return self._progress.estimate(self._produced) - self._produced

    def _judged(self, now: float) -> tuple[float | None, float | None]:
        """Return the rate the fast rule reads and the lead needed (None: not known yet).

        An answer in sentence requests has its plan's lead; its rate is no listener's: the
        sentences generate side by side.
        """
        if self._progress.lead is not None:
            return None, self._progress.lead(now)
        rate = self._progress.rate(now, self.policy)
        return rate, None if rate is None else least_wait(self._remaining, rate)

    def wanted_wait(self, now: float) -> float:
        """Return how many seconds more the rule wants the listener to have in hand before
        held speech goes (0 when nothing says: the rate unknown, or fast enough)."""
        rate, need = self._judged(now)
        if need is None or (rate is not None and rate >= self.policy.fast):
            return 0.0
        held = sum(s for _, s in self._held)
        need = min(need, self.policy.max_hold) + self.policy.margin  # inf: never made
        return max(0.0, need - self.listener.ahead(now) - held)

    def silence(
        self, now: float, due: bool, keep_alive: KeepAlive, elapsed: float | None = None
    ) -> float:
        """Return the seconds of silence to send now while speech is held (0: none).

        Up to the wait the rule still wants (its margin apart), at most `keep_alive.ahead` in
        the listener's hand: it hears the same wait, and never more than the rule would have
        held. When
        nothing is wanted or known, a minimal block when bytes are `due` (the line quiet for
        `keep_alive.every` seconds), so a satellite is never left without bytes.
        """
        if self.listener.started and not self.holding:
            return 0.0  # speech flows: what keeps the line busy is the speech
        most = keep_alive.ahead
        if elapsed is not None:  # seconds since the request: the silence ahead ramps up
            most = min(most, keep_alive.ramp * elapsed)
        room = most - self.listener.ahead(now)
        # The margin is left to held speech: sent as silence it could not be taken back if
        # the wait the rule expects shrinks (a server faster than its estimate).
        fill = min(self.wanted_wait(now) - self.policy.margin, room)
        if due:
            fill = max(fill, keep_alive.least)
        return max(0.0, fill)

    def expire(self, now: float) -> list[T]:
        """Let the held blocks go at the cap (the LLM stalled while they were held)."""
        return self._release(now, Release.CAP) if self._since is not None else []

    def finish(self, now: float) -> list[T]:
        """Let everything go: generation ended (or failed)."""
        return self._release(now, Release.END) if self._since is not None else []

    def _release(self, now: float, why: Release) -> list[T]:
        assert self._since is not None
        held_for = now - self._since
        self._since = None
        outcome = self.outcome
        if held_for > 0:
            outcome.holds += 1
            outcome.held += held_for
        if not self.listener.started:
            outcome.first_hold = held_for
            outcome.release = why if held_for > 0 else Release.IMMEDIATE
            outcome.estimated = self._progress.estimate(self._produced)
            outcome.rate = self._progress.rate(now, self.policy)
        out, self._held = self._held, []
        for _, seconds in out:
            self.listener.send(now, seconds)
        return [block for block, _ in out]
