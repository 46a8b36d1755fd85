"""The upstream Orpheus LLM client: prompts, the two streaming dialects, timeouts."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse, urlsplit, urlunsplit

import aiohttp
from aiohttp.http_exceptions import LineTooLong

from ..config import RequestSettings, SamplingSettings, UpstreamSettings
from ..errors import OrpheusError
from ..format import END_OF_SPEECH, token

_LOGGER = logging.getLogger(__name__)

# Stop on end-of-speech (<custom_token_2>), end-of-AI and end-of-turn (REFERENCE.md 1).
STOP_STRINGS = [token(END_OF_SPEECH), token(6), "<|eot_id|>"]

# ~82 audio tokens per second of speech; ~12 characters per second of English speech at
# the slow end; 1.5x headroom plus room for the lead-in silence the model often makes.
TOKENS_PER_SECOND = 82.03
CHARS_PER_SECOND = 12.0
TOKEN_HEADROOM = 1.5
TOKEN_BASE = 140
TOKEN_SLACK = 64


# aiohttp's line reader keeps at most twice the session's read buffer (64 KiB) of one line;
# an SSE or NDJSON line of Orpheus tokens is well under 1 KiB.
MAX_LINE_BYTES = 2 * 2**16


class UpstreamError(OrpheusError):
    """An LLM server failed; the message names the cause a user can fix."""

    code = "upstream-error"
    retryable = True
    http_status = 502


class UpstreamUnreachable(UpstreamError):
    """The server could not be connected to."""

    code = "upstream-unreachable"
    http_status = 503


class UpstreamBroken(UpstreamError):
    """The connection broke mid-answer (what a server that died mid-stream looks like)."""


class UpstreamAuthError(UpstreamError):
    """The server wants an API key (or a different one)."""

    code = "upstream-auth"
    retryable = False


class UpstreamTimeout(UpstreamError):
    """The server took too long to answer or stalled."""

    code = "upstream-timeout"
    http_status = 504


class NoAudioError(UpstreamError):
    """The server answered without a single audio frame."""

    code = "no-audio"
    retryable = False


@dataclass(frozen=True)
class Sampling:
    """Per-request overrides of the configured sampling; None keeps the setting."""

    temperature: float | None = None
    top_p: float | None = None
    repetition_penalty: float | None = None
    max_tokens: int | None = None
    """A lower cap than `max_tokens` for this request's LLM requests."""
    seed: int | None = None
    """Makes a request repeatable on servers that honour it (llama.cpp, vLLM, Ollama)."""

    def pick(self, settings: SamplingSettings) -> tuple[float, float, float]:
        """Return the temperature, top_p and repetition penalty in force."""
        return (
            settings.temperature if self.temperature is None else self.temperature,
            settings.top_p if self.top_p is None else self.top_p,
            (
                settings.repetition_penalty
                if self.repetition_penalty is None
                else self.repetition_penalty
            ),
        )

    def max_tokens_for(self, text: str, settings: SamplingSettings) -> int:
        """Return max_tokens for one LLM request of `text` under the cap in force."""
        cap = settings.max_tokens if self.max_tokens is None else self.max_tokens
        return max_tokens_for(text, cap)


DEFAULT_SAMPLING = Sampling()


def build_prompt(voice: str, text: str, prompt_format: str) -> str:
    """Build the Orpheus prompt for a voice and a text."""
    if prompt_format == "audio":
        # The GGUF builds carry <|audio|> as one token; the model emits start-of-speech.
        return f"<|audio|>{voice}: {text}<|eot_id|>"
    # The fine-tune's training layout: start-of-human, BOS, "{voice}: {text}", end-of-turn,
    # end-of-human, start-of-AI, start-of-speech.
    return f"{token(3)}<|begin_of_text|>{voice}: {text}<|eot_id|>{token(4)}{token(5)}{token(1)}"


def max_tokens_for(text: str, cap: int) -> int:
    """Size max_tokens from the text: the expected speech with headroom, capped by config."""
    seconds = len(text) / CHARS_PER_SECOND
    return min(cap, int(seconds * TOKENS_PER_SECOND * TOKEN_HEADROOM) + TOKEN_BASE)


