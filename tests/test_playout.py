"""Rate-aware playout on a simulated clock (issue 23): the product's Holder and rule, driven
by an LLM whose rate, prefill and stalls the test sets, heard by a player that plays as audio
comes and never re-buffers (what Home Assistant's satellites do)."""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wyoming_orpheus.format import TOKENS_PER_FRAME
from wyoming_orpheus.playout.gate import STARTED, Block, Gate, Silence
from wyoming_orpheus.playout.holder import Holder, Progress
from wyoming_orpheus.playout.rule import KeepAlive, Policy, Release, decide, least_wait
from wyoming_orpheus.upstream.rate import RateMeter

FRAME = 2048 / 24000  # audio seconds per frame
BLOCK = 4  # frames per decoded block (the decoder's first blocks)
POLICY = Policy(margin=0.5, max_hold=15.0)


@dataclass
class Heard:
    first_audio: float
    """Wall seconds from the request to the first audio the player got."""
    gaps: float
    """Seconds the player sat with nothing to play once it had started."""
    mid_segment_gaps: dict[int, float]
    """Per segment, the part of those inside it (not before its first audio)."""
    hold: float
    release: Release


def simulate(
    rate_at: Callable[[float], float],
    length: float,
    *,
    prefill: float = 0.3,
    estimate: float = 1.0,
    remembered: float | None = None,
    policy: Policy | None = POLICY,
    stall: tuple[float, float] | None = None,
    segments: int = 1,
) -> Heard:
    """Make `length` seconds of audio at rate_at(t) audio s per wall s; return what was heard.

    estimate: the length estimate's ratio to the truth; stall: (at audio second, for seconds);
    segments: the answer in that many equal segments, each decoded in blocks of its own.
    """
    per_segment = max(BLOCK, round(length / FRAME / segments))
    progress = Progress(speed=1.0, seconds_per_char=FRAME * estimate, remembered=remembered)
    progress.chars = per_segment * segments  # a "character" per frame: estimate x length
    holder: Holder[tuple[int, bool]] = Holder(
        policy or Policy(fast=0.0), progress
    )  # fast=0: immediate
    now, released_at, stalled = prefill, None, False
    mid_gaps: dict[int, float] = {}

    def out(blocks: list[tuple[int, bool]], at: float, gaps_before: float) -> None:
        nonlocal released_at, mid_gaps
        if blocks and released_at is None:
            released_at = at
        if blocks and not blocks[0][1]:  # a gap before a block that does not start a segment
            segment = blocks[0][0]
            mid_gaps[segment] = mid_gaps.get(segment, 0.0) + holder.listener.gaps - gaps_before

    made = 0
    for segment in range(1, segments + 1):
        for index in range(per_segment):
            now += FRAME / rate_at(now)
            if stall and not stalled and made * FRAME >= stall[0]:
                now += stall[1]
                stalled = True
            made += 1
            progress.meter.add(now, TOKENS_PER_FRAME)
            deadline = holder.deadline
            if deadline is not None and deadline < now:
                out(holder.expire(deadline), deadline, holder.listener.gaps)
            if (index + 1) % BLOCK == 0 or index == per_segment - 1:
                block_seconds = ((index % BLOCK) + 1) * FRAME
                gaps = holder.listener.gaps
                out(holder.offer(now, (segment, index < BLOCK), block_seconds, segment), now, gaps)
    out(holder.finish(now), now, holder.listener.gaps)
    assert released_at is not None
    outcome = holder.outcome
    return Heard(released_at, holder.listener.gaps, mid_gaps, outcome.first_hold, outcome.release)


def constant(rate: float) -> Callable[[float], float]:
    return lambda _: rate


def test_the_least_wait_is_the_length_times_the_shortfall() -> None:
    assert least_wait(10.0, 0.5) == pytest.approx(10.0)
    assert least_wait(10.0, 0.8) == pytest.approx(2.5)
    assert least_wait(10.0, 1.2) == 0.0


