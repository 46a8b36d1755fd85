"""Value parsers: each takes a raw value (a str from the environment or a flag, any YAML type)."""

from __future__ import annotations

import math
import re
import reprlib
import shlex
from collections.abc import Callable
from typing import Any, Literal, TypeVar, overload
from urllib.parse import urlparse

from ..voices import CUSTOM_MODEL, Voice
from .choices import ALL_GPU_LAYERS, NORMALIZE_CATEGORIES

Parser = Callable[[Any], Any]
T = TypeVar("T")

_EXCERPT = reprlib.Repr()
_EXCERPT.maxstring = _EXCERPT.maxother = 80
_EXCERPT.maxlevel = 3
_EXCERPT.maxlist = _EXCERPT.maxdict = _EXCERPT.maxtuple = 6
MAX_TEXT = 10_000
"""The longest value turned into text for a parser (a setting's value is a few hundred)."""


def excerpt(value: Any) -> str:
    """Quote a value for an error message, bounded whatever its size or depth (issue 31)."""
    return _EXCERPT.repr(value)


def _text(value: Any) -> str:
    """Return a scalar's text for parsing; refuse a structure or an over-long value."""
    if isinstance(value, (dict, list, tuple)):
        raise ValueError("must be a single value, not a list or mapping")
    text = str(value)
    if len(text) > MAX_TEXT:
        raise ValueError(f"is {len(text)} characters long (at most {MAX_TEXT})")
    return text


def accepts(parse: Parser) -> str | None:
    """Say what a parser takes (a range or the choices), for the help and the documented file."""
    return getattr(parse, "accepts", None)


def _described(parse: Callable[[Any], T], text: str) -> Callable[[Any], T]:
    parse.accepts = text  # type: ignore[attr-defined]
    return parse


def as_str(value: Any) -> str:
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ValueError("must be a string")
    return _text(value)


def optional_str(value: Any) -> str | None:
    return None if value is None else as_str(value)


def as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = _text(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


@overload
def int_in(low: int, high: int) -> Callable[[Any], int]: ...
@overload
def int_in(low: int, high: int, optional: Literal[True]) -> Callable[[Any], int | None]: ...
def int_in(low: int, high: int, optional: bool = False) -> Callable[[Any], int | None]:
    """Parse an integer in [low, high]; optional: also null, "", auto or none (None)."""

    def parse(value: Any) -> int | None:
        if optional and (value is None or _text(value).strip().lower() in ("", "auto", "none")):
            return None
        if isinstance(value, bool):
            raise ValueError("must be an integer")
        try:
            number = int(_text(value).strip())
        except ValueError:
            raise ValueError("must be an integer") from None
        if not low <= number <= high:
            raise ValueError(f"must be between {low} and {high}")
        return number

    return _described(parse, f"{low}-{high}")


def float_in(low: float, high: float) -> Callable[[Any], float]:
    """Parse a finite number in [low, high]."""

    def parse(value: Any) -> float:
        if isinstance(value, bool):
            raise ValueError("must be a number")
        try:
            number = float(_text(value).strip())
        except ValueError:
            raise ValueError("must be a number") from None
        if not (math.isfinite(number) and low <= number <= high):
            raise ValueError(f"must be between {low:g} and {high:g}")
        return number

    return _described(parse, f"{low:g}-{high:g}")


def choice(*choices: str) -> Callable[[Any], str]:
    """Parse one of the choices, in any case."""

    def parse(value: Any) -> str:
        text = _text(value).strip().lower()
        if text not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return text

    return _described(parse, " | ".join(choices))


def optional_bool(value: Any) -> bool | None:
    if value is None or _text(value).strip().lower() in ("", "auto", "none"):
        return None
    return as_bool(value)


def http_url(value: Any) -> str:
    text = as_str(value).strip()
    parsed = urlparse(text)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    try:
        parsed.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise ValueError("has an invalid port") from None
    return text.rstrip("/")


def wyoming_uri(value: Any) -> str:
    text = as_str(value).strip()
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


def url_list(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise ValueError("must be one URL or a list of URLs (none: managed mode)")
    return tuple(http_url(item) for item in items if str(item).strip())


def voice_map(value: Any) -> dict[str, str]:
    if isinstance(value, str):  # from the environment: alloy=tara,echo=leo
        pairs = [item.partition("=") for item in value.split(",") if item.strip()]
        if any(not sep for _, sep, _ in pairs):
            raise ValueError("must be NAME=VOICE pairs separated by commas")
        value = {name: voice for name, _, voice in pairs}
    if not isinstance(value, dict):
        raise ValueError("must be a mapping of OpenAI voice names to voices")
    return {as_str(k).strip().lower(): as_str(v).strip() for k, v in value.items()}


def categories(value: Any) -> frozenset[str]:
    if isinstance(value, bool):
        return frozenset(NORMALIZE_CATEGORIES) if value else frozenset()
    items = [str(v).strip().lower() for v in name_list(value)]
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


def gpu_layers(value: Any) -> int | None:
    if isinstance(value, str) and value.strip().lower() == "all":
        return ALL_GPU_LAYERS
    return int_in(0, ALL_GPU_LAYERS, optional=True)(value)


def arg_list(value: Any) -> tuple[str, ...]:
    """Options as a list (YAML, repeated flags) or one shell-quoted string (environment)."""
    if isinstance(value, str):
        try:
            return tuple(shlex.split(value))
        except ValueError as err:
            raise ValueError(f"is not a valid option string: {err}") from None
    if not isinstance(value, (list, tuple)):
        raise ValueError("must be a list of options")
    return tuple(as_str(item) for item in value)


def name_list(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise ValueError("must be a list of names")
    return tuple(as_str(item).strip() for item in items if str(item).strip())


_CUSTOM_VOICE_KEYS = ("name", "language", "gender", "description")
_LANGUAGE_RE = re.compile(r"[a-z]{2,3}(?:-[A-Za-z0-9]{2,8})*")


def split_voices(value: Any) -> tuple[tuple[str, ...], tuple[Voice, ...]]:
    """Split an upstream's `voices` into names/languages and custom voices (mappings)."""
    items = value if isinstance(value, list) else [value]
    custom = tuple(_custom_voice(item) for item in items if isinstance(item, dict))
    names = name_list([item for item in items if not isinstance(item, dict)])
    return names, custom


def _custom_voice(item: dict[str, Any]) -> Voice:
    unknown = [key for key in item if key not in _CUSTOM_VOICE_KEYS]
    if unknown:
        raise ValueError(f"has unknown voice keys {', '.join(map(str, unknown))}")
    name = as_str(item.get("name", "")).strip()
    language = as_str(item.get("language", "")).strip()
    if not name or any(ch.isspace() for ch in name):
        raise ValueError("needs a voice name without spaces")
    if not _LANGUAGE_RE.fullmatch(language):
        raise ValueError(f"voice {name} needs a language code such as en or de-CH")
    gender = as_str(item.get("gender", "")).strip()
    description = as_str(item.get("description", f"{name} ({language})")).strip()
    return Voice(name, language, gender, description, model=CUSTOM_MODEL)
