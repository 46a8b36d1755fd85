"""SSML: the text it speaks (markup and attributes are never read), its breaks as pauses."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from .parts import Part, Pause, TextError

_SSML_STRENGTH = {
    "none": 0.0,
    "x-weak": 0.1,
    "weak": 0.2,
    "medium": 0.4,
    "strong": 0.6,
    "x-strong": 1.0,
}
MAX_BREAK_SECONDS = 10.0
MAX_DEPTH = 64
"""How deeply SSML elements may nest (real SSML nests a handful: speak, p, s, prosody)."""
# Elements that end a stretch of text: their content never runs into the next word.
_BLOCKS = frozenset({"p", "s", "speak", "paragraph", "sentence"})


def ssml_to_parts(ssml: str) -> list[Part]:
    """Turn SSML into text and pauses: the text content is spoken, <break> is silence.

    Text between two breaks is one part, so it is spoken as one utterance (an emphasis
    or a paragraph does not cut a sentence into separate requests).
    """
    # NOTE: issue 31: internal DTD entities made 250 characters of SSML speak as 400,000 (and
    # froze the event loop); defusedxml refuses a DTD, entities and external references.
    try:
        root = fromstring(ssml.strip(), forbid_dtd=True)
    except DefusedXmlException:
        raise TextError("invalid SSML: a DOCTYPE, DTD or entity is not allowed") from None
    except ET.ParseError as err:
        raise TextError(f"invalid SSML: {err}") from None
    parts: list[Part] = []
    _walk_ssml(root, parts, 1)
    return _merge_text(parts)


def _walk_ssml(element: ET.Element, parts: list[Part], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise TextError(f"invalid SSML: elements nested deeper than {MAX_DEPTH}")
    if element.text:
        parts.append(element.text)
    for child in element:
        name = _local_name(child.tag)
        if name == "break":
            parts.append(Pause(_break_seconds(child)))
        elif name == "sub" and child.get("alias") is not None:
            parts.append(child.get("alias", ""))
        elif name == "say-as" and child.get("interpret-as") in ("characters", "spell-out"):
            parts.append(" ".join("".join(child.itertext()).replace(" ", "")))
        else:
            block = name in _BLOCKS
            parts.append(" " if block else "")
            _walk_ssml(child, parts, depth + 1)
            parts.append(" " if block else "")
        if child.tail:
            parts.append(child.tail)


def _merge_text(parts: list[Part]) -> list[Part]:
    merged: list[Part] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        else:
            merged.append(part)
    stripped = (p.strip() if isinstance(p, str) else p for p in merged)
    return [p for p in stripped if p != ""]


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
