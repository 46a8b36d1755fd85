"""When to send each sentence request: one plan for every answer on a server (issue 29).

A plan picks start times that make the lead a listener needs the least (schedule.py forecasts
the batch and says what lead a set of start times needs). For a given lead W the pending
sentences are placed in order, each at its earliest start that keeps every sentence before
it within W, and must meet it itself there; the least W with a placement is bisected for.

Several answers on one server are placed together, by their place in their answers (first
sentences first, then second ones, the older answer first on a tie), all within the same W.
Each answer planning for itself alone, with the others' requests as a given, would start
all of its own at once (the batch is faster in total, and its sentences would get their
share sooner) and so would the others: the first sentences would then all share a batch of
four or more, and every listener would wait for them (measured: 13.8 s against 6 s alone
at 45 tokens/s). Placed together, no answer's later sentence slows another's earlier one
beyond the lead they both get: a second answer never starves behind the first one's later
sentences, nor slows the first one's beyond what its listener has.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .schedule import HORIZON, STEP, Job, Server, Track, forecast, job_leads


@dataclass(frozen=True)
class Plan:
    """When each job that has not started should, and the lead the listener then needs."""

    starts: list[float | None]
    lead: float


@dataclass(frozen=True)
class _Answer:
    """One answer's part of the flat list of every answer's jobs."""

    offset: int
    """Index of its first job in the flat list."""
    count: int
    pause: float
    first: int
    hear: float
    hand: float | None


class _Joint:
    """Every answer's jobs on one server, as one list: the forecast runs them all together."""

    def __init__(
        self,
        server: Server,
        jobs: list[Job],
        now: float,
        pause: float,
        first: int,
        hand: float | None,
    ) -> None:
        self.server, self.now = server, now
        # The answers in the order they came, whichever plans: a job sent at the same time
        # as another's waits behind it for a slot in every answer's view alike.
        older = [other for other in server.beside if other.older]
        younger = [other for other in server.beside if not other.older]
        self.jobs: list[Job] = []
        self.answers: list[_Answer] = []
        self.planned: list[float | None] = []
        """Every job's start as its own answer planned it (this answer's: none yet)."""
        for other in older:
            self._add(other.jobs, other.pause, other.first, other.hear, other.hand)
            self.planned += other.starts
        self.ours = self._add(jobs, pause, first, 1.0, hand)
        self.planned += [None] * len(jobs)
        for other in younger:
            self._add(other.jobs, other.pause, other.first, other.hear, other.hand)
            self.planned += other.starts
        self.owner = [a for a, answer in enumerate(self.answers) for _ in range(answer.count)]
        self.priority = [(self._place_in_answer(k), self.owner[k]) for k in range(len(self.jobs))]
        """Who is first for a free slot: the earlier sentence in its answer, then the older
        answer (SentencePlan.turn sends in that order too)."""
        pending = [k for k, job in enumerate(self.jobs) if not job.started and not job.ended]
        places = sorted({self._place_in_answer(k) for k in pending})
        self.levels = [[k for k in pending if self._place_in_answer(k) == i] for i in places]
        """The pending jobs by their place in their answers: first sentences, then second..."""

    def _add(
        self,
        jobs: list[Job] | tuple[Job, ...],
        pause: float,
        first: int,
        hear: float,
        hand: float | None,
    ) -> _Answer:
        answer = _Answer(len(self.jobs), len(jobs), pause, first, hear, hand)
        self.answers.append(answer)
        self.jobs += jobs
        return answer

    def mine(self, values: list[float | None]) -> list[float | None]:
        """Return the planning answer's part of a flat list."""
        return values[self.ours.offset : self.ours.offset + self.ours.count]

    def _place_in_answer(self, k: int) -> int:
        return k - self.answers[self.owner[k]].offset

    def leads(self, starts: list[float | None]) -> list[float]:
        """Return every job's needed lead with these start times (inf: never made)."""
        tracks = self.tracks(starts)
        leads: list[float] = []
        for answer in self.answers:
            end = answer.offset + answer.count
            leads += job_leads(
                self.jobs[answer.offset : end],
                tracks[answer.offset : end],
                self.now,
                answer.pause,
                answer.first,
                answer.hear,
            )
        return leads

    def tracks(self, starts: list[float | None]) -> list[Track]:
        return forecast(self.server, self.jobs, starts, self.now, self.priority)

    def bound(self, k: int, lead: float) -> float:
        """Return the lead job k's answer may need: W, or what its listener has if more."""
        hand = self.answers[self.owner[k]].hand
        return lead if hand is None else max(lead, hand)

    def within(self, leads: list[float], counted: list[int], lead: float) -> bool:
        return all(leads[k] <= self.bound(k, lead) + 1e-9 for k in counted)


