"""The batching LLM stand-in batches as a real server does (issue 29): each request slower when
others run, all together faster, and a request beyond the slots waits for one."""

from __future__ import annotations

import asyncio
import statistics

import aiohttp
import pytest

from tests.stand_ins.batching import Batching
from tests.stand_ins.llm_server import Behaviour, OrpheusStandIn, RequestRecord
from wyoming_orpheus.upstream.completion import build_prompt

RATE = 200.0  # tokens per second for one request alone (short test, same shape at any rate)
TEXT = "A sentence long enough for a few seconds of tokens at this rate, and then some more."


async def ask(session: aiohttp.ClientSession, llm: OrpheusStandIn) -> None:
    prompt = build_prompt("tara", TEXT, "training")
    body = {"prompt": prompt, "stream": True, "max_tokens": 100000}
    async with session.post(llm.base_url + "/completions", json=body) as response:
        assert response.status == 200
        async for _ in response.content:
            pass


def rate_of(record: RequestRecord) -> float:
    (first_tokens, first_at), (tokens, last_at) = record.sent_log[0], record.sent_log[-1]
    return (tokens - first_tokens) / (last_at - first_at)


@pytest.mark.timing
async def test_requests_at_once_each_stream_slower_together_faster_and_wait_for_a_slot() -> None:
    batching = Batching(RATE)  # the published gains: 1, 1.6, 2.1, 2.5; 4 slots
    llm = OrpheusStandIn(Behaviour(batching=batching, frames_per_char=0.5))
    await llm.start()
    try:
        async with aiohttp.ClientSession() as session:
            await ask(session, llm)
            alone = rate_of(llm.requests[0])
            llm.requests.clear()
            await asyncio.gather(*(ask(session, llm) for _ in range(4)))
            each = statistics.median(rate_of(r) for r in llm.requests)
            llm.requests.clear()
            await asyncio.gather(*(ask(session, llm) for _ in range(5)))
            fifth = max(llm.requests, key=lambda r: r.sent_log[0][1])
            others_ended = sorted(r.sent_log[-1][1] for r in llm.requests if r is not fifth)
    finally:
        await llm.stop()
    assert alone == pytest.approx(RATE, rel=0.1)
    assert each == pytest.approx(batching.per_request(4), rel=0.1)  # 2.5 x 200 / 4 = 125
    assert 4 * each > 2 * alone  # together more than twice as fast as one alone
    assert llm.batch_loop().most_running == 4  # never more than the slots
    assert fifth.sent_log[0][1] >= others_ended[0] - 0.05  # it waited for a slot to free
