"""Sentence requests on a batching LLM server: when each starts, and the wait they need.

Below real time an answer speaks sooner as several requests, one per sentence, the next ones
generating while the first plays (issue 29). But a server batches: k requests in flight stream
at about `rate x gain(k) / k` each, together faster than one alone and each slower. A sentence
started too early slows the ones before it more than it gains; one started too late is not
ready when the listener gets to it. Everything here is pure and takes the clock as an argument:
`forecast` runs the server forward (the batching model) and says how far ahead of the listener
the audio must be; `plan` picks start times that make that wait the least. The live side that
starts the requests is synthesis/sentences.py; the hold, holder.py.

All times are wall seconds, all lengths output seconds of audio (speed applied).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

DEFAULT_GAINS = (1.0, 1.5, 1.75, 1.9)
"""Batch throughput at 1..4 requests as a multiple of one alone, where none was measured: the
low end of published llama.cpp figures (1.5-1.6x at 2, 1.9-3.0x at 4), so an unmeasured gain
errs toward holding a little longer, never toward a gap."""
STEP = 0.05
"""How finely start times and waits are searched, in seconds."""
HORIZON = 600.0
"""No plan looks further ahead than this (a stalled server would never finish)."""


@dataclass(frozen=True)
class Server:
    """What is known of one LLM server: each request's output rate by requests in flight."""

    rates: tuple[float, ...]
    """rates[k - 1]: each request's audio seconds per wall second with k in flight."""
    slots: int = 4
    """Requests it runs at once; one beyond waits for a slot."""
    others: int = 0
    """Requests in flight there that no plan knows (they share the batch and the slots, and
    are taken to run on throughout)."""
    beside: tuple[Beside, ...] = ()
    """Other answers' sentences there: they share the batch and the slots while they run."""

    def each(self, running: int) -> float:
        """Return each request's rate with `running` in flight (flat throughput beyond)."""
        known = len(self.rates)
        if running <= known:
            return self.rates[running - 1]
        return self.rates[-1] * known / running


def server_rates(
    measured: dict[int, float], slots: int, gains: tuple[float, ...] = DEFAULT_GAINS
) -> tuple[float, ...]:
    """Return per-request rates at 1..slots: measured where known, else from the gain curve.

    An unmeasured concurrency is scaled from the nearest measured one by the gain curve.
    """
    if not measured:
        raise ValueError("no rate measured")

    def gain(k: int) -> float:
        return gains[min(k, len(gains)) - 1]

    rates = []
    for k in range(1, max(slots, 1) + 1):
        if k in measured:
            rates.append(measured[k])
            continue
        near = min(measured, key=lambda m: (abs(m - k), m))
        rates.append(measured[near] * (gain(k) / k) / (gain(near) / near))
    return tuple(rates)


@dataclass
class Job:
    """One sentence's request: what is known of it now."""

    length: float
    """Estimated output seconds (at least what was made; exact once it ended)."""
    made: float = 0.0
    """Output seconds its request made so far."""
    started: bool = False
    arrives: float = 0.0
    """When its text is known: it cannot start before."""
    ended: bool = False

    @property
    def left(self) -> float:
        """Return the output seconds still to make."""
        return 0.0 if self.ended else max(0.0, self.length - self.made)


@dataclass(frozen=True)
class Beside:
    """Another answer on the same server, as this answer's plan sees it: its sentences run
    in the same batch, and a plan places theirs and ours together (placement.py)."""

    jobs: tuple[Job, ...]
    """Its sentences, in this answer's output seconds."""
    starts: tuple[float | None, ...]
    """When it plans to send each (None: sent already, or not planned yet)."""
    pause: float = 0.0
    first: int = 0
    """The sentence its listener is at."""
    hear: float = 1.0
    """Its listener's seconds per output second of this answer (the speeds' ratio)."""
    hand: float | None = None
    """The lead its listener has, less a margin, once it plays (None: not yet)."""
    older: bool = True
    """It came before this answer (the older is first in line for a slot on a tie)."""


