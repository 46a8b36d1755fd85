"""An Orpheus LLM server stand-in: llama.cpp/vLLM SSE completions and Ollama NDJSON.

It speaks the wire formats of the real servers (see ../shared/samples for llama-server's
bytes), checks that prompts have the Orpheus shape, and answers with valid audio tokens
whose count grows with the text, deterministic per seed. Knobs make it slow, coalesce
tokens, or fail in each of the ways real deployments fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .batching import Batching, BatchLoop

AUDIO_BASE = 10
END_OF_SPEECH = "<custom_token_2>"
START_OF_SPEECH = "<custom_token_1>"

TRAINING_PROMPT_RE = re.compile(
    r"^<custom_token_3><\|begin_of_text\|>(?P<voice>[^:]+): (?P<text>.*)"
    r"<\|eot_id\|><custom_token_4><custom_token_5><custom_token_1>$",
    re.DOTALL,
)
AUDIO_PROMPT_RE = re.compile(r"^<\|audio\|>(?P<voice>[^:]+): (?P<text>.*)<\|eot_id\|>$", re.DOTALL)

FAULTS = (
    None,
    "http500",
    "drop",  # close the connection after `fault_after` tokens
    "stall",  # stop sending (but keep the connection) after `fault_after` tokens
    "garbage",  # out-of-range and misaligned tokens mixed into the stream
    "endless",  # ignore max_tokens and stop tokens, never end
    "no_audio",  # answer in words, like a chat-templated model
    "endless_line",  # after `fault_after` tokens, one line that never ends (no newline, ever)
)


@dataclass
class Behaviour:
    """Knobs; tests change them between requests."""

    tokens_per_second: float | None = None
    """None sends as fast as possible."""
    coalesce: int = 1
    """Tokens per SSE event / NDJSON line (servers may batch them)."""
    leading_tokens: tuple[str, ...] = ()
    """Non-audio tokens sent before the audio (e.g. start-of-speech in <|audio|> mode)."""
    frames_per_char: float = 0.25
    """Frames per character of text (real speech is ~0.8; tests keep decodes short)."""
    seed: int = 0
    fault: str | None = None
    fault_after: int = 14
    fault_times: int = 1_000_000
    """How many requests the fault hits before the server behaves again."""
    random_faults: tuple[str, ...] = ()
    """Faults drawn at random per request (soak runs), each after a random number of tokens."""
    fault_rate: float = 0.0
    """Share of requests that get one of random_faults (drawn from a Random seeded by seed)."""
    api_key: str | None = None
    """When set, requests without `Authorization: Bearer <key>` get HTTP 401."""
    models: tuple[str, ...] = ("orpheus",)
    """Models Ollama knows (others get its 404)."""
    headers_delay: float = 0.0
    """Seconds before the response headers (a server busy with a long prompt)."""
    first_token_delay: float = 0.0
    """Seconds between the headers and the first token."""
    batching: Batching | None = None
    """Stream like a batching server (one shared decode loop, slots, a gain curve) instead of
    every request at tokens_per_second however many run (batching.py)."""
    props_status: int = 200
    """GET /props answers this status (503: llama-server loading its model)."""


@dataclass
class RequestRecord:
    """What one request carried and how its connection ended."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    voice: str = ""
    text: str = ""
    frames: list[tuple[int, ...]] = field(default_factory=list)
    tokens_sent: int = 0
    sent_log: list[tuple[int, float]] = field(default_factory=list)
    """(tokens sent so far, when) after each write: when a given token left."""
    started: float = field(default_factory=time.monotonic)
    closed_at: float | None = None
    """When the connection ended (client gone, or the stream finished)."""
    finished: bool = False
    """The whole answer was sent."""
    client_disconnected: bool = False
    fault: str | None = None
    """The fault this request got."""
    fault_after: int = 0
    endless_bytes: int = 0
    """Bytes of the never-ending line the client took before it hung up (endless_line)."""


def make_frames(seed: int, voice: str, text: str, frames_per_char: float) -> list[tuple[int, ...]]:
    """Deterministic frames for a text; the first frame holds codes 0 and 4095."""
    rng = random.Random(f"{seed}:{voice}:{text}")
    count = max(1, round(len(text) * frames_per_char))
    frames = [tuple(rng.randrange(4096) for _ in range(7)) for _ in range(count)]
    first = list(frames[0])
    first[2], first[5] = 0, 4095  # code 0 is valid and must survive parsing
    frames[0] = tuple(first)
    return frames


def frame_tokens(frames: list[tuple[int, ...]]) -> list[str]:
    """Audio token texts for frames: slot s, code c -> <custom_token_{10 + s*4096 + c}>."""
    return [
        f"<custom_token_{AUDIO_BASE + slot * 4096 + code}>"
        for frame in frames
        for slot, code in enumerate(frame)
    ]