def plan(
    server: Server,
    jobs: list[Job],
    now: float,
    pause: float = 0.0,
    first: int = 0,
    hand: float | None = None,
) -> Plan:
    """Return start times for `jobs` that make the lead least, placed with the answers beside
    on the server (`server.beside`), all within one lead (searched on a STEP grid).

    `hand`: once the listener plays, the lead it has (less a margin). Its jobs then start as
    early as keep every job before them within it: the slack goes to the later sentences.
    Planned for the least lead instead, each new plan would spend it on starting them later
    (each keeps the ones before it faster), and the listener's margin would be gone by the
    time it reaches them.
    """
    joint = _Joint(server, jobs, now, pause, first, hand)

    def lead_of(starts: list[float | None]) -> float:
        leads = joint.mine(list(joint.leads(starts)))
        return max((lead for lead in leads if lead is not None), default=0.0)

    def worst(starts: list[float | None]) -> float:
        return max((lead for lead in joint.leads(starts)), default=0.0)

    eager = _place(joint, math.inf)  # everything at its earliest
    assert eager is not None
    best = eager
    low, high = 0.0, min(worst(eager), HORIZON)
    while high - low > STEP and joint.levels:
        mid = (low + high) / 2
        placed = _place(joint, mid)
        if placed is None:
            low = mid
            continue
        high, best = mid, placed
    return Plan(joint.mine(best), lead_of(best))


def _place(joint: _Joint, lead: float) -> list[float | None] | None:
    """Place the pending jobs level by level, each level as early as `lead` allows; None: it
    cannot hold.

    A job started earlier is better for itself and the jobs after it, worse for the jobs
    before it (they share the batch longer): so each level (the answers' sentences at one
    place) starts at the earliest time at which every job before it still meets `lead`, and
    must meet it itself there. A level starts together: placed one answer after another,
    the first would take the slack and the next would wait for it.
    """
    starts: list[float | None] = [None] * len(joint.jobs)
    counted = [k for k, job in enumerate(joint.jobs) if job.started and not job.ended]
    for level in joint.levels:
        if math.isinf(lead):
            for k in level:
                starts[k] = max(joint.now, joint.jobs[k].arrives)
            continue
        _earliest(joint, starts, level, counted, lead)
        counted += level
        if not joint.within(joint.leads(starts), counted, lead):
            return None
    return starts


def _earliest(
    joint: _Joint, starts: list[float | None], level: list[int], counted: list[int], lead: float
) -> None:
    """Set the level's starts to the earliest time (on the STEP grid, none before its text
    came) that keeps the jobs placed before it within `lead` (once they all ended it slows
    none of them)."""

    def at(start: float) -> list[float | None]:
        trial = [*starts]
        for k in level:
            trial[k] = max(start, joint.jobs[k].arrives)
        return trial

    def kind(start: float) -> bool:
        return joint.within(joint.leads(at(start)), counted, lead)

    earliest = joint.now
    if not kind(earliest):
        tracks = joint.tracks(starts)
        ends = [tracks[j].finish() for j in counted if len(tracks[j].points) > 1]
        high = max([earliest, *ends])
        if math.isinf(high) or not kind(high):
            earliest = high  # they miss it however late this one starts: the caller finds out
        else:
            low = earliest
            while high - low > STEP:
                mid = (low + high) / 2
                low, high = (low, mid) if kind(mid) else (mid, high)
            earliest = high
    starts[:] = at(earliest)


def answer_lead(
    server: Server,
    jobs: list[Job],
    starts: list[float | None],
    now: float,
    pause: float = 0.0,
    first: int = 0,
) -> float:
    """Return the lead this answer's listener needs now, its jobs sent at `starts` and the
    answers beside at theirs."""
    joint = _Joint(server, jobs, now, pause, first, None)
    every = [*joint.planned]
    every[joint.ours.offset : joint.ours.offset + joint.ours.count] = starts
    leads = joint.mine(list(joint.leads(every)))
    return max((lead for lead in leads if lead is not None), default=0.0)
