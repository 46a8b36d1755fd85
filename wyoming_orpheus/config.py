"""Settings: defaults < YAML file < environment (and .env) < command-line flags."""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from .voices import CUSTOM_MODEL, Voice

ENV_PREFIX = "ORPHEUS_"
LLM_APIS = ("openai", "ollama")
PROMPT_FORMATS = ("training", "audio")
DEVICES = ("auto", "cpu", "cuda", "mps")
LOG_FORMAT_DEFAULT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# What the spoken-form normalizer writes out; each can be turned off on its own.
NORMALIZE_CATEGORIES = (
    "urls",
    "currency",
    "dates",
    "times",
    "units",
    "ordinals",
    "abbreviations",
    "numbers",
    "symbols",
    "punctuation",
)
URL_MODES = ("speak", "drop")
# The GGUF that managed mode runs when none is named (Orpheus 3B fine-tune, Q8_0).
LLM_GGUF_DEFAULT = "lex-au/Orpheus-3b-FT-Q8_0.gguf"
ALL_GPU_LAYERS = 999
"""What llama-server reads as 'every layer on the GPU' (the model has far fewer)."""

# OpenAI's voice names -> Orpheus voices, matched by character (gender, register).
OPENAI_VOICES_DEFAULT = {
    "alloy": "tara",
    "ash": "dan",
    "ballad": "zac",
    "coral": "jess",
    "echo": "leo",
    "fable": "mia",
    "onyx": "leo",
    "nova": "leah",
    "sage": "zoe",
    "shimmer": "mia",
    "verse": "dan",
}


class ConfigError(Exception):
    """A setting has an invalid value; the message names the setting and its source."""


@dataclass(frozen=True)
class UpstreamSettings:
    """One Orpheus LLM server."""

    url: str
    """Base URL (`http://host:8080/v1`) or the full endpoint URL."""
    api: str = "openai"
    """Dialect: `openai` (/v1/completions, SSE) or `ollama` (/api/generate, NDJSON)."""
    model: str = "orpheus"
    """Model name sent in the request (llama-server ignores it; Ollama and LM Studio need it)."""
    api_key: str | None = None
    """Sent as `Authorization: Bearer <key>` when set."""
    prompt_format: str = "training"
    """`training`: the fine-tune's token layout; `audio`: `<|audio|>{voice}: {text}<|eot_id|>`."""
    voices: tuple[str, ...] = ()
    """Voice names or language codes this server speaks; empty means the English voices."""
    custom_voices: tuple[Voice, ...] = ()
    """Voices of a fine-tune that speaks its own names (given as mappings under `voices`)."""


