"""POST /v1/audio/speech and /speak: OpenAI's request shape in, audio streamed out."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import math
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from aiohttp import web

from ..audio.encoders import FORMATS, AudioFormat, open_encoder
from ..config import Settings
from ..engine import Engine
from ..errors import log_safe
from ..format import SAMPLE_RATE, SAMPLES_PER_FRAME, TOKENS_PER_FRAME
from ..outcomes import record
from ..sockets import bound_send_buffer, write_within
from ..synthesis import Sampling
from ..voices import Voice
from .errors import ApiError, domain_error_response

_LOGGER = logging.getLogger(__name__)

DOOR = "http"  # the metrics label of this front door
SPEED_RANGE = (0.25, 4.0)
STREAM_FORMATS = ("audio", "sse")
_TOKENS_PER_SAMPLE = TOKENS_PER_FRAME / SAMPLES_PER_FRAME

EngineGetter = Callable[[web.Request], Engine]


class _StreamCut(Exception):
    """The body ended early after its audio started; the response is already sent."""

    def __init__(self, response: web.StreamResponse, cause: Exception) -> None:
        super().__init__(str(cause))
        self.response = response
        self.cause = cause


@dataclass(frozen=True)
class SpeechRequest:
    """A validated speech request."""

    text: str
    voice: Voice
    audio_format: AudioFormat
    speed: float
    sse: bool
    sampling: Sampling


async def read_json(request: web.Request, settings: Settings) -> dict[str, Any]:
    """Read a JSON object body; refuse a large one before reading it, a slow one in time."""
    if request.content_type != "application/json":
        raise ApiError(
            415,
            "send the request body as JSON (Content-Type: application/json)",
            code="unsupported-media-type",
        )
    max_bytes = settings.http.http_max_body_bytes
    if request.content_length is not None and request.content_length > max_bytes:
        raise _too_large(max_bytes)
    try:
        # NOTE: aiohttp waits for a body as long as the client keeps the connection open;
        # a client trickling bytes would hold its connection and buffer forever.
        async with asyncio.timeout(within := settings.http.http_body_timeout):
            raw = await _read_body(request, max_bytes)
    except TimeoutError:
        raise ApiError(
            408,
            f"the body did not arrive within {within:g} s (http_body_timeout)",
            code="body-timeout",
            headers={"Connection": "close"},
        ) from None
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as err:
        # NOTE: issue 31: ValueError covers JSONDecodeError, UnicodeDecodeError and an integer
        # over Python's 4300-digit limit; RecursionError a body nested thousands deep. Each is
        # the client's mistake, never a 500.
        why = "it is nested too deeply" if isinstance(err, RecursionError) else str(err)[:200]
        raise ApiError(400, f"the body is not valid JSON: {why}", code="invalid-json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object", code="invalid-json")
    return body


async def _read_body(request: web.Request, max_bytes: int) -> bytearray:
    raw = bytearray()
    # A chunked body has no length: read no more than the limit plus one byte.
    while len(raw) <= max_bytes:
        chunk = await request.content.read(max_bytes + 1 - len(raw))
        if not chunk:
            break
        raw.extend(chunk)
    if len(raw) > max_bytes:
        raise _too_large(max_bytes)
    return raw


def _too_large(max_bytes: int) -> ApiError:
    return ApiError(
        413,
        f"the body is larger than {max_bytes} bytes (http_max_body_bytes)",
        code="body-too-large",
        headers={"Connection": "close"},
    )


def parse_speech(body: dict[str, Any], engine: Engine) -> SpeechRequest:
    """Validate OpenAI's speech body and our sampling extensions."""
    settings = engine.settings
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise _invalid("model", "must be a string")
    text = body.get("input")
    if not isinstance(text, str):
        raise _invalid("input", "is required and must be a string")
    _optional(body, "instructions", str)  # NOTE: accepted, unused: tags in `input` steer Orpheus
    audio_format = _choice(body, "response_format", "mp3", tuple(FORMATS))
    stream_format = _choice(body, "stream_format", "audio", STREAM_FORMATS)
    speed = _number(body, "speed", *SPEED_RANGE)
    max_tokens = _number(body, "max_tokens", 7, settings.sampling.max_tokens, integer=True)
    seed = _number(body, "seed", 0, 2**32 - 1, integer=True)
    sampling = Sampling(
        temperature=_number(body, "temperature", 0, 2),
        top_p=_number(body, "top_p", 0.01, 1),
        repetition_penalty=_number(body, "repetition_penalty", 0.5, 3),
        max_tokens=None if max_tokens is None else int(max_tokens),
        seed=None if seed is None else int(seed),
    )
    return SpeechRequest(
        text=text,
        voice=resolve_voice(body.get("voice"), engine),
        audio_format=FORMATS[audio_format],
        speed=settings.speech.speed if speed is None else speed,
        sse=stream_format == "sse",
        sampling=sampling,
    )


