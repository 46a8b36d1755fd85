"""The upstream client against the stand-in: dialects, faults, retry, balance, cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing

import pytest

from tests.stand_ins.batching import Batching
from tests.stand_ins.llm_server import Behaviour, OrpheusStandIn
from wyoming_orpheus.config import DEFAULT_SLOTS, Settings, UpstreamSettings
from wyoming_orpheus.upstream import props
from wyoming_orpheus.upstream.completion import (
    DEFAULT_SAMPLING,
    NoAudioError,
    UpstreamAuthError,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
    max_tokens_for,
)
from wyoming_orpheus.upstream.pool import UpstreamPool
from wyoming_orpheus.upstream.tokens import Piece

TEXT = "Hello there, this is a test of the speech server."


@pytest.fixture
async def pool_factory() -> AsyncIterator[Callable[[Settings], UpstreamPool]]:
    pools: list[UpstreamPool] = []

    def create(settings: Settings) -> UpstreamPool:
        pool = UpstreamPool(settings.llm, settings.requests, settings.sampling)
        pools.append(pool)
        return pool

    yield create
    for pool in pools:
        await pool.close()


async def collect(
    pool: UpstreamPool, voice: str = "tara", text: str = TEXT
) -> list[tuple[int, ...]]:
    await pool.start()
    frames: list[tuple[int, ...]] = []
    async with aclosing(pool.stream(voice, text)) as pieces:
        async for piece in pieces:
            frames.extend(piece.frames)
    return frames


async def _drain(stream: AsyncGenerator[Piece, None]) -> None:
    async with aclosing(stream) as pieces:
        async for _ in pieces:
            pass


@contextlib.asynccontextmanager
async def batching_server(
    batching: Batching, frames_per_char: float
) -> AsyncIterator[OrpheusStandIn]:
    """A stand-in that streams like a batching server, stopped afterwards."""
    server = OrpheusStandIn(Behaviour(batching=batching, frames_per_char=frames_per_char))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def with_upstreams(
    make_settings: Callable[..., Settings], *upstreams: UpstreamSettings, **kw: object
) -> Settings:
    return make_settings(upstreams=upstreams, **kw)


async def test_openai_dialect_request_and_frames(
    llm: OrpheusStandIn, make_settings, pool_factory
) -> None:
    pool = pool_factory(make_settings())
    assert await collect(pool) == llm.requests[0].frames
    await collect(pool)
    first, second = llm.requests
    body = first.body
    assert first.path == "/v1/completions" and body["stream"] is True
    assert body["prompt"].startswith("<custom_token_3><|begin_of_text|>tara: Hello there")
    assert body["repeat_penalty"] == body["repetition_penalty"] == 1.1
    assert (body["temperature"], body["top_p"]) == (0.6, 0.9)
    assert "<custom_token_2>" in body["stop"]
    assert body["max_tokens"] == max_tokens_for(TEXT, 8192) and body["max_tokens"] > 7 * len(
        first.frames
    )
    assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]


async def test_ollama_dialect(llm: OrpheusStandIn, make_settings, pool_factory) -> None:
    upstream = UpstreamSettings(llm.root_url, api="ollama", model="orpheus")
    frames = await collect(pool_factory(with_upstreams(make_settings, upstream)))
    record = llm.requests[0]
    assert record.path == "/api/generate" and frames == record.frames
    assert record.body["raw"] is True
    assert record.body["options"]["repeat_penalty"] == 1.1
    assert record.body["options"]["num_predict"] == max_tokens_for(TEXT, 8192)


async def test_ollama_unknown_model_is_a_clear_error(
    llm: OrpheusStandIn, make_settings, pool_factory
) -> None:
    upstream = UpstreamSettings(llm.root_url, api="ollama", model="llama3")
    with pytest.raises(UpstreamError, match="HTTP 404.*model 'llama3' not found"):
        await collect(pool_factory(with_upstreams(make_settings, upstream)))


async def test_coalesced_and_leading_tokens(
    llm: OrpheusStandIn, make_settings, pool_factory
) -> None:
    llm.behaviour.coalesce = 5
    llm.behaviour.leading_tokens = ("<custom_token_1>", "<custom_token_4>")
    assert await collect(pool_factory(make_settings())) == llm.requests[0].frames


async def test_audio_prompt_format(llm: OrpheusStandIn, make_settings, pool_factory) -> None:
    upstream = UpstreamSettings(llm.base_url, prompt_format="audio")
    await collect(pool_factory(with_upstreams(make_settings, upstream)), voice="leo", text="Hi.")
    assert llm.requests[0].body["prompt"] == "<|audio|>leo: Hi.<|eot_id|>"


async def test_api_key(llm: OrpheusStandIn, make_settings, pool_factory) -> None:
    llm.behaviour.api_key = "sesame"
    with pytest.raises(UpstreamAuthError, match=r"HTTP 401.*--llm-api-key"):
        await collect(pool_factory(make_settings()))
    keyed = UpstreamSettings(llm.base_url, api_key="sesame")
    assert await collect(pool_factory(with_upstreams(make_settings, keyed)))
    assert llm.requests[-1].headers["Authorization"] == "Bearer sesame"


async def test_server_error_is_retried_once_then_reported(
    llm: OrpheusStandIn, make_settings, pool_factory
) -> None:
    llm.behaviour.fault = "http500"
    with pytest.raises(UpstreamError, match="HTTP 500"):
        await collect(pool_factory(make_settings()))
    assert len(llm.requests) == 2


async def test_retry_goes_to_the_second_upstream(make_settings, pool_factory) -> None:
    first, second = OrpheusStandIn(), OrpheusStandIn()
    await first.start()
    await second.start()
    try:
        first.behaviour.fault = "http500"
        settings = with_upstreams(
            make_settings, UpstreamSettings(first.base_url), UpstreamSettings(second.base_url)
        )
        frames = await collect(pool_factory(settings))
        assert len(first.requests) == 1 and len(second.requests) == 1
        assert frames == second.requests[0].frames
    finally:
        await first.stop()
        await second.stop()


async def test_unreachable_server_names_the_url(make_settings, pool_factory) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    upstream = UpstreamSettings(f"http://127.0.0.1:{port}/v1")
    with pytest.raises(
        UpstreamUnreachable,
        match=f"cannot reach the LLM server at http://127.0.0.1:{port}/v1/completions",
    ):
        await collect(pool_factory(with_upstreams(make_settings, upstream)))


async def test_drop_after_audio_is_reported_without_retry(
    llm: OrpheusStandIn, make_settings, pool_factory
) -> None:
    llm.behaviour.fault, llm.behaviour.fault_after = "drop", 14
    with pytest.raises(UpstreamError):
        await collect(pool_factory(make_settings()))
    assert len(llm.requests) == 1


async def test_drop_before_audio_is_retried(
    llm: OrpheusStandIn, make_settings, pool_factory
) -> None:
    llm.behaviour.fault, llm.behaviour.fault_after, llm.behaviour.fault_times = "drop", 0, 1
    frames = await collect(pool_factory(make_settings()))
    assert len(llm.requests) == 2 and frames == llm.requests[1].frames


async def test_stall_between_tokens_times_out(
    llm: OrpheusStandIn, make_settings, pool_factory
) -> None:
    llm.behaviour.fault, llm.behaviour.fault_after = "stall", 7
    with pytest.raises(UpstreamTimeout, match="no next token within 0.5 s"):
        await collect(pool_factory(make_settings(stall_timeout=0.5)))


async def test_no_first_token_times_out(llm: OrpheusStandIn, make_settings, pool_factory) -> None:
    llm.behaviour.fault, llm.behaviour.fault_after = "stall", 0
    # 1 s: the headers come at once from an idle stand-in, but a loaded test machine once
    # took over 0.5 s for them ("did not answer within").
    with pytest.raises(UpstreamTimeout, match="no first token within 1 s"):
        await collect(pool_factory(make_settings(first_token_timeout=1.0)))
    assert len(llm.requests) == 2  # retried once


async def test_first_token_timeout_counts_from_the_request_not_from_the_headers(
    llm: OrpheusStandIn, make_settings, pool_factory
) -> None:
    # NOTE: issue 25: the headers' wait and the first line's wait each had the whole limit,
    # so a server that took 0.7 s for each passed a 1 s first_token_timeout.
    llm.behaviour.headers_delay = llm.behaviour.first_token_delay = 0.7
    started = asyncio.get_running_loop().time()
    with pytest.raises(UpstreamTimeout, match="no first token within 1 s"):
        await collect(pool_factory(make_settings(first_token_timeout=1.0)))
    took = asyncio.get_running_loop().time() - started
    assert len(llm.requests) == 2 and took < 2 * 1.3  # two tries, each cut at 1 s


async def test_a_stall_is_named_a_stall_when_both_timeouts_are_equal(
    llm: OrpheusStandIn, make_settings, pool_factory
) -> None:
    llm.behaviour.fault, llm.behaviour.fault_after = "stall", 7
    settings = make_settings(first_token_timeout=0.5, stall_timeout=0.5)
    with pytest.raises(UpstreamTimeout, match="no next token within 0.5 s"):
        await collect(pool_factory(settings))


@pytest.mark.parametrize("tokens", range(1, 7))
async def test_a_failure_before_the_first_whole_frame_is_retried(
    llm: OrpheusStandIn, make_settings, pool_factory, tokens: int
) -> None:
    # NOTE: issue 25: audio counted as started at the first token in the pool but at the
    # first frame in the synthesis, so 1-6 tokens then a broken connection failed the request.
    llm.behaviour.fault, llm.behaviour.fault_after, llm.behaviour.fault_times = "drop", tokens, 1
    frames = await collect(pool_factory(make_settings()))
    assert len(llm.requests) == 2 and llm.requests[0].tokens_sent == tokens
    assert frames == [tuple(f) for f in llm.requests[1].frames]  # all of the retry, nothing else


async def test_a_failure_after_the_first_whole_frame_is_not_retried(
    llm: OrpheusStandIn, make_settings, pool_factory
) -> None:
    llm.behaviour.fault, llm.behaviour.fault_after, llm.behaviour.fault_times = "drop", 7, 1
    with pytest.raises(UpstreamError, match="broke"):
        await collect(pool_factory(make_settings()))
    assert len(llm.requests) == 1  # audio started: salvaged by the synthesis, not retried


async def test_endless_stream_is_cut_after_max_tokens(
    llm: OrpheusStandIn, make_settings, pool_factory
) -> None:
    llm.behaviour.fault = "endless"
    frames = await collect(pool_factory(make_settings()), text="Short.")
    assert 0 < len(frames) * 7 <= max_tokens_for("Short.", 8192) + 64
    await llm.wait_closed(llm.requests[0])
    assert not llm.requests[0].finished


async def test_answer_without_audio_tokens_names_the_likely_cause(
    llm: OrpheusStandIn, make_settings, pool_factory
) -> None:
    llm.behaviour.fault = "no_audio"
    with pytest.raises(NoAudioError, match="without audio tokens.*Orpheus.*--llm-api ollama"):
        await collect(pool_factory(make_settings()))


async def test_closing_the_stream_closes_the_upstream_connection(
    llm: OrpheusStandIn, make_settings, pool_factory
) -> None:
    llm.behaviour.tokens_per_second = 50
    pool = pool_factory(make_settings())
    await pool.start()
    async with aclosing(pool.stream("tara", TEXT * 5)) as pieces:
        async for _ in pieces:
            if llm.requests[0].tokens_sent >= 10:
                break
    await llm.wait_closed(llm.requests[0], timeout=1.0)
    assert llm.requests[0].client_disconnected and not llm.requests[0].finished


async def test_requests_go_to_the_least_busy_server(make_settings, pool_factory) -> None:
    servers = [OrpheusStandIn(), OrpheusStandIn()]
    for server in servers:
        server.behaviour.tokens_per_second = 400
        await server.start()
    try:
        settings = with_upstreams(make_settings, *(UpstreamSettings(s.base_url) for s in servers))
        pool = pool_factory(settings)
        await asyncio.gather(collect(pool), collect(pool))
        assert [len(s.requests) for s in servers] == [1, 1]
    finally:
        for server in servers:
            await server.stop()


async def test_an_answer_keeps_its_server_and_the_next_answer_goes_to_the_other(
    make_settings, pool_factory
) -> None:
    servers = [OrpheusStandIn(), OrpheusStandIn()]
    for server in servers:
        server.behaviour.tokens_per_second = 400
        await server.start()
    try:
        settings = with_upstreams(make_settings, *(UpstreamSettings(s.base_url) for s in servers))
        pool = pool_factory(settings)
        await pool.start()
        # The first answer holds its sentences back: nothing of it is in flight yet.
        with pool.lease("tara") as first, pool.lease("tara") as second:
            assert first.upstream is not None and second.upstream is not None
            assert first.upstream is not second.upstream
            for _ in range(2):  # each answer's sentences go to its own server
                await _drain(first.stream(TEXT, DEFAULT_SAMPLING))
            await _drain(second.stream(TEXT, DEFAULT_SAMPLING))
        requests = {id(u): len(s.requests) for u, s in zip(pool.upstreams, servers, strict=True)}
        assert requests[id(first.upstream)] == 2 and requests[id(second.upstream)] == 1
        assert [u.leases for u in pool.upstreams] == [0, 0]  # both answers ended
    finally:
        for server in servers:
            await server.stop()


async def _slots_learned(pool: UpstreamPool) -> int:
    async with asyncio.timeout(5):
        while pool.upstreams[0].told_slots is None:
            await asyncio.sleep(0.01)
    return pool.upstreams[0].slots


async def test_the_pool_learns_a_llama_server_s_slots_from_its_props(
    llm: OrpheusStandIn, make_settings, pool_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(props, "ASK_AGAIN", 0.05)
    llm.behaviour.batching = Batching(200, slots=2)
    llm.behaviour.props_status = 503  # still loading its model when we start: asked again
    pool = pool_factory(make_settings())
    await pool.start()
    await asyncio.sleep(0.2)
    assert llm.props_asked >= 2 and pool.upstreams[0].slots == DEFAULT_SLOTS
    llm.behaviour.props_status = 200
    assert await _slots_learned(pool) == 2


async def test_a_server_without_props_is_asked_once_and_slots_set_are_not_asked(
    llm: OrpheusStandIn, make_settings, pool_factory
) -> None:
    pool = pool_factory(make_settings())  # no /props here (404), as vLLM or LM Studio
    await pool.start()
    async with asyncio.timeout(5):
        while llm.props_asked == 0 or not pool._asking[0].done():
            await asyncio.sleep(0.01)
    assert llm.props_asked == 1 and pool.upstreams[0].slots == DEFAULT_SLOTS
    llm.behaviour.batching = Batching(200, slots=2)
    set_by_user = pool_factory(
        with_upstreams(make_settings, UpstreamSettings(llm.base_url, slots=6))
    )
    await set_by_user.start()
    await asyncio.sleep(0.2)
    assert llm.props_asked == 1 and set_by_user.upstreams[0].slots == 6


async def test_voices_go_to_the_server_bound_to_them(make_settings, pool_factory) -> None:
    english, german = OrpheusStandIn(), OrpheusStandIn()
    await english.start()
    await german.start()
    try:
        settings = with_upstreams(
            make_settings,
            UpstreamSettings(english.base_url),
            UpstreamSettings(german.base_url, voices=("de",)),
        )
        pool = pool_factory(settings)
        await collect(pool, voice="jana", text="Guten Tag.")
        await collect(pool, voice="tara", text="Good day.")
        assert [r.voice for r in german.requests] == ["jana"]
        assert [r.voice for r in english.requests] == ["tara"]
        with pytest.raises(UpstreamError, match="no LLM server is configured for voice 'pierre'"):
            await collect(pool, voice="pierre")
    finally:
        await english.stop()
        await german.stop()


def test_settings_are_frozen(make_settings) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        make_settings().voice = "leo"


async def test_the_per_request_rate_is_remembered_by_how_many_requests_ran_at_once(
    make_settings, pool_factory
) -> None:
    # Issue 29: a batching server streams each request slower when others run; the pool
    # remembers the rate at each concurrency (what a schedule of sentence requests needs).
    batching = Batching(400.0)
    async with batching_server(batching, 1.0) as server:
        pool = pool_factory(with_upstreams(make_settings, UpstreamSettings(server.base_url)))
        await collect(pool)
        await asyncio.gather(*(collect(pool) for _ in range(3)))
    (upstream,) = pool.upstreams
    rates = {k: r.tokens_per_second() for k, r in upstream.rate_at.items()}
    assert set(rates) == {1, 3}, rates
    assert rates[1] == pytest.approx(batching.per_request(1), rel=0.25)
    assert rates[3] == pytest.approx(batching.per_request(3), rel=0.25)  # 400 x 2.1 / 3
    assert rates[3] < rates[1]


async def test_a_request_that_ran_alone_then_beside_another_counts_at_each(
    make_settings, pool_factory
) -> None:
    # The second request starts when the first is half done: each ran at two loads. A mean
    # over the whole generation would put ~1.5x the 2-request rate at 1 or 2 (issue 29).
    batching = Batching(300.0)
    async with batching_server(batching, 2.0) as server:
        pool = pool_factory(with_upstreams(make_settings, UpstreamSettings(server.base_url)))
        first = asyncio.create_task(collect(pool))
        while not server.requests or server.requests[0].tokens_sent < 150:
            await asyncio.sleep(0.01)
        await asyncio.gather(first, collect(pool))
    (upstream,) = pool.upstreams
    rates = {k: r.tokens_per_second() for k, r in upstream.rate_at.items()}
    assert set(rates) == {1, 2}, rates
    assert rates[1] == pytest.approx(batching.per_request(1), rel=0.1)
    assert rates[2] == pytest.approx(batching.per_request(2), rel=0.1)  # 300 x 1.6 / 2


async def test_a_load_never_seen_before_is_known_while_its_requests_still_stream(
    make_settings, pool_factory
) -> None:
    # A household's second listener puts its server at a load it never ran at: the plans
    # must not wait for whole generations to end to learn its rate there (issue 29).
    batching = Batching(200.0)
    async with batching_server(batching, 3.0) as server:
        pool = pool_factory(with_upstreams(make_settings, UpstreamSettings(server.base_url)))
        (upstream,) = pool.upstreams
        both = asyncio.gather(collect(pool), collect(pool))
        async with asyncio.timeout(20):
            while 2 not in upstream.rates_at():
                await asyncio.sleep(0.05)
        assert not any(r.finished for r in server.requests)  # learned while they stream
        per_request = upstream.rates_at()[2] * 82.03
        await both
    assert per_request == pytest.approx(batching.per_request(2), rel=0.15)