@settings(max_examples=150, deadline=None)
@given(
    rate=st.floats(0.3, 1.5),
    length=st.floats(1.0, 30.0),
    estimate=st.floats(1.0, 1.2),
    prefill=st.floats(0.05, 3.0),
)
def test_a_steady_rate_plays_without_gaps_and_waits_about_the_least(
    rate: float, length: float, estimate: float, prefill: float
) -> None:
    heard = simulate(constant(rate), length, estimate=estimate, prefill=prefill)
    first_block = BLOCK * FRAME / rate  # audio can go no sooner than the first block is made
    # The rule's hold: held = made by then >= (estimate - made) x (1/r - 1) + margin.
    needed = least_wait(length * estimate, rate) + POLICY.margin
    if heard.release is Release.CAP:
        # Only where the least wait is beyond the cap; then the hold is the cap, not more.
        assert needed > POLICY.max_hold - 2 * first_block
        assert heard.hold == pytest.approx(POLICY.max_hold, abs=1e-6)
        return
    assert needed <= POLICY.max_hold + 2 * first_block
    assert heard.gaps == pytest.approx(0.0, abs=1e-9)
    # Close to the least wait: at most the estimate's excess, the margin and a block late.
    assert heard.first_audio - prefill <= needed + 2 * first_block + 1e-6
    if rate >= POLICY.fast * 1.01:  # clearly above it, whatever the float rounding
        assert heard.release is Release.IMMEDIATE
        assert heard.first_audio == pytest.approx(prefill + first_block)


@pytest.mark.parametrize("rate", [0.55, 0.7, 0.85])
def test_immediate_playout_stutters_where_adaptive_does_not(rate: float) -> None:
    adaptive = simulate(constant(rate), 17.5)
    immediate = simulate(constant(rate), 17.5, policy=None)
    assert immediate.gaps > 1.0 and adaptive.gaps == pytest.approx(0.0, abs=1e-9)
    assert immediate.first_audio < adaptive.first_audio


def test_a_long_prefill_is_not_counted_as_slowness() -> None:
    # 4 s before the first token, then 1.2x real time: nothing is held once tokens flow.
    heard = simulate(constant(1.2), 10.0, prefill=4.0)
    assert heard.release is Release.IMMEDIATE
    assert heard.first_audio == pytest.approx(4.0 + BLOCK * FRAME / 1.2)


def test_a_fast_server_remembered_starts_at_once() -> None:
    heard = simulate(constant(1.6), 8.0, remembered=1.6)
    assert heard.release is Release.IMMEDIATE and heard.hold == 0.0


def test_a_short_estimate_leaves_small_gaps_a_long_one_none() -> None:
    rate, length = 0.7, 12.0
    short = simulate(constant(rate), length, estimate=0.8)
    exact = simulate(constant(rate), length, estimate=1.0)
    long = simulate(constant(rate), length, estimate=1.2)
    immediate = simulate(constant(rate), length, policy=None)
    assert long.gaps == exact.gaps == pytest.approx(0.0, abs=1e-9)
    # 20% short: the listener runs dry near the end by about the missing share of the wait.
    assert 0 < short.gaps <= 0.2 * length * (1 / rate - 1) + FRAME
    assert short.gaps < immediate.gaps / 3
    assert exact.hold <= long.hold <= exact.hold + 0.2 * length * (1 / rate) + FRAME


def test_a_rate_that_slows_while_held_is_believed_at_once() -> None:
    # 0.9x for the first 1.5 s, then 0.6x: the recent rate, not the average, decides.
    def slowing(t: float) -> float:
        return 0.9 if t < 1.5 else 0.6

    adaptive = simulate(slowing, 15.0)
    immediate = simulate(slowing, 15.0, policy=None)
    assert immediate.gaps > 5.0
    assert adaptive.gaps < immediate.gaps / 5


