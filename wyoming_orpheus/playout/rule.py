"""The playout rule: when audio held back may start, so a slow LLM plays without gaps.

Below real time the only way to gapless speech is to start later. L seconds of audio made at r
audio seconds per wall second take L / r to make; a listener who starts with H seconds in hand
runs dry unless H >= L_rest x (1/r - 1), the least wait (issue 23). Everything here is pure and
takes the time as an argument, so the rule is tested on a simulated clock; the async stage that
drives a `Holder` (holder.py) with a request's PCM is gate.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ..config import PlayoutSettings
from ..format import SAMPLE_RATE


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


@dataclass(frozen=True)
class KeepAlive:
    """Silence while speech is held, so a satellite never waits on a silent line (issue 29).

    An ESPHome Voice PE marks an announcement finished when playback has not started 2 s after
    the request, and Home Assistant's ffmpeg converter writes nothing until it read ~4.5 s of
    audio: a silent hold reaches it as a silent stream. Silence sent while speech is held is
    heard as the same wait, and may run ahead of real time up to `ahead` seconds, never beyond
    the wait the rule still wants, so it never delays speech.
    """

    first: float = 0.25
    """Seconds after the request when the first bytes go, if no speech went by then."""
    every: float = 0.5
    """Longest quiet on the line while speech is held (well under 1 s)."""
    ahead: float = 5.0
    """Most silence in the listener's hand (past the ~4.5 s HA's converter reads first)."""
    ramp: float = 3.0
    """Most silence ahead per second since the request: HA's converter has its ~4.5 s by
    1.5 s, and the wait is not sent at once from the first estimate (the rate at a load
    never seen before is measured within a second or two of running at it)."""
    least: float = 1024 / SAMPLE_RATE
    """The smallest keep-alive: one 1024-sample Wyoming chunk (~43 ms); silence goes in
    whole such blocks, so the Wyoming door sends it at once, never held in a part chunk."""


def playout_policy(settings: PlayoutSettings) -> Policy | None:
    """Return the rule's policy for the playout settings; None: immediate playout."""
    if settings.playout != "adaptive":
        return None
    return Policy(margin=settings.playout_margin, max_hold=settings.playout_max_hold)


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
    need: float | None = None,
) -> Release | None:
    """Return why audio held for `held_for` seconds may go now, or None to keep holding.

    `ahead`: audio seconds the listener would have in hand (held plus still unplayed);
    `remaining`: audio seconds still to be made (estimated); `rate`: audio seconds made per wall
    second, None while unknown. `need`: the lead an answer's sentence plan needs in hand
    (schedule.py), in place of the one-request rule `least_wait(remaining, rate)`.
    """
    if finished:
        return Release.END
    if rate is not None and rate >= policy.fast:
        return Release.FAST
    if need is None and rate is not None:
        need = least_wait(remaining, rate)
    if need is not None and ahead >= need + policy.margin:
        return Release.COVERED
    if held_for >= policy.max_hold:
        return Release.CAP
    return None


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