def endpoint_url(upstream: UpstreamSettings) -> str:
    """Turn a base URL (`http://h:8080`, `.../v1`) or a full endpoint URL into the endpoint."""
    url = upstream.url.rstrip("/")
    path = urlparse(url).path
    if upstream.api == "ollama":
        if path.endswith("/api/generate"):
            return url
        base = url[: len(url) - len(path)] if path else url
        return base + "/api/generate"
    if path.endswith("/completions"):
        return url
    if path.endswith("/v1"):
        return url + "/completions"
    return url + "/v1/completions"


def shown_url(url: str) -> str:
    """Return the URL without credentials written into it (http://user:secret@host).

    Every message, log line and /health entry names an upstream by this form: a URL with a
    password in it must not reach clients, logs or monitoring.
    """
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def request_body(
    upstream: UpstreamSettings,
    settings: SamplingSettings,
    voice: str,
    text: str,
    sampling: Sampling = DEFAULT_SAMPLING,
) -> dict[str, Any]:
    """Build the JSON body for the upstream's dialect."""
    prompt = build_prompt(voice, text, upstream.prompt_format)
    temperature, top_p, penalty = sampling.pick(settings)
    max_tokens = sampling.max_tokens_for(text, settings)
    seed = {} if sampling.seed is None else {"seed": sampling.seed}
    if upstream.api == "ollama":
        # NOTE: Ollama's /v1/completions cannot carry raw mode or a repeat penalty and
        # applies the chat template, so the model would answer in words (REFERENCE.md 3).
        return {
            "model": upstream.model,
            "prompt": prompt,
            "raw": True,
            "stream": True,
            "options": {
                "temperature": temperature,
                "top_p": top_p,
                "repeat_penalty": penalty,
                "num_predict": max_tokens,
                "stop": STOP_STRINGS,
                **seed,
            },
        }
    return {
        "model": upstream.model,
        "prompt": prompt,
        "stream": True,
        "max_tokens": max_tokens,
        "temperature": temperature,
        "top_p": top_p,
        # llama.cpp reads repeat_penalty, vLLM repetition_penalty; each ignores the other.
        "repeat_penalty": penalty,
        "repetition_penalty": penalty,
        "stop": STOP_STRINGS,
        **seed,
    }


@dataclass
class StreamLimits:
    """How long each phase of one request may take."""

    first_token: float
    """Seconds from sending the request to its first token (the headers' wait included)."""
    stall: float

    def first_deadline(self) -> float:
        """Return the event-loop time by which the first token must have come."""
        return asyncio.get_running_loop().time() + self.first_token


async def stream_completion(
    session: aiohttp.ClientSession,
    upstream: UpstreamSettings,
    requests: RequestSettings,
    defaults: SamplingSettings,
    voice: str,
    text: str,
    sampling: Sampling = DEFAULT_SAMPLING,
) -> AsyncGenerator[str, None]:
    """Send one request and yield the token text as it streams in."""
    target = endpoint_url(upstream)
    url = shown_url(target)  # what messages name; the request goes to target
    headers = {"X-Request-ID": uuid.uuid4().hex}
    if upstream.api_key:
        headers["Authorization"] = f"Bearer {upstream.api_key}"
    body = request_body(upstream, defaults, voice, text, sampling)
    limits = StreamLimits(requests.first_token_timeout, requests.stall_timeout)
    timeout = aiohttp.ClientTimeout(
        total=requests.request_timeout,
        connect=requests.connect_timeout,
        sock_connect=requests.connect_timeout,
    )
    _LOGGER.debug(
        "POST %s (request %s, max_tokens %s)", url, headers["X-Request-ID"], body.get("max_tokens")
    )
    # NOTE: issue 25: one deadline for the headers and the first token together; a timeout
    # per phase let the real limit reach twice first_token_timeout.
    first_deadline = limits.first_deadline()
    try:
        async with asyncio.timeout_at(first_deadline):
            response = await session.post(target, json=body, headers=headers, timeout=timeout)
    except TimeoutError:
        raise UpstreamTimeout(
            f"LLM server at {url} did not answer within {limits.first_token:g} s"
        ) from None
    except aiohttp.ClientError as err:
        raise UpstreamUnreachable(f"cannot reach the LLM server at {url}: {err}") from err
    # NOTE: some servers ignore max_tokens (koboldcpp, misconfigured proxies); stop reading
    # a little past it ourselves so a never-ending stream cannot hold a synthesis forever.
    budget = sampling.max_tokens_for(text, defaults) + TOKEN_SLACK
    completed = False
    try:
        await _check_status(response, url, upstream)
        parse = _parse_ndjson if upstream.api == "ollama" else _parse_sse
        async for text_piece in _read_lines(response, url, limits, first_deadline, parse):
            budget -= max(1, text_piece.count("<"))
            if budget < 0:
                _LOGGER.warning("LLM server at %s went past max_tokens; stopping it", url)
                return
            yield text_piece
        completed = True
    finally:
        if not completed:
            # NOTE: closing the connection (not returning it to the pool) is what makes the
            # LLM server stop generating for a client that went away.
            response.close()
        response.release()


