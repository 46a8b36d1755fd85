"""Rate-aware playout: when audio held back may start, so a slow LLM plays without gaps.

Below real time the only way to gapless speech is to start later. L seconds of audio made at r
audio seconds per wall second take L / r to make; a listener who starts with H seconds in hand
runs dry unless H >= L_rest x (1/r - 1), the least wait (issue 23). Everything here is pure and
takes the time as an argument, so the rule is tested on a simulated clock; the async stage that
drives a `Holder` with a request's PCM is wyoming_orpheus/playout.py.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from typing import Generic, TypeVar

from ..format import REAL_TIME_TOKENS_PER_SECOND
from ..upstream.rate import audio_tokens

T = TypeVar("T")


class Release(Enum):
    """Why held audio was let go (each request's log line names it)."""

    IMMEDIATE = "immediate"
    """Nothing was held: playout is immediate, or the listener had enough ahead already."""
    COVERED = "covered"
    """What the listener has ahead covers the rest at the measured rate."""
    FAST = "fast"
    """The LLM is clearly faster than real time."""
    END = "end"
    """Generation ended: everything is made."""
    CAP = "cap"
    """The hold reached playout_max_hold."""


@dataclass(frozen=True)
class Policy:
    """The rule's settings (playout_margin, playout_max_hold) and its fixed thresholds."""

    margin: float = 0.5
    """Seconds kept in hand beyond the least wait: decode blocks, jitter, a player's prebuffer."""
    max_hold: float = 15.0
    """Longest hold, in seconds; an ESPHome satellite gives up on a silent stream at ~30 s."""
    fast: float = 1.05
    """At or above this real-time factor, nothing is held (measurement noise stays above 1)."""
    measured: float = 0.15
    """Audio seconds a live rate needs before it is trusted over the remembered one."""


def least_wait(length: float, rate: float) -> float:
    """Return the shortest start delay that plays `length` seconds made at `rate` gaplessly."""
    return length * max(0.0, 1.0 / rate - 1.0) if rate > 0 else float("inf")


def decide(
    policy: Policy,
    *,
    ahead: float,
    remaining: float,
    rate: float | None,
    held_for: float,
    finished: bool,
) -> Release | None:
    """Return why audio held for `held_for` seconds may go now, or None to keep holding.

    `ahead`: audio seconds the listener would have in hand (held plus still unplayed);
    `remaining`: audio seconds still to be made (estimated); `rate`: audio seconds made per wall
    second, None while unknown.
    """
    if finished:
        return Release.END
    if rate is not None and rate >= policy.fast:
        return Release.FAST
    if rate is not None and ahead >= least_wait(remaining, rate) + policy.margin:
        return Release.COVERED
    if held_for >= policy.max_hold:
        return Release.CAP
    return None


class RateMeter:
    """Audio seconds made per wall second, from the first token on (the prefill not counted).

    Fed as tokens arrive from every segment of one request, so a later segment generated
    alongside (lookahead) counts as the listener will hear it: audio made by the time it plays.

    The rate given is the lower of the whole run's and the last `window` seconds': a rate that
    slows is believed at once, one that speeds up only as the whole run catches up.
    """

    def __init__(self, window: float = 2.0) -> None:
        self._window = window
        self._started: float | None = None
        self._made = 0.0
        self._recent: deque[tuple[float, float]] = deque()

    def add(self, now: float, seconds: float) -> None:
        """Record `seconds` of audio made by `now`."""
        if self._started is None:
            # The first arrival only starts the clock: its audio was made before it, in time
            # the meter did not see (counting it would overstate a short run's rate).
            self._started = now
            self._recent.append((now, 0.0))
            return
        self._made += seconds
        self._recent.append((now, self._made))
        while len(self._recent) > 2 and self._recent[1][0] <= now - self._window:
            self._recent.popleft()

    @property
    def made(self) -> float:
        """Return the audio seconds measured (after the first arrival)."""
        return self._made

    def rate(self, now: float) -> float | None:
        """Return the measured rate, or None before any audio."""
        if self._started is None or self._made <= 0:
            return None
        overall = self._made / max(now - self._started, 1e-6)
        first_at, first_made = self._recent[0]
        if now - first_at < self._window / 2:
            return overall
        recent = (self._made - first_made) / (now - first_at)
        return min(overall, recent)


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
    segment: int = 0
    """The segment being spoken (a new one may be held at its start)."""
    meter: RateMeter = field(default_factory=RateMeter)

    def tokens(self, now: float, piece: str) -> None:
        """Count a piece of streamed LLM text (every segment's, as it arrives)."""
        if count := audio_tokens(piece):
            self.meter.add(now, count / REAL_TIME_TOKENS_PER_SECOND)

    def rate(self, now: float, policy: Policy) -> float | None:
        """Return output audio seconds per wall second: live once measured, else remembered."""
        live = self.meter.rate(now) if self.meter.made >= policy.measured else None
        rate = live if live is not None else self.remembered
        return None if rate is None else rate / self.speed

    def estimate(self, produced: float) -> float:
        """Return the whole answer's estimated output seconds (never under what was made)."""
        return max(self.chars * self.seconds_per_char / self.speed, produced)


@dataclass
class Outcome:
    """How playout went, for the request's log line and the metrics."""

    held: float = 0.0
    """Seconds audio was held in all (the first hold and any at a sentence)."""
    first_hold: float = 0.0
    release: Release = Release.IMMEDIATE
    """Why the first hold ended."""
    holds: int = 0
    estimated: float = 0.0
    """The length estimated when the first hold ended, in output seconds."""
    rate: float | None = None
    """The output real-time factor the first release was decided with."""


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
        decision = decide(
            self.policy,
            ahead=self.listener.ahead(now) + held,
            remaining=self._progress.estimate(self._produced) - self._produced,
            rate=self._progress.rate(now, self.policy),
            held_for=now - self._since,
            finished=False,
        )
        return [] if decision is None else self._release(now, decision)

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
