"""Loading settings: the sources, their precedence, and errors that name the source."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from .declare import Spec
from .settings import (
    SECTION_OF,
    UPSTREAM_KEYS,
    ConfigError,
    ManagedSettings,
    Settings,
    UpstreamSettings,
    declared,
)
from .values import excerpt, split_voices

ENV_PREFIX = "ORPHEUS_"

_SPECS: dict[str, Spec] = {spec.name: spec for spec in declared()}


# Layers from lowest to highest precedence.
LAYER_ORDER = ("default", "file", "dotenv", "env", "flag")


@dataclass
class RawLayer:
    """Raw values of one source, each with a label naming where it came from."""

    rank: int
    values: dict[str, tuple[Any, str]] = field(default_factory=dict)


MAX_FILE_BYTES = 1 << 20
"""The largest config file or .env read (a documented config file is ~20 kB)."""
MAX_YAML_DEPTH = 32
"""How deeply the config file may nest (the deepest setting, upstreams' voices, needs 4)."""


def read_yaml_file(path: str) -> RawLayer:
    """Read the YAML config file into a raw layer; unknown keys are errors."""
    label = f"config file {path}"
    text = read_bounded(Path(path), label)
    try:
        data = yaml.load(text, Loader=_ConfigLoader) or {}  # a SafeLoader, see below
    except yaml.YAMLError as err:
        raise ConfigError(f"{label} is not valid YAML: {_yaml_problem(err)}") from None
    except RecursionError:  # the composer bounds nesting; this is the last resort
        raise ConfigError(f"{label} is nested too deeply") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{label} must hold a mapping of settings")
    layer = RawLayer(LAYER_ORDER.index("file"))
    for key, value in data.items():
        if key not in _SPECS:
            raise ConfigError(f"unknown setting {excerpt(key)} in {label}")
        layer.values[key] = (value, f"{label}, key {key}")
    return layer


def _yaml_problem(err: yaml.YAMLError) -> str:
    """Say what is wrong and where, on one line."""
    if isinstance(err, yaml.MarkedYAMLError) and err.problem_mark is not None:
        mark = err.problem_mark
        return f"line {mark.line + 1}, column {mark.column + 1}: {err.problem or err.context}"
    return " ".join(str(err).split())


class _ConfigLoader(yaml.SafeLoader):
    """YAML's safe loader without aliases and with a bound on nesting.

    NOTE: issue 31: aliases (`*name`) let a few hundred bytes stand for billions of values
    (the "billion laughs"); nesting thousands deep ran the composer out of stack. A config
    file needs neither.
    """

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        """Refuse an alias, or a node nested deeper than MAX_YAML_DEPTH, at its line."""
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in a config file", mark
            )
        if self._depth >= MAX_YAML_DEPTH:
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(
                None, None, f"nested deeper than {MAX_YAML_DEPTH} levels", mark
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def read_bounded(path: Path, label: str) -> str:
    """Read a settings file as UTF-8, at most MAX_FILE_BYTES; errors name the file and line."""
    try:
        with path.open("rb") as source:
            data = source.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        raise ConfigError(f"cannot read {label}: {err.strerror or err}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"{label} is larger than {MAX_FILE_BYTES} bytes (or no regular file)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise ConfigError(f"{label}, line {line}: not valid UTF-8 ({err.reason})") from None


def read_dotenv(path: Path) -> dict[str, str]:
    """Parse a .env file: KEY=VALUE lines, # comments, optional quotes and `export`."""
    if not path.is_file():
        return {}
    values: dict[str, str] = {}
    for line in read_bounded(path, f".env file {path}").splitlines():
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


def ignored_settings(settings: Settings) -> list[str]:
    """Say which settings are set but cannot act, given the others (warned about at start)."""
    said = []
    if settings.llm.upstreams:
        managed = [
            s.name
            for s in _SPECS.values()
            if s.declared.section == ManagedSettings.TITLE and settings.value(s.name) != s.default
        ]
        if managed:
            said.append(
                f"managed mode's settings ({', '.join(managed)}): managed mode runs only when "
                "no LLM server is named, and llm_urls/upstreams names one"
            )
    wyoming = settings.wyoming
    if wyoming.zeroconf is not None and not wyoming.uri.startswith("tcp://"):
        said.append(
            f"zeroconf advertises a TCP address; uri is {wyoming.uri}, so nothing is advertised"
        )
    return said


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
            raise ConfigError(f"{key}={excerpt(value)} (from {source}) {err}") from None

    kwargs = {k: v for k, v in parsed.items() if k in SECTION_OF}  # not the llm_* shorthands
    upstreams = _resolve_upstreams(merged, parsed)
    for index, upstream in enumerate(upstreams):
        _check_credentials(upstream, index)
    kwargs["upstreams"] = upstreams
    return Settings.of(**kwargs)


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
    # Every llm_* shorthand (settings.py declares one per upstream setting but the url)
    # sets that setting for each llm_urls server and is the default of an `upstreams` entry.
    common = {
        name: parsed.get(f"llm_{name}", getattr(defaults, name))
        for name in UPSTREAM_KEYS
        if name not in ("url", "voices")
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
                raise ConfigError(f"{where} {key}={excerpt(raw)} {err}") from None
        result.append(UpstreamSettings(**values))
    return tuple(result)