@dataclass(frozen=True)
class Settings:
    """Every setting of the server, parsed and validated once at start."""

    uri: str = "tcp://0.0.0.0:10200"
    """Where the Wyoming server listens."""
    zeroconf: str | None = None
    """Zeroconf instance name; None disables discovery, "" picks `orpheus-<hostname>`."""
    http_host: str = "0.0.0.0"
    """Address of the OpenAI-compatible HTTP API."""
    http_port: int = 5005
    """Port of the OpenAI-compatible HTTP API."""
    http_enabled: bool = True
    """Serve the HTTP API at all."""
    http_api_key: str | None = None
    """When set, HTTP requests need `Authorization: Bearer <key>` (not /health, the page)."""
    http_cors_origins: tuple[str, ...] = ()
    """Browser origins allowed to call the HTTP API (`*` for any); none by default."""
    http_max_body_bytes: int = 262144
    """Largest HTTP request body; larger ones are refused before being read."""
    http_body_timeout: float = 10.0
    """Seconds an HTTP client may take to send its request body; slower ones get 408."""
    openai_voices: dict[str, str] = field(default_factory=lambda: dict(OPENAI_VOICES_DEFAULT))
    """OpenAI voice names (alloy, echo, ...) -> the Orpheus voice that speaks for each."""
    upstreams: tuple[UpstreamSettings, ...] = ()
    """The Orpheus LLM servers; none named means managed mode (a llama-server of our own)."""
    llm_gguf: str = LLM_GGUF_DEFAULT
    """Managed mode: a local .gguf, or a hub id (`owner/repo`, `owner/repo:Q4_K_M`,
    `owner/repo/file.gguf`)."""
    llama_server: str | None = None
    """Managed mode: the llama-server binary; None finds it on PATH, then in `[llama]`."""
    llm_gpu_layers: int | None = None
    """Managed mode: layers llama-server puts on the GPU; None: all on CUDA/Metal, 0 on CPU."""
    llama_server_args: tuple[str, ...] = ()
    """Managed mode: more llama-server options, checked against its --help at start."""
    connect_timeout: float = 5.0
    """Seconds to open a connection to an LLM server."""
    first_token_timeout: float = 30.0
    """Seconds from sending a request to the first streamed token."""
    stall_timeout: float = 10.0
    """Seconds allowed between two streamed tokens."""
    request_timeout: float = 120.0
    """Seconds one LLM request may take in all."""
    upstream_cooldown: float = 30.0
    """Seconds a failed LLM server is skipped while others are healthy."""
    max_tokens: int = 8192
    """Upper bound of the tokens one request may generate (~100 s of speech)."""
    temperature: float = 0.6
    """Sampling temperature."""
    top_p: float = 0.9
    """Nucleus sampling."""
    repetition_penalty: float = 1.1
    """Orpheus needs >= 1.1 for stable speech."""
    snac_model: str = "hubertsiuzdak/snac_24khz"
    """SNAC codec: a local directory (config.json + pytorch_model.bin) or a hub id."""
    device: str = "auto"
    """Where SNAC decodes: auto, cpu, cuda or mps."""
    voice: str = "tara"
    """Voice used when a request names none."""
    streaming: bool = True
    """Advertise streaming synthesis (synthesize-start/-chunk/-stop) to Wyoming clients."""
    max_text_chars: int = 10000
    """Longest text one request may carry."""
    segment_max_chars: int = 600
    """Longest text per LLM request (~45 s of speech; Orpheus degrades beyond)."""
    segment_pause_ms: int = 150
    """Silence between two segments of one answer."""
    lookahead_segments: int = 1
    """Segments whose LLM request starts while the current one still streams."""
    speed: float = 1.0
    """Default tempo factor (0.5-2.0), pitch unchanged."""
    normalize: frozenset[str] = frozenset(NORMALIZE_CATEGORIES)
    """What the normalizer writes out as words (all; none; a list; or all but `-urls,-dates`)."""
    normalize_urls: str = "speak"
    """Web and e-mail addresses: `speak` (host name, whole e-mail address) or `drop`."""
    lexicon: str | None = None
    """YAML file of whole-word replacements per language; reloaded on SIGHUP."""
    output_gain_db: float = 0.0
    """Gain applied to the voice (-30 to +20 dB), to sit at the level of other voices."""
    output_limiter: bool = True
    """Keep peaks under -1 dBFS with a look-ahead limiter instead of hard clipping."""
    max_concurrent: int | None = None
    """Syntheses at once; None takes the hardware tier's limit."""
    queue_timeout: float = 10.0
    """Seconds a request waits for a free synthesis slot before a busy error."""
    decode_batch_size: int | None = None
    """Decode windows per batch; None takes the hardware tier's value."""
    decode_threads: int | None = None
    """CPU threads per decode worker; None takes the hardware tier's value."""
    decode_workers: int | None = None
    """Decode worker threads, each running whole decode steps; None takes the tier's value."""
    compile: bool | None = None
    """torch.compile the decoder; None takes the hardware tier's choice."""
    decode_mode: str = "auto"
    """auto (the tier's), windowed (batched context windows) or stateful (per-layer caches)."""
    warm_up: bool = True
    """Decode every block size once before serving: the first request is as fast as later ones."""
    wyoming_max_connections: int = 1000
    """Wyoming connections at once; a new one closes the one idle longest, and only when every
    open connection has a synthesis in flight is it answered with a busy error."""
    wyoming_first_event_timeout: float = 10.0
    """Seconds a new Wyoming connection has to send its first complete event before it closes."""
    wyoming_idle_timeout: float = 300.0
    """Seconds a Wyoming connection may send nothing (while no synthesis runs) before it closes."""
    http_max_connections: int = 1000
    """HTTP connections at once; a new one closes the one idle longest, and only when every
    open connection has a request in flight is it answered with 503 busy."""
    http_header_timeout: float = 10.0
    """Seconds an HTTP client has for its request line and headers, and an idle keep-alive
    connection stays open."""
    write_timeout: float = 30.0
    """Seconds a client may read nothing before its synthesis ends and its slot is freed."""
    shutdown_grace: float = 10.0
    """Seconds in-flight syntheses may finish after SIGTERM before they are cancelled."""
    debug: bool = False
    """Log at DEBUG level."""
    log_format: str = LOG_FORMAT_DEFAULT
    """Python logging format."""