class OrpheusStandIn:
    """A real aiohttp server on a loopback port."""

    def __init__(self, behaviour: Behaviour | None = None) -> None:
        self.behaviour = behaviour or Behaviour()
        self.requests: list[RequestRecord] = []
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._faults_used = 0
        self._random = random.Random(self.behaviour.seed)
        self._loop: BatchLoop | None = None
        self.props_asked = 0

    @property
    def base_url(self) -> str:
        """Return the OpenAI-style base URL (`.../v1`)."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def root_url(self) -> str:
        """Return the server root (what Ollama users configure)."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Listen on a free loopback port."""
        app = web.Application()
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/api/generate", self._ollama_generate)
        app.router.add_get("/props", self._props)
        # handler_cancellation: the handler is cancelled when the client goes away, which is
        # how llama-server notices a closed connection and frees the slot.
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Stop the server."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_closed(self, record: RequestRecord, timeout: float = 5.0) -> None:
        """Wait until the record's connection ended."""
        deadline = time.monotonic() + timeout
        while record.closed_at is None:
            if time.monotonic() > deadline:
                raise TimeoutError("the request's connection is still open")
            await asyncio.sleep(0.01)

    # --- dialects ---

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        record, error = await self._accept(request)
        if error is not None:
            return error
        with _closing(record):
            return await self._completions_stream(request, record)

    async def _completions_stream(
        self, request: web.Request, record: RequestRecord
    ) -> web.StreamResponse:
        body = record.body
        if not body.get("stream"):
            return _json_error(400, "this stand-in only streams")
        max_tokens = int(body.get("max_tokens") or 10**9)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await asyncio.sleep(self.behaviour.headers_delay)
        await response.prepare(request)

        async def send(text: str, finish: str | None = None) -> None:
            event: dict[str, Any] = {
                "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}],
                "object": "text_completion",
                "id": "cmpl-" + record.headers.get("X-Request-ID", "x"),
            }
            await response.write(f"data: {json.dumps(event)}\n\n".encode())

        await self._stream(request, record, send, max_tokens, raw=response.write)
        if record.finished:
            await response.write(b"data: [DONE]\n\n")
        return response

    async def _ollama_generate(self, request: web.Request) -> web.StreamResponse:
        record, error = await self._accept(request)
        if error is not None:
            return error
        with _closing(record):
            return await self._ollama_stream(request, record)

    async def _ollama_stream(
        self, request: web.Request, record: RequestRecord
    ) -> web.StreamResponse:
        body = record.body
        if body.get("model") not in self.behaviour.models:
            return _json_error(404, f"model '{body.get('model')}' not found", ollama=True)
        options = body.get("options") or {}
        max_tokens = int(options.get("num_predict") or 10**9)
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await asyncio.sleep(self.behaviour.headers_delay)
        await response.prepare(request)

        async def send(text: str, finish: str | None = None) -> None:
            line: dict[str, Any] = {"model": body["model"], "response": text, "done": False}
            if finish is not None:
                line.update(done=True, done_reason=finish)
            await response.write((json.dumps(line) + "\n").encode())

        # Without raw mode Ollama applies the chat template: the model answers in words.
        words = None if body.get("raw") else "no_audio"
        await self._stream(request, record, send, max_tokens, words, raw=response.write)
        return response

    async def _accept(self, request: web.Request) -> tuple[RequestRecord, web.Response | None]:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            body = {}
        record = RequestRecord(request.path, body, dict(request.headers))
        self.requests.append(record)
        behaviour = self.behaviour
        if (
            behaviour.api_key
            and request.headers.get("Authorization") != f"Bearer {behaviour.api_key}"
        ):
            record.closed_at = time.monotonic()
            return record, _json_error(401, "Invalid API Key")
        record.fault, record.fault_after = self._pick_fault()
        if record.fault == "http500":
            record.closed_at = time.monotonic()
            return record, _json_error(500, "the model crashed")
        match = TRAINING_PROMPT_RE.match(str(body.get("prompt", ""))) or AUDIO_PROMPT_RE.match(
            str(body.get("prompt", ""))
        )
        if match is None:
            record.closed_at = time.monotonic()
            return record, _json_error(400, f"prompt has no Orpheus shape: {body.get('prompt')!r}")
        record.voice, record.text = match.group("voice"), match.group("text")
        return record, None

    async def _props(self, request: web.Request) -> web.Response:
        """llama-server's /props: its slots (batching only; an independent stream has none)."""
        self.props_asked += 1
        if self.behaviour.props_status != 200:
            return _json_error(self.behaviour.props_status, "the model is loading")
        if self.behaviour.batching is None:
            return _json_error(404, "File Not Found")
        return web.json_response({"total_slots": self.behaviour.batching.slots})

    def _pick_fault(self) -> tuple[str | None, int]:
        behaviour = self.behaviour
        if behaviour.fault is not None:
            self._faults_used += 1
            if self._faults_used <= behaviour.fault_times:
                return behaviour.fault, behaviour.fault_after
        if behaviour.random_faults and self._random.random() < behaviour.fault_rate:
            return self._random.choice(behaviour.random_faults), self._random.randrange(0, 70)
        return None, 0

    # --- the token stream ---

    async def _stream(
        self,
        request: web.Request,
        record: RequestRecord,
        send: Any,
        max_tokens: int,
        forced_fault: str | None = None,
        *,
        raw: Any,
    ) -> None:
        behaviour = self.behaviour
        fault = forced_fault or record.fault
        fault_after = behaviour.fault_after if forced_fault else record.fault_after
        record.frames = make_frames(
            behaviour.seed, record.voice, record.text, behaviour.frames_per_char
        )
        try:
            await asyncio.sleep(behaviour.first_token_delay)
            finish = "stop"
            sent = 0
            async for batch in self._batches(record, fault):
                if fault == "endless_line" and sent >= fault_after:
                    await _endless_line(raw, record)
                if fault in ("drop", "stall") and sent >= fault_after:
                    if fault == "drop":
                        assert request.transport is not None
                        request.transport.close()  # like a crashed server
                        record.closed_at = time.monotonic()
                        return
                    await asyncio.sleep(3600)
                if fault != "endless" and sent + len(batch) > max_tokens:
                    batch = batch[: max_tokens - sent]
                    finish = "length"
                if batch:
                    await send("".join(batch))
                    sent += len(batch)
                    record.tokens_sent = sent
                    record.sent_log.append((sent, time.monotonic()))
                if finish == "length":
                    break
            # NOTE: the stop string itself is not sent (see samples/llama-server-sse-stop.txt).
            await send("", finish)
            record.finished = True
        except asyncio.CancelledError:
            record.client_disconnected = True
            raise
        except ConnectionResetError:
            record.client_disconnected = True  # gone between two writes: nothing to answer
        finally:
            if record.closed_at is None:
                record.closed_at = time.monotonic()

    async def _batches(self, record: RequestRecord, fault: str | None) -> AsyncIterator[list[str]]:
        behaviour = self.behaviour
        tokens = list(behaviour.leading_tokens)
        if fault == "no_audio":
            tokens += ["I", "'m", " sorry", ",", " I", " cannot", " help", "."]
        else:
            tokens += frame_tokens(record.frames)
        if fault == "garbage":
            tokens = _with_garbage(tokens)
        if behaviour.batching is not None:
            async with self.batch_loop().lane() as lane:
                index = 0
                while index < len(tokens):
                    count = await lane.take(behaviour.coalesce)
                    yield tokens[index : index + count]
                    index += count
            return
        delay = (
            behaviour.coalesce / behaviour.tokens_per_second if behaviour.tokens_per_second else 0
        )
        index = 0
        started = time.monotonic()
        while True:
            if fault == "endless" and index >= len(tokens):
                tokens += frame_tokens(make_frames(index, record.voice, record.text, 1.0))
            if index >= len(tokens):
                return
            yield tokens[index : index + behaviour.coalesce]
            index += behaviour.coalesce
            # Paced against the clock, not by fixed sleeps: the time spent sending must not
            # slow the stream below its rate (a GPU generates at a steady rate).
            due = started + index / behaviour.coalesce * delay
            await asyncio.sleep(max(0.0, due - time.monotonic()))

    def batch_loop(self) -> BatchLoop:
        """Return the shared decode loop for the behaviour's batching (a new one if it changed)."""
        assert self.behaviour.batching is not None
        if self._loop is None or self._loop.batching is not self.behaviour.batching:
            self._loop = BatchLoop(self.behaviour.batching)
        return self._loop