def resolve_voice(value: Any, engine: Engine) -> Voice:
    """Find a voice by its name, `{"id": name}`, or an OpenAI voice name from the table."""
    if isinstance(value, dict):
        value = value.get("id", 0)  # 0: a mapping without an id is refused below
    if value is not None and not isinstance(value, str):
        raise _invalid("voice", 'must be a voice name or {"id": name}')
    synthesizer = engine.synthesizer
    name = value.strip() if value else None
    if name and synthesizer.catalog.get(name) is None:
        name = engine.settings.http.openai_voices.get(name.lower(), name)
    return synthesizer.resolve_voice(name)  # VoiceError names the voices on offer


def _invalid(param: str, problem: str) -> ApiError:
    return ApiError(400, f"'{param}' {problem}", param=param, code="invalid-value")


def _optional(body: dict[str, Any], key: str, kind: type) -> Any:
    value = body.get(key)
    if value is not None and not isinstance(value, kind):
        raise _invalid(key, f"must be a {kind.__name__}")
    return value


def _choice(body: dict[str, Any], key: str, default: str, choices: tuple[str, ...]) -> str:
    value = _optional(body, key, str)
    if value is None:
        return default
    if value not in choices:
        raise _invalid(key, f"must be one of {', '.join(choices)} (got {value!r})")
    return str(value)


def _number(
    body: dict[str, Any], key: str, low: float, high: float, integer: bool = False
) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not is_number or not math.isfinite(value) or (integer and value != int(value)):
        raise _invalid(key, "must be an integer" if integer else "must be a number")
    if not low <= value <= high:
        raise _invalid(key, f"must be between {low:g} and {high:g} (got {value:g})")
    return float(value)


async def speech(request: web.Request, engine: Engine) -> web.StreamResponse:
    """Speak `input` with `voice` as `response_format`, streamed while the LLM generates."""
    body = await read_json(request, engine.settings)
    return await _counted(engine, lambda: _speak(request, engine, parse_speech, body))


async def speak(request: web.Request, engine: Engine) -> web.StreamResponse:
    """Speak `{"text", "voice"}` as WAV (the Orpheus-FastAPI-LMStudio route)."""
    body = await read_json(request, engine.settings)

    def parse(legacy: dict[str, Any], engine: Engine) -> SpeechRequest:
        return parse_speech(
            {"input": legacy.get("text"), "voice": legacy.get("voice"), "response_format": "wav"},
            engine,
        )

    return await _counted(engine, lambda: _speak(request, engine, parse, body))