# --- value parsers: each takes a raw value (a str from env/flags, any type from YAML) ---

Parser = Callable[[Any], Any]


def _str(value: Any) -> str:
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ValueError("must be a string")
    return str(value)


def _optional_str(value: Any) -> str | None:
    return None if value is None else _str(value)


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _int_in(low: int, high: int, optional: bool = False) -> Parser:
    def parse(value: Any) -> int | None:
        if optional and (value is None or str(value).strip().lower() in ("", "auto", "none")):
            return None
        if isinstance(value, bool):
            raise ValueError("must be an integer")
        try:
            number = int(str(value).strip())
        except ValueError:
            raise ValueError("must be an integer") from None
        if not low <= number <= high:
            raise ValueError(f"must be between {low} and {high}")
        return number

    return parse


def _float_in(low: float, high: float) -> Parser:
    def parse(value: Any) -> float:
        if isinstance(value, bool):
            raise ValueError("must be a number")
        try:
            number = float(str(value).strip())
        except ValueError:
            raise ValueError("must be a number") from None
        if not (math.isfinite(number) and low <= number <= high):
            raise ValueError(f"must be between {low:g} and {high:g}")
        return number

    return parse


def _choice(*choices: str) -> Parser:
    def parse(value: Any) -> str:
        text = str(value).strip().lower()
        if text not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return text

    return parse


def _optional_bool(value: Any) -> bool | None:
    if value is None or str(value).strip().lower() in ("", "auto", "none"):
        return None
    return _bool(value)


def _http_url(value: Any) -> str:
    text = _str(value).strip()
    parsed = urlparse(text)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    try:
        parsed.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise ValueError("has an invalid port") from None
    return text.rstrip("/")


def _uri(value: Any) -> str:
    text = _str(value).strip()
    parsed = urlparse(text)
    if parsed.scheme == "tcp":
        try:
            port = parsed.port
        except ValueError:
            raise ValueError("has an invalid port") from None
        if not parsed.hostname or port is None:
            raise ValueError("must look like tcp://HOST:PORT")
    elif parsed.scheme not in ("unix", "stdio"):
        raise ValueError("must start with tcp://, unix:// or stdio://")
    return text