@contextlib.contextmanager
def _closing(record: RequestRecord) -> Iterator[None]:
    """Record the end of a request however its handler ends (a client gone before the first
    token cancels it in prepare(), before the token stream started)."""
    try:
        yield
    except asyncio.CancelledError:
        record.client_disconnected = True
        raise
    finally:
        if record.closed_at is None:
            record.closed_at = time.monotonic()


async def _endless_line(raw: Any, record: RequestRecord) -> None:
    """Start an event and never end its line: audio tokens, 64 KiB at a time, for as long as
    the client reads (a broken proxy or server; a reader must bound what it buffers)."""
    await raw(b'data: {"choices": [{"text": "')
    piece = b"<custom_token_10>" * 4096
    while True:
        await raw(piece)
        record.endless_bytes += len(piece)
        await asyncio.sleep(0)


def _with_garbage(tokens: list[str]) -> list[str]:
    """Insert an out-of-range token and a misaligned run after the first frame."""
    head, tail = tokens[:7], tokens[7:]
    garbage = [
        f"<custom_token_{AUDIO_BASE + 7 * 4096}>",  # slot 7: a "code 4096" in slot 6
        "<custom_token_4110>",  # a lone slot-1 token: the next frame's slots no longer line up
        "<custom_token_99999999>",
        "hello",
    ]
    return head + garbage + tail


def _json_error(status: int, message: str, ollama: bool = False) -> web.Response:
    body: Any = {"error": message} if ollama else {"error": {"message": message, "code": status}}
    return web.json_response(body, status=status)