def test_a_rate_that_slows_after_the_release_leaves_gaps_only_between_segments() -> None:
    # 1.1x at first, then 0.7x from 3 s on, in the first of three 6 s segments: its audio went
    # at once, so it runs dry; the later segments are held at their start instead.
    def slowing(t: float) -> float:
        return 1.1 if t < 3.0 else 0.7

    adaptive = simulate(slowing, 18.0, segments=3)
    immediate = simulate(slowing, 18.0, segments=3, policy=None)
    assert adaptive.release is Release.IMMEDIATE  # 1.1x: clearly above real time
    later = [2, 3]
    assert sum(immediate.mid_segment_gaps.get(k, 0.0) for k in later) > 2.0
    assert sum(adaptive.mid_segment_gaps.get(k, 0.0) for k in later) == pytest.approx(0, abs=1e-9)
    # The shortfall is the same; it is heard between sentences, not inside words.
    assert adaptive.gaps - adaptive.mid_segment_gaps[1] > 1.0


def test_a_stall_releases_at_the_cap_not_later() -> None:
    # 0.5x real time, then a 40 s stall 2 s into the audio: the hold ends at its cap.
    heard = simulate(constant(0.5), 20.0, stall=(2.0, 40.0))
    assert heard.release is Release.CAP
    assert heard.hold == pytest.approx(POLICY.max_hold, abs=1e-6)


def test_the_rule_waits_while_the_rate_is_unknown_and_says_why_it_lets_go() -> None:
    kwargs = {"ahead": 1.0, "remaining": 10.0, "held_for": 0.5, "finished": False}
    assert decide(POLICY, rate=None, **kwargs) is None
    assert decide(POLICY, rate=2.0, **kwargs) is Release.FAST
    assert decide(POLICY, rate=0.9, ahead=1.7, remaining=10.0, held_for=0.5, finished=False) is (
        Release.COVERED
    )  # 10 x (1/0.9 - 1) = 1.11 + 0.5 margin <= 1.7
    assert decide(POLICY, rate=0.9, **kwargs) is None
    assert decide(POLICY, rate=0.9, **{**kwargs, "held_for": 15.0}) is Release.CAP
    assert decide(POLICY, rate=0.9, **{**kwargs, "finished": True}) is Release.END


def test_the_meter_ignores_the_time_before_the_first_token() -> None:
    meter = RateMeter()
    for i in range(1, 41):  # first token at t=5 s, then 0.5x real time
        meter.add(5.0 + i * FRAME / 0.5, TOKENS_PER_FRAME)
    assert meter.rate(5.0 + 40 * FRAME / 0.5) == pytest.approx(0.5, rel=0.05)


async def test_the_gate_says_audio_is_coming_before_it_holds_and_keeps_every_sample() -> None:
    # Remembered at half real time, ~17 s estimated: held until the source ends.
    progress = Progress(speed=1.0, seconds_per_char=FRAME, remembered=0.5)
    progress.chars = 200
    blocks = [np.full(2048, i + 1, dtype=np.int16) for i in range(8)]

    async def source():
        for block in blocks:
            yield Block(block, 1)

    gate = Gate(POLICY, progress)
    got = [b async for b in gate.run(source())]
    assert got[0] is STARTED  # an empty block first: the door sends its start at once
    assert np.array_equal(np.concatenate(got[1:]), np.concatenate(blocks))
    assert gate.outcome.release is Release.END


# --- keep-alive silence while speech is held (issue 29) ---

KEEP = KeepAlive()


def held_request(remembered: float | None, chars: int = 200) -> Holder[int]:
    progress = Progress(speed=1.0, seconds_per_char=FRAME, remembered=remembered)
    progress.chars = chars  # ~17 s estimated: a frame per character
    return Holder(POLICY, progress)


def test_keep_alive_fills_the_wait_the_rule_wants_and_never_more() -> None:
    holder = held_request(remembered=0.8)
    wanted = least_wait(200 * FRAME, 0.8) + POLICY.margin  # ~4.8 s
    assert holder.wanted_wait(0.0) == pytest.approx(wanted)
    first = holder.silence(0.0, True, KEEP)
    # The wait but its margin: the margin is held as speech (silence cannot be taken back).
    assert first == pytest.approx(min(wanted - POLICY.margin, KEEP.ahead))
    holder.listener.send(0.0, first, speech=False)
    # The listener holds what the rule wants: later, only what it played since is topped up.
    assert holder.silence(0.0, False, KEEP) == pytest.approx(0.0, abs=1e-9)
    assert holder.silence(0.1, False, KEEP) == pytest.approx(0.1)
    # Speech goes once the margin of it is held: the silence was the rest of the wait.
    released = [holder.offer(0.0, i, FRAME, 1) for i in range(math.ceil(POLICY.margin / FRAME))]
    assert released[0] == []  # one frame is less than the margin
    assert [i for out in released for i in out] == list(range(len(released)))  # all of it
    assert holder.listener.gaps == 0.0 and holder.listener.silence == pytest.approx(first)
    # Speech flows: no silence is ever put into it.
    assert holder.silence(5.0, True, KEEP) == 0.0