def _url_list(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise ValueError("must be one URL or a list of URLs (none: managed mode)")
    return tuple(_http_url(item) for item in items if str(item).strip())


def _voice_map(value: Any) -> dict[str, str]:
    if isinstance(value, str):  # from the environment: alloy=tara,echo=leo
        pairs = [item.partition("=") for item in value.split(",") if item.strip()]
        if any(not sep for _, sep, _ in pairs):
            raise ValueError("must be NAME=VOICE pairs separated by commas")
        value = {name: voice for name, _, voice in pairs}
    if not isinstance(value, dict):
        raise ValueError("must be a mapping of OpenAI voice names to voices")
    return {_str(k).strip().lower(): _str(v).strip() for k, v in value.items()}


def _categories(value: Any) -> frozenset[str]:
    if isinstance(value, bool):
        return frozenset(NORMALIZE_CATEGORIES) if value else frozenset()
    items = [str(v).strip().lower() for v in _name_list(value)]
    if items in (["all"], ["true"], ["on"]):
        return frozenset(NORMALIZE_CATEGORIES)
    if items in ([], ["none"], ["false"], ["off"]):
        return frozenset()
    unknown = [i for i in items if i.lstrip("-") not in NORMALIZE_CATEGORIES]
    if unknown:
        raise ValueError(
            f"names unknown categories ({', '.join(unknown)}); use all, none, or some of "
            f"{', '.join(NORMALIZE_CATEGORIES)} (a leading - removes one from all)"
        )
    removed = {i[1:] for i in items if i.startswith("-")}
    if removed and len(removed) != len(items):
        raise ValueError("must list categories to keep, or only ones to remove (-name)")
    if removed:
        return frozenset(NORMALIZE_CATEGORIES) - removed
    return frozenset(items)


def _gpu_layers(value: Any) -> int | None:
    if isinstance(value, str) and value.strip().lower() == "all":
        return ALL_GPU_LAYERS
    return _int_in(0, ALL_GPU_LAYERS, optional=True)(value)


def _arg_list(value: Any) -> tuple[str, ...]:
    """Options as a list (YAML, repeated flags) or one shell-quoted string (environment)."""
    if isinstance(value, str):
        try:
            return tuple(shlex.split(value))
        except ValueError as err:
            raise ValueError(f"is not a valid option string: {err}") from None
    if not isinstance(value, (list, tuple)):
        raise ValueError("must be a list of options")
    return tuple(_str(item) for item in value)


def _name_list(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise ValueError("must be a list of names")
    return tuple(_str(item).strip() for item in items if str(item).strip())


@dataclass(frozen=True)
class _Field:
    parse: Parser
    env: tuple[str, ...] = ()
    """Extra environment names (the names of the project this one replaces)."""


_FIELDS: dict[str, _Field] = {
    "uri": _Field(_uri),
    "zeroconf": _Field(_optional_str),
    "http_host": _Field(_str, env=("ORPHEUS_HOST",)),
    "http_port": _Field(_int_in(1, 65535), env=("ORPHEUS_PORT",)),
    "http_enabled": _Field(_bool),
    "http_api_key": _Field(_optional_str),
    "http_cors_origins": _Field(_name_list),
    "http_max_body_bytes": _Field(_int_in(1024, 64 * 2**20)),
    "http_body_timeout": _Field(_float_in(0.1, 3600)),
    "openai_voices": _Field(_voice_map),
    "llm_urls": _Field(_url_list, env=("ORPHEUS_API_URL",)),
    "llm_api": _Field(_choice(*LLM_APIS)),
    "llm_model": _Field(_str),
    "llm_api_key": _Field(_optional_str),
    "llm_prompt_format": _Field(_choice(*PROMPT_FORMATS)),
    "upstreams": _Field(lambda v: v),  # validated in _upstreams_from_yaml
    "llm_gguf": _Field(_str),
    "llama_server": _Field(_optional_str),
    "llm_gpu_layers": _Field(_gpu_layers),
    "llama_server_args": _Field(_arg_list),
    "connect_timeout": _Field(_float_in(0.1, 600)),
    "first_token_timeout": _Field(_float_in(0.1, 3600)),
    "stall_timeout": _Field(_float_in(0.1, 3600)),
    "request_timeout": _Field(_float_in(1, 86400), env=("ORPHEUS_API_TIMEOUT",)),
    "upstream_cooldown": _Field(_float_in(0, 3600)),
    "max_tokens": _Field(_int_in(7, 1_000_000), env=("ORPHEUS_MAX_TOKENS",)),
    "temperature": _Field(_float_in(0, 2), env=("ORPHEUS_TEMPERATURE",)),
    "top_p": _Field(_float_in(0.01, 1), env=("ORPHEUS_TOP_P",)),
    "repetition_penalty": _Field(_float_in(0.5, 3)),
    "snac_model": _Field(_str),
    "device": _Field(_choice(*DEVICES)),
    "voice": _Field(_str),
    "streaming": _Field(_bool),
    "max_text_chars": _Field(_int_in(1, 1_000_000)),
    "segment_max_chars": _Field(_int_in(20, 5000)),
    "segment_pause_ms": _Field(_int_in(0, 10_000)),
    "lookahead_segments": _Field(_int_in(0, 8)),
    "speed": _Field(_float_in(0.5, 2.0)),
    "normalize": _Field(_categories),
    "normalize_urls": _Field(_choice(*URL_MODES)),
    "lexicon": _Field(_optional_str),
    "output_gain_db": _Field(_float_in(-30, 20)),
    "output_limiter": _Field(_bool),
    "max_concurrent": _Field(_int_in(1, 1024, optional=True)),
    "queue_timeout": _Field(_float_in(0, 3600)),
    "decode_batch_size": _Field(_int_in(1, 256, optional=True)),
    "decode_threads": _Field(_int_in(1, 1024, optional=True)),
    "decode_workers": _Field(_int_in(1, 64, optional=True)),
    "compile": _Field(_optional_bool),
    "decode_mode": _Field(_choice("auto", "windowed", "stateful")),
    "warm_up": _Field(_bool),
    "wyoming_max_connections": _Field(_int_in(1, 100_000)),
    "wyoming_first_event_timeout": _Field(_float_in(0.1, 3600)),
    "wyoming_idle_timeout": _Field(_float_in(1, 86400)),
    "http_max_connections": _Field(_int_in(1, 100_000)),
    "http_header_timeout": _Field(_float_in(0.1, 3600)),
    "write_timeout": _Field(_float_in(0.1, 3600)),
    "shutdown_grace": _Field(_float_in(0, 3600)),
    "debug": _Field(_bool),
    "log_format": _Field(_str),
}

# Settings of managed mode whose names share the llm_ prefix of the upstream shorthands.
_MANAGED_KEYS = ("llm_gguf", "llm_gpu_layers")

_UPSTREAM_KEYS = {
    "url": _http_url,
    "api": _choice(*LLM_APIS),
    "model": _str,
    "api_key": _optional_str,
    "prompt_format": _choice(*PROMPT_FORMATS),
    "voices": _name_list,  # mappings among them are custom voices: _split_voices
}
_CUSTOM_VOICE_KEYS = ("name", "language", "gender", "description")
_LANGUAGE_RE = re.compile(r"[a-z]{2,3}(?:-[A-Za-z0-9]{2,8})*")


def _split_voices(value: Any) -> tuple[tuple[str, ...], tuple[Voice, ...]]:
    """Split an upstream's `voices` into names/languages and custom voices (mappings)."""
    items = value if isinstance(value, list) else [value]
    custom = tuple(_custom_voice(item) for item in items if isinstance(item, dict))
    names = _name_list([item for item in items if not isinstance(item, dict)])
    return names, custom


def _custom_voice(item: dict[str, Any]) -> Voice:
    unknown = [key for key in item if key not in _CUSTOM_VOICE_KEYS]
    if unknown:
        raise ValueError(f"has unknown voice keys {', '.join(map(str, unknown))}")
    name = _str(item.get("name", "")).strip()
    language = _str(item.get("language", "")).strip()
    if not name or any(ch.isspace() for ch in name):
        raise ValueError("needs a voice name without spaces")
    if not _LANGUAGE_RE.fullmatch(language):
        raise ValueError(f"voice {name} needs a language code such as en or de-CH")
    gender = _str(item.get("gender", "")).strip()
    description = _str(item.get("description", f"{name} ({language})")).strip()
    return Voice(name, language, gender, description, model=CUSTOM_MODEL)


# Layers from lowest to highest precedence.
LAYER_ORDER = ("default", "file", "dotenv", "env", "flag")


@dataclass
class RawLayer:
    """Raw values of one source, each with a label naming where it came from."""

    rank: int
    values: dict[str, tuple[Any, str]] = field(default_factory=dict)


def read_yaml_file(path: str) -> RawLayer:
    """Read the YAML config file into a raw layer; unknown keys are errors."""
    label = f"config file {path}"
    try:
        text = Path(path).read_text(encoding="utf-8")
        data = yaml.safe_load(text) or {}
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror or err}") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings")
    layer = RawLayer(LAYER_ORDER.index("file"))
    for key, value in data.items():
        if key not in _FIELDS:
            raise ConfigError(f"unknown setting '{key}' in {label}")
        layer.values[key] = (value, f"{label}, key {key}")
    return layer


