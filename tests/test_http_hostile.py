"""Hostile HTTP clients: generated requests from the OpenAPI description, slow bodies and slow
readers, key bypasses and path traversal (issue #11; docs/reliability.md records them)."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import aiohttp
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import Case, GenerationMode
from schemathesis.checks import positive_data_acceptance

from tests.stand_ins.llm_server import Behaviour, OrpheusStandIn
from wyoming_orpheus.config import Settings, UpstreamSettings
from wyoming_orpheus.engine import Engine
from wyoming_orpheus.http_api import HttpServer, HttpState

OPENAPI = Path(__file__).parent.parent / "wyoming_orpheus" / "http_api" / "openapi.json"
SCHEMA = schemathesis.openapi.from_path(OPENAPI)
T = TypeVar("T")
SPEECH = "/v1/audio/speech"
SPEECH_BODY = {"input": "Hello there.", "response_format": "pcm"}
API_KEY = "sk-hostile-test-key"


class LiveDoor:
    """The stand-in, an engine and the HTTP door on their own event loop in a thread.

    Schemathesis calls are blocking (requests); the server must keep running meanwhile.
    """

    def __init__(self, snac_dir: Path) -> None:
        self._snac_dir = snac_dir
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.llm = OrpheusStandIn(Behaviour(frames_per_char=0.05))
        self.url = ""

    def run(self, work: Callable[[], Awaitable[T]], timeout: float = 60) -> T:
        """Run a coroutine on the server's loop and return its result."""

        async def call() -> T:
            return await work()

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(timeout)

    def start(self) -> None:
        self._thread.start()

        async def up() -> tuple[Engine, HttpServer]:
            await self.llm.start()
            engine = await Engine.create(self.settings())
            http = HttpServer(HttpState(engine.settings, engine))
            await http.start()
            return engine, http

        self._engine, self._http = self.run(up)
        self.url = f"http://127.0.0.1:{self._http.port}"

    def settings(self) -> Settings:
        return Settings.of(
            upstreams=(UpstreamSettings(self.llm.base_url),),
            snac_model=str(self._snac_dir),
            device="cpu",
            decode_threads=1,
            warm_up=False,
            http_host="127.0.0.1",
            http_port=0,
            # Generated inputs run to thousands of characters; a short limit keeps each
            # accepted request a short decode (longer inputs get the 400 they should).
            max_text_chars=300,
            http_api_key=API_KEY,
        )

    def stop(self) -> None:
        async def down() -> None:
            await self._http.stop()
            await self._engine.close()
            await self.llm.stop()

        self.run(down)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture(scope="module")
def live_door(snac_dir: Path) -> Iterator[LiveDoor]:
    door = LiveDoor(snac_dir)
    door.start()
    yield door
    door.stop()


def assert_envelope(case: Case, status: int, body: bytes) -> None:
    """Every refusal is OpenAI's error envelope with a message and a code."""
    where = f"{case.method} {case.formatted_path} -> {status}"
    assert status < 500, f"{where}: a server error from generated input: {body[:300]!r}"
    if status >= 400:
        error = json.loads(body)["error"]
        assert isinstance(error["message"], str) and error["message"], where
        assert isinstance(error["code"], str) and error["code"], where
        assert error["type"] in ("invalid_request_error", "rate_limit_error"), where


def generation_runs() -> list[tuple[str, GenerationMode]]:
    """Every operation with valid inputs; with invalid ones where it has something to break
    (a body, or the key: a route without either accepts every input schemathesis can make)."""
    runs = []
    for result in SCHEMA.get_all_operations():
        operation = result.ok()
        runs.append((operation.label, GenerationMode.POSITIVE))
        keyed = operation.definition.raw.get("security") != []
        if operation.body or keyed:
            runs.append((operation.label, GenerationMode.NEGATIVE))
    return runs


# NOTE: derandomized, so a CI run is repeatable; the example counts bound its time.
SPEECH_EXAMPLES = 200
OTHER_EXAMPLES = 30


