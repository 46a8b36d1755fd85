"""Input text: cleaning, SSML, and splitting into segments the model speaks well."""

from __future__ import annotations

import re
import unicodedata
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from sentence_stream import stream_to_sentences

from .voices import EMOTION_TAGS


class TextError(ValueError):
    """The text cannot be spoken; the message says why."""


@dataclass(frozen=True)
class Pause:
    """Silence inside an utterance (an SSML break)."""

    seconds: float


Part = str | Pause

_TAG_RE = re.compile(r"<\s*/?\s*([A-Za-z][\w:-]*)[^<>]*>")
_MARKDOWN_RE = re.compile(r"(\*{1,3}|_{2,3}|`{1,3}|^#{1,6}\s+|^\s*[-*+]\s+|^>\s*)", re.MULTILINE)
_SPACE_RE = re.compile(r"\s+")
_CLAUSE_RE = re.compile(r"(?<=[,;:–—])\s+")
_SSML_STRENGTH = {
    "none": 0.0,
    "x-weak": 0.1,
    "weak": 0.2,
    "medium": 0.4,
    "strong": 0.6,
    "x-strong": 1.0,
}
MAX_BREAK_SECONDS = 10.0


def clean_text(text: str) -> str:
    """Drop markup and characters the model would read aloud; keep the emotion tags."""
    text = unicodedata.normalize("NFC", text)
    text = _TAG_RE.sub(_keep_emotion_tag, text)
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
    return not (category in ("Cc", "Cf", "Co", "Cs", "So", "Sk") and char not in "\n\t")


def ssml_to_parts(ssml: str) -> list[Part]:
    """Turn SSML into text and pauses: the text content is spoken, <break> is silence."""
    try:
        root = ET.fromstring(ssml.strip())
    except ET.ParseError as err:
        raise TextError(f"invalid SSML: {err}") from None
    parts: list[Part] = []
    _walk_ssml(root, parts)
    return parts


def _walk_ssml(element: ET.Element, parts: list[Part]) -> None:
    if element.text:
        parts.append(element.text)
    for child in element:
        if _local_name(child.tag) == "break":
            parts.append(Pause(_break_seconds(child)))
        else:
            _walk_ssml(child, parts)
        if child.tail:
            parts.append(child.tail)


def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1].lower()


def _break_seconds(element: ET.Element) -> float:
    time_attr = element.get("time")
    if time_attr:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s)\s*", time_attr)
        if not match:
            raise TextError(f"invalid SSML break time '{time_attr}' (use e.g. 500ms or 1.5s)")
        value = float(match.group(1)) / (1000 if match.group(2) == "ms" else 1)
        return min(value, MAX_BREAK_SECONDS)
    return _SSML_STRENGTH.get(element.get("strength", "medium"), 0.4)


def split_segments(text: str, max_chars: int) -> list[str]:
    """Split text at sentence ends into segments of at most max_chars, packing short ones."""
    segments: list[str] = []
    current = ""
    for sentence in split_sentences(text):
        for piece in _split_long(sentence, max_chars):
            if current and len(current) + 1 + len(piece) > max_chars:
                segments.append(current)
                current = piece
            else:
                current = f"{current} {piece}" if current else piece
    if current:
        segments.append(current)
    return segments


def split_sentences(text: str) -> list[str]:
    """Split text into sentences with the splitter the Wyoming ecosystem uses."""
    return [s.strip() for s in stream_to_sentences([text]) if s.strip()]


def _split_long(sentence: str, max_chars: int) -> list[str]:
    """Split an over-long sentence at clause punctuation, then at spaces, never in a tag."""
    if len(sentence) <= max_chars:
        return [sentence]
    pieces: list[str] = []
    for clause in _CLAUSE_RE.split(sentence):
        while len(clause) > max_chars:
            cut = _space_before(clause, max_chars)
            pieces.append(clause[:cut].strip())
            clause = clause[cut:].strip()
        pieces.append(clause)
    # Re-pack the clauses so segments stay long (better prosody, fewer requests).
    packed: list[str] = []
    for piece in pieces:
        if packed and len(packed[-1]) + 1 + len(piece) <= max_chars:
            packed[-1] = f"{packed[-1]} {piece}"
        elif piece:
            packed.append(piece)
    return packed


def _space_before(text: str, limit: int) -> int:
    """Find the last space before limit that is not inside a <tag>; else cut at limit."""
    for index in range(limit, 0, -1):
        if text[index] == " " and text.rfind("<", 0, index) <= text.rfind(">", 0, index):
            return index
    return limit