def read_dotenv(path: Path) -> dict[str, str]:
    """Parse a .env file: KEY=VALUE lines, # comments, optional quotes and `export`."""
    if not path.is_file():
        return {}
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def env_layer(environ: Mapping[str, str], kind: str) -> RawLayer:
    """Pick the ORPHEUS_* settings (and the legacy names) out of an environment."""
    layer = RawLayer(LAYER_ORDER.index(kind))
    where = "environment" if kind == "env" else ".env file"
    for key, spec in _FIELDS.items():
        if key == "upstreams":
            continue
        # The legacy names rank below our own name when both are set.
        for name in (*spec.env, ENV_PREFIX + key.upper()):
            if name in environ:
                layer.values[key] = (environ[name], f"{where} {name}")
    return layer


def build_settings(layers: list[RawLayer]) -> Settings:
    """Merge raw layers by precedence and validate every value into Settings."""
    merged: dict[str, tuple[Any, str, int]] = {}
    for layer in sorted(layers, key=lambda item: item.rank):
        for key, (value, source) in layer.values.items():
            merged[key] = (value, source, layer.rank)

    parsed: dict[str, Any] = {}
    for key, (value, source, _rank) in merged.items():
        if key == "upstreams":
            continue
        try:
            parsed[key] = _FIELDS[key].parse(value)
        except ValueError as err:
            raise ConfigError(f"{key}={value!r} (from {source}) {err}") from None

    kwargs = {k: v for k, v in parsed.items() if not k.startswith("llm_") or k in _MANAGED_KEYS}
    upstreams = _resolve_upstreams(merged, parsed)
    for index, upstream in enumerate(upstreams):
        _check_credentials(upstream, index)
    kwargs["upstreams"] = upstreams
    return Settings(**kwargs)


