"""Splitting text into segments the model speaks well: whole sentences, packed up to a limit."""

from __future__ import annotations

import re

from .sentences import split_sentences

_CLAUSE_RE = re.compile(r"(?<=[,;:–—])\s+")


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
    """Find the last space before limit that is not inside a <tag>; else cut at limit.

    One pass over the first `limit` characters (issue 31: looking back from every candidate
    made long text quadratic).
    """
    best, inside = limit, False
    for index, char in enumerate(text[: limit + 1]):
        if char == "<":
            inside = True
        elif char == ">":
            inside = False
        elif char == " " and not inside and index > 0:
            best = index
    return best
