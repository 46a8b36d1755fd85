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


SHORT_SENTENCE_CHARS = 24
"""A sentence shorter than this ("Okay.", "Done!") shares a request with a neighbour: a request
of its own costs a slot and a prompt for a second of speech. It joins the one before it, or the
one after it when the one before is the first (joining the first would delay the first audio)."""


def split_sentence_requests(text: str, max_chars: int) -> list[str]:
    """Split text into one request per sentence (issue 29), short ones joined to a neighbour.

    Below real time each request generates while the ones before it play; a sentence over
    max_chars is cut as split_segments cuts it.
    """
    requests: list[str] = []
    carried = ""  # a short sentence waiting to ride with the next one
    for sentence in split_sentences(text):
        for piece in _split_long(sentence, max_chars):
            if carried and len(carried) + 1 + len(piece) <= max_chars:
                piece = f"{carried} {piece}"
            elif carried:
                requests.append(carried)
            carried = ""
            if len(piece) >= SHORT_SENTENCE_CHARS or not requests:
                requests.append(piece)
            elif len(requests) > 1 and len(requests[-1]) + 1 + len(piece) <= max_chars:
                requests[-1] = f"{requests[-1]} {piece}"
            else:
                carried = piece
    return [*requests, carried] if carried else requests


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