def _check_credentials(upstream: UpstreamSettings, index: int) -> None:
    """Refuse a URL with user:password together with an API key: HTTP has one Authorization
    header, and the client library refuses every such request."""
    parsed = urlparse(upstream.url)
    if upstream.api_key and (parsed.username or parsed.password):
        raise ConfigError(
            f"LLM server {index + 1} has a user name or password in its URL and an API key "
            "(llm_api_key): one Authorization header cannot carry both; keep one"
        )


def _resolve_upstreams(
    merged: dict[str, tuple[Any, str, int]], parsed: dict[str, Any]
) -> tuple[UpstreamSettings, ...]:
    """Build the upstream list from `llm_urls` or the YAML `upstreams`, whichever ranks higher."""
    defaults = UpstreamSettings(url="")
    common = {
        "api": parsed.get("llm_api", defaults.api),
        "model": parsed.get("llm_model", defaults.model),
        "api_key": parsed.get("llm_api_key", defaults.api_key),
        "prompt_format": parsed.get("llm_prompt_format", defaults.prompt_format),
    }
    # An empty llm_urls (the documented config file's default) names no server at all.
    urls_rank = merged["llm_urls"][2] if parsed.get("llm_urls") else -1
    if "upstreams" in merged and merged["upstreams"][2] > urls_rank:
        value, source, _ = merged["upstreams"]
        return _upstreams_from_yaml(value, source, common)
    # NOTE: no server named from any source means managed mode (issue 18): an empty tuple.
    urls = parsed.get("llm_urls") or ()
    return tuple(UpstreamSettings(url=url, **common) for url in urls)


def _upstreams_from_yaml(
    value: Any, source: str, common: dict[str, Any]
) -> tuple[UpstreamSettings, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"upstreams (from {source}) must be a non-empty list of mappings")
    result = []
    for index, item in enumerate(value):
        where = f"upstreams[{index}] (from {source})"
        if isinstance(item, str):
            item = {"url": item}
        if not isinstance(item, dict) or "url" not in item:
            raise ConfigError(f"{where} must be a URL or a mapping with a url")
        values = dict(common)
        for key, raw in item.items():
            if key not in _UPSTREAM_KEYS:
                raise ConfigError(f"unknown setting '{key}' in {where}")
            try:
                if key == "voices":
                    values["voices"], values["custom_voices"] = _split_voices(raw)
                else:
                    values[key] = _UPSTREAM_KEYS[key](raw)
            except ValueError as err:
                raise ConfigError(f"{where} {key}={raw!r} {err}") from None
        result.append(UpstreamSettings(**values))
    return tuple(result)