async def _counted(
    engine: Engine, work: Callable[[], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Run one synthesis; count and log how it ended (outcomes.record, shared with Wyoming)."""
    try:
        response = await work()
    except _StreamCut as cut:
        record(engine.metrics, DOOR, cut.cause)
        return cut.response
    except BaseException as err:
        record(engine.metrics, DOOR, err)
        if isinstance(err, Exception) and not isinstance(err, ApiError):
            return domain_error_response(err)
        raise  # a refusal (the middleware's envelope) or a cancellation
    record(engine.metrics, DOOR, None)
    return response


async def _speak(
    request: web.Request,
    engine: Engine,
    parse: Callable[[dict[str, Any], Engine], SpeechRequest],
    body: dict[str, Any],
) -> web.StreamResponse:
    speech_request = parse(body, engine)
    synthesizer = engine.synthesizer
    parts = synthesizer.prepare(speech_request.text)  # TextError: empty or too long
    pcm = synthesizer.synthesize(
        parts, speech_request.voice, speech_request.speed, speech_request.sampling, door=DOOR
    )
    async with contextlib.aclosing(pcm):
        # A failure before the first audio is still a proper JSON error: start the
        # synthesis before sending any header.
        first = await anext(pcm, None)
        return await _stream(
            request, speech_request, first, pcm, engine.settings.limits.write_timeout
        )


async def _stream(
    request: web.Request,
    speech_request: SpeechRequest,
    first: np.ndarray | None,
    pcm: AsyncGenerator[np.ndarray, None],
    write_timeout: float,
) -> web.StreamResponse:
    audio_format = speech_request.audio_format
    content_type = "text/event-stream" if speech_request.sse else audio_format.content_type
    response = web.StreamResponse(
        headers={
            "Content-Type": content_type,
            "X-Audio-Sample-Rate": str(SAMPLE_RATE),
            "Cache-Control": "no-cache",
        }
    )
    response.enable_chunked_encoding()
    bound_send_buffer(request.transport)
    await response.prepare(request)
    send = _sender(request, response, write_timeout)
    body = _SseBody(send) if speech_request.sse else _AudioBody(send)
    encoder = open_encoder(audio_format.name)
    loop = asyncio.get_running_loop()
    samples = first
    try:
        # NOTE: encoding runs off the event loop, like decoding: the loop only moves bytes.
        while samples is not None:
            await body.write(await loop.run_in_executor(None, encoder.push, samples), len(samples))
            samples = await anext(pcm, None)
        await body.write(await loop.run_in_executor(None, encoder.finish), 0)
        await body.done()
    except asyncio.CancelledError:
        raise  # the client went away: the synthesis is closed by the caller
    except ConnectionError as err:
        # The client went away while we wrote, or was dropped for reading nothing.
        _LOGGER.info("Speech stream to %s ended: %s", request.remote, log_safe(str(err)))
        raise _StreamCut(response, err) from err
    except Exception as err:
        # The status line is sent: no JSON error can follow. Cut the body short so the
        # client sees an incomplete response instead of a clean end.
        if request.transport is not None:
            request.transport.close()
        raise _StreamCut(response, err) from err
    finally:
        encoder.close()
    await send(None)
    return response


Send = Callable[[bytes | None], Awaitable[None]]


def _sender(request: web.Request, response: web.StreamResponse, timeout: float) -> Send:
    """Write body bytes (None: the end); a client that reads nothing for `timeout` is dropped."""

    async def send(data: bytes | None) -> None:
        write = response.write_eof() if data is None else response.write(data)
        await write_within(write, request.transport, timeout)

    return send


class _AudioBody:
    def __init__(self, send: Send) -> None:
        self._send = send

    async def write(self, data: bytes, samples: int) -> None:
        if data:
            await self._send(data)

    async def done(self) -> None:
        return None


class _SseBody:
    """OpenAI's `stream_format: sse`: speech.audio.delta events, then speech.audio.done."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._samples = 0

    async def write(self, data: bytes, samples: int) -> None:
        self._samples += samples
        if data:
            audio = base64.b64encode(data).decode("ascii")
            await self._event({"type": "speech.audio.delta", "audio": audio})

    async def done(self) -> None:
        # Orpheus spends 7 audio tokens per 2048 samples. The input is not tokenized here,
        # so usage names only the audio tokens.
        tokens = round(self._samples * _TOKENS_PER_SAMPLE)
        usage = {"output_tokens": tokens, "total_tokens": tokens}
        await self._event({"type": "speech.audio.done", "usage": usage})

    async def _event(self, event: dict[str, Any]) -> None:
        await self._send(f"data: {json.dumps(event)}\n\n".encode())
