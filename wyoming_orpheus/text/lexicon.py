"""The pronunciation lexicon: whole-word replacements per language, from a YAML file.

    all:                 # every language
      HA: Home Assistant
    de:
      WLAN: W-LAN
      zigbee: Sigbie     # a lower-case entry matches any case; others match exactly

Applied after cleaning and before normalization; reloaded on SIGHUP.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from .cleaning import outside_tags

ALL_LANGUAGES = "all"


class LexiconError(ValueError):
    """The lexicon file cannot be read or is not a mapping of words per language."""


class Lexicon:
    """Replaces whole words (never parts of words, never emotion tags) per language."""

    def __init__(self, entries: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self._entries = {lang.lower(): dict(words) for lang, words in (entries or {}).items()}
        self._compiled: dict[str, tuple[re.Pattern[str], dict[str, str]] | None] = {}

    @classmethod
    def load(cls, path: str) -> Lexicon:
        """Read a lexicon file; errors name the file and the entry."""
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except OSError as err:
            raise LexiconError(f"cannot read lexicon {path}: {err.strerror or err}") from None
        except yaml.YAMLError as err:
            raise LexiconError(f"lexicon {path} is not valid YAML: {err}") from None
        return cls(_validated(data, path))

    def __len__(self) -> int:
        return sum(len(words) for words in self._entries.values())

    def apply(self, text: str, language: str) -> str:
        """Return text with this language's (and every language's) entries replaced."""
        compiled = self._for(language.split("-")[0].lower())
        if compiled is None:
            return text
        pattern, replacements = compiled

        def replace(match: re.Match[str]) -> str:
            word = match.group(0)
            return replacements[word] if word in replacements else replacements[word.lower()]

        return outside_tags(text, lambda piece: pattern.sub(replace, piece))

    def _for(self, language: str) -> tuple[re.Pattern[str], dict[str, str]] | None:
        if language not in self._compiled:
            merged = {**self._entries.get(ALL_LANGUAGES, {}), **self._entries.get(language, {})}
            self._compiled[language] = _compile(merged) if merged else None
        return self._compiled[language]


def _compile(words: dict[str, str]) -> tuple[re.Pattern[str], dict[str, str]]:
    exact = sorted((k for k in words if k != k.lower()), key=len, reverse=True)
    any_case = sorted((k for k in words if k == k.lower()), key=len, reverse=True)
    alternatives = [re.escape(k) for k in exact]
    if any_case:
        alternatives.append("(?i:{})".format("|".join(re.escape(k) for k in any_case)))
    pattern = re.compile(r"(?<!\w)(?:{})(?!\w)".format("|".join(alternatives)))
    return pattern, dict(words)


def _validated(data: Any, path: str) -> dict[str, dict[str, str]]:
    if not isinstance(data, dict):
        raise LexiconError(f"lexicon {path} must map languages (or 'all') to word lists")
    result: dict[str, dict[str, str]] = {}
    for language, words in data.items():
        if not isinstance(language, str) or not isinstance(words, dict):
            raise LexiconError(f"lexicon {path}: '{language}' must map words to replacements")
        checked: dict[str, str] = {}
        for word, replacement in words.items():
            if not isinstance(word, str) or not word.strip():
                raise LexiconError(f"lexicon {path}, {language}: {word!r} is not a word")
            if not isinstance(replacement, (str, int, float)) or isinstance(replacement, bool):
                raise LexiconError(f"lexicon {path}, {language}, {word}: must be text")
            checked[word.strip()] = str(replacement)
        result[language.lower()] = checked
    return result