def test_keep_alive_runs_ahead_at_most_its_bound_and_tops_up_as_time_passes() -> None:
    holder = held_request(remembered=0.4, chars=400)  # a wait far beyond 5 s
    first = holder.silence(0.0, True, KEEP)
    assert first == pytest.approx(KEEP.ahead)
    holder.listener.send(0.0, first, speech=False)
    assert holder.silence(0.5, True, KEEP) == pytest.approx(0.5)  # what was played since


def test_keep_alive_silence_ahead_ramps_up_from_the_request() -> None:
    # 3 s ahead per second since the request: HA's converter has its ~4.5 s by 1.5 s, and
    # an early estimate is not sent all at once.
    holder = held_request(remembered=0.4, chars=400)
    assert holder.silence(0.25, True, KEEP, elapsed=0.25) == pytest.approx(0.75)
    holder.listener.send(0.25, 0.75, speech=False)
    assert holder.silence(1.5, True, KEEP, elapsed=1.5) == pytest.approx(4.5)  # it played out
    assert holder.silence(9.0, True, KEEP, elapsed=9.0) <= KEEP.ahead


def test_with_no_rate_to_go_by_keep_alive_sends_the_least_block_when_due() -> None:
    holder = held_request(remembered=None)
    assert holder.wanted_wait(0.0) == 0.0
    assert holder.silence(0.0, False, KEEP) == 0.0
    assert holder.silence(0.5, True, KEEP) == pytest.approx(KEEP.least)


def test_at_or_above_real_time_nothing_is_wanted() -> None:
    assert held_request(remembered=1.2).wanted_wait(0.0) == 0.0


@pytest.mark.timing  # wall-clock intervals: run alone, after the rest (script/test)
async def test_the_gate_keeps_the_line_busy_while_it_holds_and_keeps_every_sample() -> None:
    # An LLM whose rate is unknown and whose first audio takes 1.2 s, then half real time.
    progress = Progress(speed=1.0, seconds_per_char=FRAME, remembered=None)
    progress.chars = 40
    blocks = [np.full(2048, i + 1, dtype=np.int16) for i in range(8)]
    keep = KeepAlive(first=0.1, every=0.2)

    async def source():
        await asyncio.sleep(1.2)
        for block in blocks:
            await asyncio.sleep(2 * FRAME)
            yield Block(block, 1)

    gate = Gate(POLICY, progress, keep_alive=keep)
    opened = time.monotonic()
    arrivals: list[tuple[float, np.ndarray]] = []
    async for block in gate.run(source()):
        arrivals.append((time.monotonic() - opened, block))
    sent = [(t, b) for t, b in arrivals if len(b)]
    speech = [b for _, b in sent if not isinstance(b, Silence)]
    silence = [(t, b) for t, b in sent if isinstance(b, Silence)]
    assert np.array_equal(np.concatenate(speech), np.concatenate(blocks))  # every sample
    assert silence and all(not b.any() for _, b in silence)
    assert silence[0][0] < keep.first + 0.1  # bytes soon after the request
    before_speech = [t for t, b in sent if isinstance(b, Silence)]
    quiet = max(b - a for a, b in itertools.pairwise([0.0, *before_speech]))
    assert quiet < keep.every + 0.1  # never a silent line while speech is held
    assert all(len(b) % 1024 == 0 for _, b in silence)  # whole Wyoming chunks, sent at once
    first_speech = next(i for i, (_, b) in enumerate(sent) if not isinstance(b, Silence))
    assert all(not isinstance(b, Silence) for _, b in sent[first_speech:])  # none in speech