@dataclass
class Track:
    """One job's progress in a forecast: (wall time, output seconds made) points."""

    points: list[tuple[float, float]] = field(default_factory=list)

    def finish(self) -> float:
        """Return when the job ends (inf when the forecast never got there)."""
        return self.points[-1][0] if self.points else math.inf


def forecast(
    server: Server,
    jobs: list[Job] | tuple[Job, ...],
    starts: list[float | None] | tuple[float | None, ...],
    now: float,
    priority: list[tuple[int, int]] | None = None,
) -> list[Track]:
    """Run the batching model forward: every job's progress from `now` on.

    `starts[i]` is when job i's request is sent (None: already started, or never). A job sent
    while the slots are full waits for one (the first by `priority`, else in order); each
    running job makes `server.each(k)` seconds per second with k in flight (`server.others`
    included). The answers beside (`server.beside`) are not run here: placement.py runs
    every answer's jobs as one list.
    """
    made = [j.made for j in jobs]
    tracks = [Track([(now, made[i])]) for i in range(len(jobs))]
    running = [i for i, j in enumerate(jobs) if j.started and j.left > 0]
    sent = sorted((s, i) for i, s in enumerate(starts) if s is not None and not jobs[i].started)
    waiting: list[int] = []
    t = now
    while (running or sent or waiting) and t < now + HORIZON:
        while sent and sent[0][0] <= t:
            waiting.append(sent.pop(0)[1])
        if priority is not None:
            waiting.sort(key=lambda i: priority[i])
        while waiting and len(running) + server.others < max(server.slots, 1):
            running.append(joined := waiting.pop(0))
            if tracks[joined].points[-1][0] < t:
                tracks[joined].points.append((t, made[joined]))  # it waited until now
        rate = server.each(len(running) + server.others) if running else 0.0
        ends = [t + (jobs[i].length - made[i]) / rate for i in running] if rate > 0 else []
        step = min([*ends, sent[0][0]] if sent else ends, default=now + HORIZON)
        if step <= t and not ends:
            step = t  # a start due now: taken in the next round
        for i in running:
            made[i] = min(jobs[i].length, made[i] + rate * (step - t))
            tracks[i].points.append((step, made[i]))
        t = max(step, t)
        running = [i for i in running if made[i] < jobs[i].length - 1e-9]
        if not running and not sent and waiting and rate == 0 and server.slots <= server.others:
            break  # never a slot: the forecast cannot see past this
    return tracks


def job_leads(
    jobs: list[Job] | tuple[Job, ...],
    tracks: list[Track],
    now: float,
    pause: float = 0.0,
    first: int = 0,
    hear: float = 1.0,
) -> list[float]:
    """Return, per job, the audio the listener must have in hand now for it to be in time.

    Jobs from `first` on are heard in order after what is in hand: job `first` from where
    it was made (its made audio is already in hand, or about to be), later ones whole, with
    `pause` seconds between. Audio at position p of what is still to hear must be made
    by then: lead >= (when it is made - now) - p, for every point of every forecast
    (both sides are piecewise linear, so the points are enough). `hear`: the listener's
    seconds per job second (an answer beside, at another speed).
    """
    leads = [0.0] * len(jobs)
    before = 0.0  # output seconds heard before job i's first sample, beyond what is in hand
    for i in range(first, len(jobs)):
        job, track = jobs[i], tracks[i]
        offset = job.made if i == first else 0.0  # what of job `first` is in hand already
        if not job.ended:
            if math.isinf(track.finish()) or track.points[-1][1] < job.length - 1e-6:
                leads[i] = math.inf  # it would never be made
            else:
                leads[i] = max(
                    0.0,
                    *(
                        (when - now) - (before + (made - offset) * hear)
                        for when, made in track.points
                    ),
                )
        before += (job.length - offset) * hear + pause
    return leads


def needed_lead(
    jobs: list[Job], tracks: list[Track], now: float, pause: float = 0.0, first: int = 0
) -> float:
    """Return the audio the listener must have in hand now so that no job runs dry."""
    return max(job_leads(jobs, tracks, now, pause, first), default=0.0)
