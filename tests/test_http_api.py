"""The HTTP door's rules: errors, API key, CORS, body limits, catalog, health, metrics, docs."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import openai
import pytest
from openapi_spec_validator import validate
from prometheus_client.parser import text_string_to_metric_families
from wyoming.client import AsyncTcpClient
from wyoming.tts import Synthesize

from tests.stand_ins.llm_server import OrpheusStandIn
from tests.wyoming_client import read_reply
from wyoming_orpheus.config import Settings, UpstreamSettings
from wyoming_orpheus.engine import Engine
from wyoming_orpheus.http_api import HttpServer, HttpState, create_app
from wyoming_orpheus.wyoming_server.handler import build_info
from wyoming_orpheus.wyoming_server.listener import WyomingServer

SPEECH = "/v1/audio/speech"
KEY = "s3cret-key"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def post(
    session: aiohttp.ClientSession, url: str, **kwargs: Any
) -> tuple[int, dict[str, Any], Any]:
    async with session.post(url, **kwargs) as response:
        json_body = response.content_type == "application/json"
        body = await response.json() if json_body else await response.read()
        return response.status, dict(response.headers), body


def assert_envelope(body: Any, param: str | None, code: str) -> None:
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert error["param"] == param and error["code"] == code


MISTAKES = [
    ({"input": "Hi.", "voice": "nobody"}, "voice", "unknown-voice"),
    ({"input": "Hi.", "voice": {"name": "tara"}}, "voice", "invalid-value"),
    ({"input": "Hi.", "voice": {"id": "nobody"}}, "voice", "unknown-voice"),
    ({"input": "Hi.", "voice": 7}, "voice", "invalid-value"),
    ({"input": "Hi.", "response_format": "ogg"}, "response_format", "invalid-value"),
    ({"input": "Hi.", "stream_format": "ws"}, "stream_format", "invalid-value"),
    ({"input": ""}, "input", "bad-text"),
    ({"input": "  <b></b> "}, "input", "bad-text"),
    ({"voice": "tara"}, "input", "invalid-value"),
    ({"input": "x" * 301}, "input", "bad-text"),
    ({"input": "Hi.", "speed": 4.5}, "speed", "invalid-value"),
    ({"input": "Hi.", "speed": "fast"}, "speed", "invalid-value"),
    ({"input": "Hi.", "temperature": 2.5}, "temperature", "invalid-value"),
    ({"input": "Hi.", "top_p": 0}, "top_p", "invalid-value"),
    ({"input": "Hi.", "repetition_penalty": True}, "repetition_penalty", "invalid-value"),
    ({"input": "Hi.", "seed": 1.5}, "seed", "invalid-value"),
    ({"input": "Hi.", "max_tokens": 100000}, "max_tokens", "invalid-value"),
    ({"input": "Hi.", "model": 5}, "model", "invalid-value"),
]


async def test_client_mistakes_are_400_with_the_field_named(
    make_settings, engine_factory, http_factory, session
) -> None:
    # One engine for every case: none of them changes it (issue 30: engines shared).
    url = await http_factory(await engine_factory(make_settings(max_text_chars=300)))
    for body, param, code in MISTAKES:
        status, _, answer = await post(session, url + SPEECH, json=body)
        assert status == 400, body
        assert_envelope(answer, param, code)


async def test_bad_json_and_wrong_content_type(http_url: str, session) -> None:
    status, _, body = await post(
        session, http_url + SPEECH, data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert status == 400
    assert_envelope(body, None, "invalid-json")
    status, _, body = await post(
        session, http_url + SPEECH, data=b"[1]", headers={"Content-Type": "application/json"}
    )
    assert status == 400
    status, _, body = await post(session, http_url + SPEECH, data="input=hi")
    assert status == 415
    assert_envelope(body, None, "unsupported-media-type")


async def test_a_large_body_is_refused_before_it_is_read(http_url: str) -> None:
    host, port = http_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    # Announce 50 MB and send none of it: the answer must come without waiting for the body.
    writer.write(
        f"POST {SPEECH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 50000000\r\n\r\n".encode()
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    writer.close()
    assert head.startswith(b"HTTP/1.1 413")


async def test_a_chunked_body_over_the_limit_is_refused(
    make_settings, engine_factory, http_factory, session
) -> None:
    engine = await engine_factory(make_settings(http_max_body_bytes=2048))

    async def body() -> AsyncIterator[bytes]:
        yield b'{"input": "'
        for _ in range(100):
            yield b"x" * 1000
        yield b'"}'

    status, _, answer = await post(
        session,
        await http_factory(engine) + SPEECH,
        data=body(),
        headers={"Content-Type": "application/json"},
    )
    assert status == 413
    assert_envelope(answer, None, "body-too-large")


@pytest.mark.parametrize(
    ("fault", "status", "code", "retry"),
    [
        ("http500", 502, "upstream-error", None),
        ("no_audio", 502, "no-audio", "false"),
        ("auth", 502, "upstream-auth", "false"),
        ("unreachable", 503, "upstream-unreachable", None),
        ("stall", 504, "upstream-timeout", None),
    ],
)
async def test_upstream_failures_map_to_5xx_with_the_wyoming_codes(
    make_settings,
    engine_factory,
    http_factory,
    session,
    llm: OrpheusStandIn,
    fault,
    status,
    code,
    retry,
) -> None:
    settings = make_settings(first_token_timeout=0.5)
    if fault == "unreachable":
        settings = make_settings(upstreams=(UpstreamSettings("http://127.0.0.1:9/v1"),))
    elif fault == "auth":
        llm.behaviour.api_key = "needed"
    else:
        llm.behaviour.fault, llm.behaviour.fault_after = fault, 0
    url = await http_factory(await engine_factory(settings))
    got, headers, body = await post(session, url + SPEECH, json={"input": "Hello."})
    assert got == status
    assert_envelope(body, None, code)
    assert headers.get("x-should-retry") == retry


async def test_voices_and_models(http_url: str, session) -> None:
    async with session.get(http_url + "/v1/audio/voices") as response:
        voices = (await response.json())["voices"]
    assert [v["id"] for v in voices][:2] == ["tara", "leah"]
    assert voices[0] == {
        "id": "tara",
        "name": "tara",
        "language": "en",
        "gender": "female",
        "description": "Female, conversational, clear",
    }
    async with session.get(http_url + "/v1/voices") as response:
        listed = await response.json()
    assert listed["object"] == "list" and listed["data"][0]["object"] == "voice"
    async with openai.AsyncOpenAI(base_url=http_url + "/v1", api_key="-", max_retries=0) as sdk:
        models = [m.id async for m in sdk.models.list()]
    assert models == ["orpheus", "tts-1", "tts-1-hd", "gpt-4o-mini-tts"]


# --- API key ---

PROTECTED = [
    ("POST", SPEECH),
    ("POST", "/speak"),
    ("GET", "/v1/audio/voices"),
    ("GET", "/v1/voices"),
    ("GET", "/v1/models"),
    ("GET", "/metrics"),
]
PUBLIC = [
    "/health",
    "/",
    "/docs",
    "/openapi.json",
    "/docs/openapi.json",
    "/static/page.js",
    "/docs/assets/swagger-ui.css",
]


@pytest.fixture
async def keyed_url(make_settings, engine_factory, http_factory) -> str:
    engine = await engine_factory(make_settings(http_api_key=KEY))
    return await http_factory(engine)  # type: ignore[no-any-return]


WRONG_KEYS = [
    {},
    {"Authorization": "Bearer wrong"},
    {"Authorization": f"Bearer {KEY.upper()}"},
    {"Authorization": f"Bearer  {KEY}"},
    {"Authorization": f"Basic {KEY}"},
    {"Authorization": KEY},
]


async def test_the_api_key_is_needed_on_every_protected_route(keyed_url: str, session) -> None:
    for (method, path), headers in itertools.product(PROTECTED, WRONG_KEYS):
        async with session.request(method, keyed_url + path, json={}, headers=headers) as answer:
            assert answer.status == 401, (method, path, headers)
            assert_envelope(await answer.json(), None, "invalid-api-key")


async def test_the_api_key_cannot_come_twice_or_in_the_query(keyed_url: str, session) -> None:
    twice = [("Authorization", "Bearer wrong"), ("Authorization", f"Bearer {KEY}")]
    async with session.get(keyed_url + "/v1/models", headers=twice) as response:
        assert response.status == 401
    async with session.get(keyed_url + f"/v1/models?api_key={KEY}") as response:
        assert response.status == 401
    async with session.get(
        keyed_url + "/v1/models", headers={"Authorization": f"bearer {KEY}"}
    ) as response:
        assert response.status == 200  # the scheme is case-insensitive (RFC 6750), the key not


@pytest.mark.parametrize("path", PUBLIC)
async def test_health_the_page_and_the_docs_need_no_key(keyed_url: str, session, path) -> None:
    async with session.get(keyed_url + path) as response:
        assert response.status == 200


async def test_the_sdk_speaks_with_the_key(keyed_url: str) -> None:
    async with openai.AsyncOpenAI(base_url=keyed_url + "/v1", api_key=KEY, max_retries=0) as sdk:
        speech = await sdk.audio.speech.create(
            model="tts-1", voice="tara", input="Hello.", response_format="pcm"
        )
        assert len(speech.content) > 0
    async with openai.AsyncOpenAI(base_url=keyed_url + "/v1", api_key="no", max_retries=0) as sdk:
        with pytest.raises(openai.AuthenticationError):
            await sdk.audio.speech.create(model="tts-1", voice="tara", input="Hello.")


# --- CORS ---


async def test_cors_is_off_by_default(http_url: str, session) -> None:
    async with session.get(
        http_url + "/v1/models", headers={"Origin": "http://elsewhere"}
    ) as response:
        assert "Access-Control-Allow-Origin" not in response.headers


async def test_allowed_origins_get_preflight_and_streamed_headers(
    make_settings, engine_factory, http_factory, session
) -> None:
    engine = await engine_factory(make_settings(http_cors_origins=("http://app.local",)))
    url = await http_factory(engine)
    preflight = {
        "Origin": "http://app.local",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    async with session.options(url + SPEECH, headers=preflight) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == "http://app.local"
        assert "POST" in response.headers["Access-Control-Allow-Methods"]
    async with session.post(
        url + SPEECH,
        json={"input": "Hello.", "response_format": "pcm"},
        headers={"Origin": "http://app.local"},
    ) as response:
        assert response.status == 200
        assert response.headers["Access-Control-Allow-Origin"] == "http://app.local"
        assert "X-Audio-Sample-Rate" in response.headers["Access-Control-Expose-Headers"]
    async with session.options(url + SPEECH, headers={**preflight, "Origin": "http://evil"}) as r:
        assert r.status == 403


# --- health, metrics, docs ---


async def test_health_is_ready_and_tells_no_secret(
    make_settings, engine_factory, http_factory, session, llm: OrpheusStandIn
) -> None:
    upstreams = (
        UpstreamSettings(f"http://user:pw-secret@127.0.0.1:{llm.port}/v1"),
        UpstreamSettings(llm.base_url, api_key="llm-secret"),
    )
    engine = await engine_factory(make_settings(upstreams=upstreams, http_api_key=KEY))
    url = await http_factory(engine)
    llm.behaviour.api_key = "other"  # the LLM refuses both: the error texts land in /health
    status, _, _ = await post(
        session, url + SPEECH, json={"input": "Hi."}, headers={"Authorization": f"Bearer {KEY}"}
    )
    assert status == 502
    async with session.get(url + "/health") as response:
        assert response.status == 200
        text = await response.text()
    health = json.loads(text)
    assert health["ready"] is True and health["snac_loaded"] is True
    assert health["tier"]["name"] == "cpu" and health["syntheses"]["max"] >= 1
    assert [u["state"] for u in health["upstreams"]] == ["ok", "ok"]  # cooldown 0 in tests
    assert all("HTTP 401" in u["last_error"] for u in health["upstreams"])
    async with session.get(url + "/metrics", headers={"Authorization": f"Bearer {KEY}"}) as r:
        metrics = await r.text()
    for secret in ("pw-secret", "llm-secret", KEY):
        assert secret not in text and secret not in metrics


async def test_health_is_503_while_starting_and_stopping(
    make_settings, engine: Engine, session
) -> None:
    state = HttpState(make_settings())
    server = HttpServer(state)
    await server.start()
    url = f"http://127.0.0.1:{server.port}"
    try:
        async with session.get(url + "/health") as response:
            assert response.status == 503 and (await response.json())["status"] == "starting"
        status, headers, _ = await post(session, url + SPEECH, json={"input": "Hi."})
        assert status == 503 and headers["Retry-After"] == "2"
        state.engine = engine
        async with session.get(url + "/health") as response:
            assert response.status == 200
        state.draining = True
        async with session.get(url + "/health") as response:
            assert response.status == 503 and (await response.json())["status"] == "stopping"
    finally:
        await server.stop()


def samples(metrics: str, name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


async def test_metrics_count_both_doors(engine: Engine, http_url: str, session) -> None:
    wyoming = WyomingServer(
        engine.settings.wyoming.uri,
        build_info(engine.synthesizer.catalog, True),
        engine.synthesizer,
        engine.settings.limits,
    )
    await wyoming.start()
    try:
        client = AsyncTcpClient("127.0.0.1", wyoming.port)
        await client.connect()
        await client.write_event(Synthesize(text="Hello from Wyoming.").event())
        await read_reply(client, "audio-stop")
        await client.write_event(Synthesize(text="Hello again from Wyoming.").event())
        await read_reply(client, "audio-stop")
        await client.disconnect()
    finally:
        await wyoming.shutdown(grace=0)
    await post(
        session, http_url + SPEECH, json={"input": "Hello over HTTP.", "response_format": "pcm"}
    )
    await post(session, http_url + SPEECH, json={"input": "Hi.", "voice": "nobody"})
    async with session.get(http_url + "/metrics") as response:
        assert response.content_type == "text/plain"
        text = await response.text()
    assert samples(text, "orpheus_requests_total", door="wyoming", outcome="ok") == 2
    assert samples(text, "orpheus_requests_total", door="http", outcome="ok") == 1
    assert samples(text, "orpheus_errors_total", door="http", code="unknown-voice") == 1
    assert samples(text, "orpheus_time_to_first_audio_seconds_count", door="http") == 1
    assert samples(text, "orpheus_real_time_factor_count", door="wyoming") == 2
    assert samples(text, "orpheus_audio_seconds_total", door="http") > 0
    assert samples(text, "orpheus_decode_step_seconds_count") > 0
    assert samples(text, "orpheus_upstream_tokens_per_second_count") == 3
    assert samples(text, "orpheus_syntheses_running") == 0


def registered_routes(settings: Settings) -> set[tuple[str, str]]:
    routes = set()
    for resource in create_app(HttpState(settings)).router.resources():
        info = resource.get_info()
        path = info.get("path") or info.get("formatter")
        if "prefix" in info:  # a static folder: one templated path
            routes.add(("get", info["prefix"] + "/{filename}"))
            continue
        for route in resource:
            if route.method not in ("HEAD", "*"):
                routes.add((route.method.lower(), path))
    return routes


async def test_openapi_describes_exactly_the_registered_routes(
    make_settings: Callable[..., Settings], http_url: str, session
) -> None:
    async with session.get(http_url + "/openapi.json") as response:
        spec = await response.json()
    validate(spec)
    assert spec["openapi"].startswith("3.1")
    described = {(method, path) for path, item in spec["paths"].items() for method in item}
    assert described == registered_routes(make_settings())
    async with session.get(http_url + "/docs/openapi.json") as response:
        swagger = await response.json()
    validate(swagger)  # the 3.0.3 label of the same description, for Swagger UI 4
    assert swagger["openapi"] == "3.0.3" and swagger["paths"] == spec["paths"]
    async with session.get(http_url + "/docs") as response:
        page = await response.text()
    assert "/docs/assets/swagger-ui-bundle.js" in page and "http" not in page.split("<body>")[1]