@pytest.mark.parametrize(("operation", "mode"), generation_runs())
def test_generated_requests_get_no_5xx_and_every_4xx_is_the_envelope(
    live_door: LiveDoor, operation: str, mode: GenerationMode
) -> None:
    method, path = operation.split(" ", 1)
    api_operation = SCHEMA[path][method]
    examples = SPEECH_EXAMPLES if path in (SPEECH, "/speak") else OTHER_EXAMPLES

    @settings(
        max_examples=examples,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=api_operation.as_strategy(generation_mode=mode))
    def check(case: Case) -> None:
        # Schemathesis's own checks (status codes, content types and bodies as described,
        # invalid input refused, the key enforced), except that schema-valid input must be
        # accepted: a schema cannot say which voices are configured or that "?!" holds no
        # word to speak. Those refusals must still be envelopes (below).
        response = case.call_and_validate(
            base_url=live_door.url,
            headers={"Authorization": f"Bearer {API_KEY}"},
            excluded_checks=[positive_data_acceptance],
            timeout=30,
        )
        assert_envelope(case, response.status_code, response.content)

    check()


# --- raw clients: what a browser or SDK would never send ---


async def raw_exchange(port: int, request: bytes, *, timeout: float = 10) -> tuple[int, bytes]:
    """Send bytes exactly as given (no URL normalization); return the status and the body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        async with asyncio.timeout(timeout):
            reply = await reader.read()
    finally:
        writer.close()
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def get(path: str, *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: localhost", "Connection: close", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@pytest.fixture
async def keyed_port(make_settings, engine_factory, http_factory) -> int:
    engine = await engine_factory(make_settings(http_api_key=API_KEY))
    return port_of(await http_factory(engine))


# Each tries to reach a protected route without the key (or with a near miss of it).
BYPASSES = [
    get("/v1/models"),
    get("/v1/models", f"Authorization: Bearer\t{API_KEY}"),
    get("/v1/models", f"Authorization: Bearer {API_KEY[:-1]}"),
    get("/v1/models", f"Authorization: Bearer {API_KEY}x"),
    get("/v1/models", "Authorization: Bearer "),
    get("/v1/models", "Authorization: Bearer", f"Authorization: Bearer {API_KEY}"),
    get("/v1/models", f"X-Api-Key: {API_KEY}"),
    get("/v1/models", f"Api-Key: {API_KEY}"),
    get(f"/v1/models?api_key={API_KEY}"),
    get(f"/v1/models?key={API_KEY}&Authorization=Bearer%20{API_KEY}"),
    get("/v1/models", f"Cookie: Authorization=Bearer {API_KEY}"),
    get("/health/../v1/models"),
    get("/static/../v1/models"),
    get("/docs/assets/../../v1/models"),
    get("/docs/..%2fv1/models"),
    get("/static/%2e%2e/metrics"),
    get("//v1/models"),
    get("/v1/models/"),
    get("/v1//models"),
    get("/V1/MODELS"),
    get("/v1/models%00"),
    get("/health%2f..%2fmetrics"),
    get("http://localhost/v1/models"),  # absolute form
    b"HEAD /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    b"OPTIONS /v1/models HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    b"POST /v1/audio/speech?api_key=" + API_KEY.encode() + b" HTTP/1.1\r\nHost: localhost\r\n"
    b"Connection: close\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n"
    b'{"input": "Hi."}\n',
]


async def test_the_api_key_check_cannot_be_bypassed(keyed_port: int) -> None:
    # One engine for every attempt: none changes it (issue 30: engines shared).
    for request_bytes in BYPASSES:
        status, body = await raw_exchange(keyed_port, request_bytes)
        assert status in (400, 401, 404, 405), (request_bytes[:80], status, body[:200])
        assert b"tts-1" not in body and b"orpheus_requests_total" not in body, request_bytes
        assert b"RIFF" not in body, request_bytes


async def test_the_key_itself_opens_the_route(keyed_port: int) -> None:
    status, body = await raw_exchange(
        keyed_port, get("/v1/models", f"authorization: bearer {API_KEY}")
    )
    assert status == 200 and b"tts-1" in body  # header names and the scheme: any case
    # HTTP strips whitespace around a header value: this is the same header, not a near miss.
    status, _ = await raw_exchange(
        keyed_port, get("/v1/models", f"Authorization: Bearer {API_KEY} ")
    )
    assert status == 200


PACKAGE = Path(__file__).parent.parent / "wyoming_orpheus"
TRAVERSALS = [
    "/static/../app.py",
    "/static/../../pyproject.toml",
    "/static/..%2fapp.py",
    "/static/%2e%2e/app.py",
    "/static/%2e%2e%2fapp.py",
    "/static/..%5capp.py",
    "/static/%252e%252e%252fapp.py",
    "/static/....//app.py",
    "/static//etc/passwd",
    "/static/%2fetc%2fpasswd",
    "/static/page.js%00.html",
    "/static/page.js/",
    "/static/.",
    "/static/..",
    "/docs/assets/../../../../../../etc/passwd",
    "/docs/assets/%2e%2e%2f%2e%2e%2fswagger_ui_bundle%2f__init__.py",
    "/docs/assets/..%2f..%2f__init__.py",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/../../../../etc/passwd",
    "/static/C:%5cWindows%5cwin.ini",
]


async def test_no_route_serves_a_file_outside_the_static_folders(keyed_port: int) -> None:
    for path in TRAVERSALS:
        status, body = await raw_exchange(keyed_port, get(path))
        assert status in (400, 401, 404), (path, status, body[:200])
        assert b"import " not in body and b"root:" not in body, path
        assert b"[project]" not in body, path
        if status != 400:  # aiohttp's own parser refuses some paths before any route sees them
            assert json.loads(body)["error"]["code"] in ("not-found", "invalid-api-key"), path


async def test_the_static_folders_serve_their_files(keyed_port: int) -> None:
    status, body = await raw_exchange(keyed_port, get("/static/page.js"))
    assert status == 200 and body == (PACKAGE / "http_api" / "static" / "page.js").read_bytes()


# --- slow clients ---


HEAD = "POST /v1/audio/speech HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"


@pytest.mark.parametrize(
    ("request_head", "drip"),
    [
        ((HEAD + "Content-Length: 60\r\n\r\n").encode() + b'{"input": ', b" "),
        ((HEAD + "Transfer-Encoding: chunked\r\n\r\n").encode(), b"1\r\n \r\n"),
    ],
    ids=["content-length", "chunked"],
)
async def test_a_slow_request_body_gets_408_while_others_are_served(
    make_settings, engine_factory, http_factory, request_head: bytes, drip: bytes
) -> None:
    engine = await engine_factory(make_settings(http_body_timeout=0.5))
    url = await http_factory(engine)
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(url))
    writer.write(request_head)
    started = time.monotonic()

    async def trickle() -> None:
        for _ in range(100):  # a byte every 0.1 s: never idle, never done
            await asyncio.sleep(0.1)
            writer.write(drip)

    dribbling = asyncio.create_task(trickle())
    try:
        # Another client is served meanwhile.
        async with (
            aiohttp.ClientSession() as session,
            session.post(url + SPEECH, json=SPEECH_BODY) as response,
        ):
            assert response.status == 200 and len(await response.read()) > 0
        async with asyncio.timeout(10):
            reply = await reader.read(4096)
    finally:
        dribbling.cancel()
        writer.close()
    assert reply.startswith(b"HTTP/1.1 408"), reply[:100]
    assert b'"body-timeout"' in reply and time.monotonic() - started < 5


async def test_an_http_client_that_stops_reading_loses_its_slot_and_upstream_request(
    make_settings, engine_factory, http_factory, llm: OrpheusStandIn
) -> None:
    # ~16 s of tokens: far longer than filling the socket buffers (~5 s of audio, decoded in
    # ~3 s even by one single-threaded worker) plus write_timeout.
    llm.behaviour.tokens_per_second = 200
    llm.behaviour.frames_per_char = 4  # far more audio than the socket buffers hold
    engine = await engine_factory(make_settings(max_concurrent=1, write_timeout=1.0))
    url = await http_factory(engine)
    # A small receive buffer set before connecting keeps the advertised window small, so
    # the server's writes block after a few dozen kilobytes instead of megabytes.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port_of(url)))
    _, writer = await asyncio.open_connection(sock=sock)
    body = json.dumps({"input": "Never read me. " * 20, "response_format": "pcm"}).encode()
    writer.write(
        b"POST /v1/audio/speech HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    try:
        # We never read. The only slot must come free for the next client.
        async with aiohttp.ClientSession() as session:
            async with asyncio.timeout(30):
                async with session.post(url + "/v1/audio/speech", json=SPEECH_BODY) as response:
                    assert response.status == 200 and len(await response.read()) > 0
        await asyncio.wait_for(llm.wait_closed(llm.requests[0]), 10)
        assert not llm.requests[0].finished
    finally:
        writer.close()


# --- secrets ---


async def test_no_secret_reaches_logs_health_metrics_or_error_texts(
    make_settings, engine_factory, http_factory, llm: OrpheusStandIn, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))  # a port that refuses connections
    upstreams = (
        UpstreamSettings(llm.base_url, api_key="llm-secret"),
        UpstreamSettings(f"http://user:pw-secret@127.0.0.1:{llm.port}/v1", voices=("dan",)),
        UpstreamSettings(
            f"http://user:pw-secret@127.0.0.1:{dead.getsockname()[1]}/v1", voices=("leo",)
        ),
    )
    engine = await engine_factory(make_settings(upstreams=upstreams, http_api_key=API_KEY))
    url = await http_factory(engine)
    llm.behaviour.api_key = "another"  # the LLM refuses us: its error text is relayed
    seen = []
    async with aiohttp.ClientSession() as session:
        for headers, body in [
            ({"Authorization": f"Bearer {API_KEY}"}, {"input": "Hi."}),  # LLM says 401
            ({"Authorization": f"Bearer {API_KEY}"}, {"input": "Hi.", "voice": "dan"}),  # 401
            ({"Authorization": f"Bearer {API_KEY}"}, {"input": "Hi.", "voice": "leo"}),  # refused
            ({"Authorization": f"Bearer {API_KEY}x"}, {"input": "Hi."}),  # wrong key
            ({"Authorization": f"Basic {API_KEY}"}, {"input": "Hi."}),
        ]:
            async with session.post(url + SPEECH, json=body, headers=headers) as response:
                assert response.status >= 400
                seen.append(await response.text())
        for path in ("/health", "/metrics"):
            async with session.get(url + path, headers={"Authorization": f"Bearer {API_KEY}"}) as r:
                seen.append(await r.text())
    dead.close()
    # The failures are named (the URL too), without the secrets.
    assert "HTTP 401" in seen[0] and "HTTP 401" in seen[1] and "127.0.0.1" in seen[2]
    for secret in ("pw-secret", "llm-secret", API_KEY):
        assert not any(secret in text for text in seen), secret
        assert secret not in caplog.text, secret


async def test_newlines_in_http_input_cannot_forge_log_lines(
    http_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    forged = "x\n2026-01-01 INFO forged: all good"
    async with aiohttp.ClientSession() as session:
        for body in (
            {"input": "Hi.", "voice": forged},
            {"input": "Hi.", "response_format": forged},
        ):
            async with session.post(http_url + SPEECH, json=body) as response:
                assert response.status == 400
    assert "unknown voice" in caplog.text
    assert not any(line.startswith("2026-01-01") for line in caplog.text.splitlines())


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b'{"input": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", "nested too deeply"),
        (b'{"input": "Hi.", "speed": ' + b"9" * 5000 + b"}", "integer string conversion"),
        (b'{"input": "Hi.", "speed": 1e999999}', "'speed' must be a number"),
        (b'{"input": "\\ud800"}', ""),  # a lone surrogate: refused or spoken, never a 500
    ],
    ids=["deep", "digits", "infinity", "surrogate"],
)
async def test_hostile_json_is_the_clients_mistake_400_and_no_error_logged(
    http_url: str, caplog: pytest.LogCaptureFixture, body: bytes, fragment: str
) -> None:
    # NOTE: issue 31: a body nested 50,000 deep or a 5,000-digit number was a 500 with an
    # ERROR traceback in the log.
    async with aiohttp.ClientSession() as session:
        headers = {"Content-Type": "application/json"}
        async with session.post(http_url + SPEECH, data=body, headers=headers) as response:
            status, text = response.status, await response.text()
    assert status < 500, text
    if fragment:
        assert status == 400 and fragment in json.loads(text)["error"]["message"], text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
