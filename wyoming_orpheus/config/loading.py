"""Loading settings: the sources, their precedence, and errors that name the source."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from .settings import (
    DEVICES,
    LLM_APIS,
    PROMPT_FORMATS,
    URL_MODES,
    ConfigError,
    Settings,
    UpstreamSettings,
)
from .values import (
    Parser,
    arg_list,
    as_bool,
    as_str,
    categories,
    choice,
    float_in,
    gpu_layers,
    http_url,
    int_in,
    name_list,
    optional_bool,
    optional_str,
    split_voices,
    url_list,
    voice_map,
    wyoming_uri,
)

ENV_PREFIX = "ORPHEUS_"


@dataclass(frozen=True)
class _Field:
    parse: Parser
    env: tuple[str, ...] = ()
    """Extra environment names (the names of the project this one replaces)."""


_FIELDS: dict[str, _Field] = {
    "uri": _Field(wyoming_uri),
    "zeroconf": _Field(optional_str),
    "http_host": _Field(as_str, env=("ORPHEUS_HOST",)),
    "http_port": _Field(int_in(1, 65535), env=("ORPHEUS_PORT",)),
    "http_enabled": _Field(as_bool),
    "http_api_key": _Field(optional_str),
    "http_cors_origins": _Field(name_list),
    "http_max_body_bytes": _Field(int_in(1024, 64 * 2**20)),
    "http_body_timeout": _Field(float_in(0.1, 3600)),
    "openai_voices": _Field(voice_map),
    "llm_urls": _Field(url_list, env=("ORPHEUS_API_URL",)),
    "llm_api": _Field(choice(*LLM_APIS)),
    "llm_model": _Field(as_str),
    "llm_api_key": _Field(optional_str),
    "llm_prompt_format": _Field(choice(*PROMPT_FORMATS)),
    "upstreams": _Field(lambda v: v),  # validated in _upstreams_from_yaml
    "llm_gguf": _Field(as_str),
    "llama_server": _Field(optional_str),
    "llm_gpu_layers": _Field(gpu_layers),
    "llama_server_args": _Field(arg_list),
    "connect_timeout": _Field(float_in(0.1, 600)),
    "first_token_timeout": _Field(float_in(0.1, 3600)),
    "stall_timeout": _Field(float_in(0.1, 3600)),
    "request_timeout": _Field(float_in(1, 86400), env=("ORPHEUS_API_TIMEOUT",)),
    "upstream_cooldown": _Field(float_in(0, 3600)),
    "max_tokens": _Field(int_in(7, 1_000_000), env=("ORPHEUS_MAX_TOKENS",)),
    "temperature": _Field(float_in(0, 2), env=("ORPHEUS_TEMPERATURE",)),
    "top_p": _Field(float_in(0.01, 1), env=("ORPHEUS_TOP_P",)),
    "repetition_penalty": _Field(float_in(0.5, 3)),
    "snac_model": _Field(as_str),
    "device": _Field(choice(*DEVICES)),
    "voice": _Field(as_str),
    "streaming": _Field(as_bool),
    "max_text_chars": _Field(int_in(1, 1_000_000)),
    "segment_max_chars": _Field(int_in(20, 5000)),
    "segment_pause_ms": _Field(int_in(0, 10_000)),
    "lookahead_segments": _Field(int_in(0, 8)),
    "speed": _Field(float_in(0.5, 2.0)),
    "normalize": _Field(categories),
    "normalize_urls": _Field(choice(*URL_MODES)),
    "lexicon": _Field(optional_str),
    "output_gain_db": _Field(float_in(-30, 20)),
    "output_limiter": _Field(as_bool),
    "max_concurrent": _Field(int_in(1, 1024, optional=True)),
    "queue_timeout": _Field(float_in(0, 3600)),
    "decode_batch_size": _Field(int_in(1, 256, optional=True)),
    "decode_threads": _Field(int_in(1, 1024, optional=True)),
    "decode_workers": _Field(int_in(1, 64, optional=True)),
    "compile": _Field(optional_bool),
    "decode_mode": _Field(choice("auto", "windowed", "stateful")),
    "warm_up": _Field(as_bool),
    "wyoming_max_connections": _Field(int_in(1, 100_000)),
    "wyoming_first_event_timeout": _Field(float_in(0.1, 3600)),
    "wyoming_idle_timeout": _Field(float_in(1, 86400)),
    "http_max_connections": _Field(int_in(1, 100_000)),
    "http_header_timeout": _Field(float_in(0.1, 3600)),
    "write_timeout": _Field(float_in(0.1, 3600)),
    "shutdown_grace": _Field(float_in(0, 3600)),
    "debug": _Field(as_bool),
    "log_format": _Field(as_str),
}

# Settings of managed mode whose names share the llm_ prefix of the upstream shorthands.
_MANAGED_KEYS = ("llm_gguf", "llm_gpu_layers")

_UPSTREAM_KEYS = {
    "url": http_url,
    "api": choice(*LLM_APIS),
    "model": as_str,
    "api_key": optional_str,
    "prompt_format": choice(*PROMPT_FORMATS),
    "voices": name_list,  # mappings among them are custom voices: split_voices
}


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
                    values["voices"], values["custom_voices"] = split_voices(raw)
                else:
                    values[key] = _UPSTREAM_KEYS[key](raw)
            except ValueError as err:
                raise ConfigError(f"{where} {key}={raw!r} {err}") from None
        result.append(UpstreamSettings(**values))
    return tuple(result)