async def _check_status(
    response: aiohttp.ClientResponse, url: str, upstream: UpstreamSettings
) -> None:
    if response.status == 200:
        return
    detail = (await response.text(errors="replace"))[:300].strip()
    if response.status in (401, 403):
        hint = "set llm_api_key (--llm-api-key)" if not upstream.api_key else "check llm_api_key"
        raise UpstreamAuthError(
            f"LLM server at {url} refused the request (HTTP {response.status}): {hint}"
        )
    hint = ""
    if response.status == 404:
        other = "ollama" if upstream.api == "openai" else "openai"
        hint = f"; is the URL right, or is it a server of the other dialect (--llm-api {other})?"
    raise UpstreamError(f"LLM server at {url} answered HTTP {response.status}: {detail}{hint}")


async def _read_lines(
    response: aiohttp.ClientResponse,
    url: str,
    limits: StreamLimits,
    first_deadline: float,
    parse: Any,
) -> AsyncIterator[str]:
    """Read the body line by line: the first token by first_deadline, then no stall."""
    loop = asyncio.get_running_loop()
    first = True
    while True:
        deadline = first_deadline if first else loop.time() + limits.stall
        try:
            async with asyncio.timeout_at(deadline):
                line = await response.content.readline()
        except TimeoutError:
            if first:
                raise UpstreamTimeout(
                    f"LLM server at {url} sent no first token within {limits.first_token:g} s"
                ) from None
            raise UpstreamTimeout(
                f"LLM server at {url} sent no next token within {limits.stall:g} s"
            ) from None
        except aiohttp.ClientError as err:
            raise UpstreamBroken(f"connection to the LLM server at {url} broke: {err}") from err
        except (LineTooLong, ValueError):
            # aiohttp buffers at most MAX_LINE_BYTES of one line (ValueError before 3.10).
            raise UpstreamError(
                f"LLM server at {url} sent a line longer than {MAX_LINE_BYTES // 1024} KiB "
                "without an end: is a proxy in between breaking the stream?"
            ) from None
        if not line:
            return
        text, done = parse(line.decode("utf-8", errors="replace").strip(), url)
        if text:
            first = False
            yield text
        if done:
            return


def _parse_sse(line: str, url: str) -> tuple[str, bool]:
    """Parse one SSE line of an OpenAI completions stream: (text, finished)."""
    if not line.startswith("data:"):
        return "", False  # blank separators, comments, event names
    data = line[5:].strip()
    if data == "[DONE]":
        return "", True
    event = _json(data, url)
    if "error" in event:
        raise UpstreamError(f"LLM server at {url} reported an error: {event['error']}")
    choices = event.get("choices") or [{}]
    return str(choices[0].get("text") or ""), False


def _parse_ndjson(line: str, url: str) -> tuple[str, bool]:
    """Parse one line of Ollama's /api/generate stream: (text, finished)."""
    if not line:
        return "", False
    event = _json(line, url)
    if "error" in event:
        raise UpstreamError(f"LLM server at {url} reported an error: {event['error']}")
    return str(event.get("response") or ""), bool(event.get("done"))


def _json(data: str, url: str) -> dict[str, Any]:
    try:
        event = json.loads(data)
    except json.JSONDecodeError:
        raise UpstreamError(
            f"LLM server at {url} sent a line that is not JSON: {data[:100]!r}"
        ) from None
    if not isinstance(event, dict):
        raise UpstreamError(f"LLM server at {url} sent an unexpected event: {data[:100]!r}")
    return event
