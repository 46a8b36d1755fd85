"""Cleaning: markup and unreadable characters out, emotion tags kept, punctuation tidied."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

from ..voices import EMOTION_TAGS

TAG_RE = re.compile(r"<\s*/?\s*([A-Za-z][\w:-]*)[^<>]*>")
EMOTION_TAG_RE = re.compile("(<(?:{})>)".format("|".join(EMOTION_TAGS)))
_MARKDOWN_RE = re.compile(r"(\*{1,3}|_{2,3}|`{1,3}|^#{1,6}\s+|^\s*[-*+]\s+|^>\s*)", re.MULTILINE)
_SPACE_RE = re.compile(r"\s+")
# Symbols that are read (by the normalizer), not dropped, though Unicode calls them "other".
_READ_SYMBOLS = frozenset("°℃℉")
# What is left of these after normalization is noise the model would read or stumble on.
_NOISE_RE = re.compile(r"[#*_|~^\\=<>{}\[\]°℃℉@]")
_NOISE_KEEPING_UNITS_RE = re.compile(r"[#*_|~^\\=<>{}\[\]@]")
_MARKS_RE = re.compile(r"[!?.]*[!?][!?.]*|\.{2,}|…+")
_SENTENCE_END = tuple(".!?…。！？।")
_LONGEST_TAG = max(len(tag) for tag in EMOTION_TAGS) + 2  # with its < >
_TRAILER = "\"'”’»)]"


def clean_text(text: str) -> str:
    """Drop markup and characters the model would read aloud; keep the emotion tags."""
    text = unicodedata.normalize("NFC", text)
    text = TAG_RE.sub(_keep_emotion_tag, text)
    text = _MARKDOWN_RE.sub(" ", text)
    text = "".join(ch for ch in text if _speakable(ch))
    return _SPACE_RE.sub(" ", text).strip()


def _keep_emotion_tag(match: re.Match[str]) -> str:
    name = match.group(1).lower()
    is_plain = match.group(0).strip("<> ").lower() == name
    return f"<{name}>" if name in EMOTION_TAGS and is_plain else " "


def _speakable(char: str) -> bool:
    category = unicodedata.category(char)
    # Control and format characters, emoji and other symbols are not read well.
    # Variation selectors (U+FE0F after an emoji) are marks with nothing left to mark.
    selector = "\ufe00" <= char <= "\ufe0f" or "\U000e0100" <= char <= "\U000e01ef"
    unreadable = selector or category in ("Cc", "Cf", "Co", "Cs", "So", "Sk")
    return not unreadable or char in "\n\t" or char in _READ_SYMBOLS


def outside_tags(text: str, change: Callable[[str], str]) -> str:
    """Apply change to the text between emotion tags; the tags stay exactly as they are."""
    pieces = EMOTION_TAG_RE.split(text)
    return "".join(p if i % 2 else change(p) for i, p in enumerate(pieces))


def tidy_punctuation(text: str, full_stop: str = ".", keep_unit_symbols: bool = False) -> str:
    """Collapse runs of ! ? . (runs derail Orpheus), drop noise, end with a sentence end."""
    noise = _NOISE_KEEPING_UNITS_RE if keep_unit_symbols else _NOISE_RE
    text = outside_tags(text, lambda piece: _tidy_piece(piece, noise))
    text = _SPACE_RE.sub(" ", text).strip()
    return _end_sentence(text, full_stop)


def _tidy_piece(piece: str, noise: re.Pattern[str]) -> str:
    piece = noise.sub(" ", piece)
    # "word ." -> "word.": a mark left alone by a removed symbol sticks to its word
    # (first, so "! !" becomes one run and collapses like "!!").
    piece = re.sub(r"\s+([,;:!?.…])", r"\1", piece)
    return _MARKS_RE.sub(_collapse_marks, piece)


def _collapse_marks(match: re.Match[str]) -> str:
    run = match.group(0)
    if "?" in run:
        return "?"
    if "!" in run:
        return "!"
    return "..." if len(run) > 1 or run == "…" else run


def _end_sentence(text: str, full_stop: str) -> str:
    """Add a sentence end before trailing tags and quotes; a trailing , ; : becomes one."""
    body = EMOTION_TAG_RE.sub("", text).rstrip().rstrip(_TRAILER).rstrip()
    if not body or body.endswith(_SENTENCE_END):
        return text
    # Find where the body ends inside text (tags and quotes after it stay after it).
    end = _body_end(text)
    head, tail = text[:end].rstrip(), text[end:]
    if head.endswith((",", ";", ":")):
        head = head[:-1]
    return head + full_stop + tail


def _body_end(text: str) -> int:
    end = len(text)
    while True:
        stripped = text[:end].rstrip().rstrip(_TRAILER).rstrip()
        match = EMOTION_TAG_RE.search(stripped, max(0, len(stripped) - _LONGEST_TAG))
        if match and match.end() == len(stripped):
            end = match.start()
            continue
        return len(stripped)
