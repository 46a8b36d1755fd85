"""Loading settings: the sources, their precedence, and errors that name the source."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from .declare import Spec
from .settings import UPSTREAM_KEYS, ConfigError, Settings, UpstreamSettings, declared
from .values import split_voices

ENV_PREFIX = "ORPHEUS_"

_SPECS: dict[str, Spec] = {spec.name: spec for spec in declared()}
_FIELDS = {f.name for f in dataclasses.fields(Settings)}


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
        if key not in _SPECS:
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
    for key, spec in _SPECS.items():
        if not spec.declared.in_env:
            continue
        # The legacy names rank below our own name when both are set.
        for name in (*spec.declared.env, ENV_PREFIX + key.upper()):
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
            parsed[key] = _SPECS[key].declared.parse(value)
        except ValueError as err:
            raise ConfigError(f"{key}={value!r} (from {source}) {err}") from None

    kwargs = {k: v for k, v in parsed.items() if k in _FIELDS}  # not the llm_* shorthands
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
            if key not in UPSTREAM_KEYS:
                raise ConfigError(f"unknown setting '{key}' in {where}")
            try:
                if key == "voices":
                    values["voices"], values["custom_voices"] = split_voices(raw)
                else:
                    values[key] = UPSTREAM_KEYS[key](raw)
            except ValueError as err:
                raise ConfigError(f"{where} {key}={raw!r} {err}") from None
        result.append(UpstreamSettings(**values))
    return tuple(result)
