"""Sentence boundaries with the Wyoming ecosystem's splitter, fed so its cost stays linear.

NOTE: issue 31: sentence_stream's detector searches its whole buffer again (three regular
expressions) for every boundary and every chunk, so one text of 100,000 characters took
seconds, and a run without any boundary grew its buffer without end. Here it is given the text
in small pieces that end at white space, and a run of LONGEST_SENTENCE characters with no
boundary is ended there (at a space): each search then covers a bounded buffer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from sentence_stream import SentenceBoundaryDetector

PIECE_CHARS = 64
"""Text handed to the detector at a time (it needs only the next word to see a boundary)."""
LONGEST_SENTENCE = 1000
"""Characters without a sentence end after which the text so far counts as one sentence (it
is cut further at clauses to fit segment_max_chars anyway)."""
_WORD = re.compile(r"\S+\s*|\s+")
_LAST_SPACE = re.compile(r"\s(?=\S*\Z)")


class SentenceSplitter:
    """Text in (whole or in chunks not aligned to words), complete sentences out."""

    def __init__(self, longest: int = LONGEST_SENTENCE) -> None:
        self._detector = SentenceBoundaryDetector()
        self._longest = longest
        self._since = 0
        """Characters given to the detector since it last gave a sentence."""

    def add(self, text: str) -> list[str]:
        """Take more text; return the sentences it completes."""
        sentences: list[str] = []
        for piece in _pieces(text):
            found = list(self._detector.add_chunk(piece))
            sentences += found
            self._since = 0 if found else self._since + len(piece)
            if self._since >= self._longest:
                sentences += self._cut(mid_word=not piece[-1].isspace())
        return sentences

    def finish(self) -> list[str]:
        """End of text: return what is left as the last sentence."""
        self._since = 0
        rest = self._detector.finish()
        return [rest] if rest.strip() else []

    def _cut(self, mid_word: bool) -> list[str]:
        """End a run with no sentence end; a word still arriving goes on into the next run."""
        rest = self._detector.finish()
        self._since = 0
        space = _LAST_SPACE.search(rest) if mid_word else None
        if space is None:
            return [rest] if rest.strip() else []
        tail = rest[space.end() :]
        self._since = len(tail)
        # add_chunk is a generator: it reads nothing until iterated. A tail is one word, so
        # it completes no sentence.
        return [rest[: space.start()], *self._detector.add_chunk(tail)]


def _pieces(text: str) -> Iterator[str]:
    """Group words (with the space after each) into pieces of about PIECE_CHARS."""
    piece: list[str] = []
    size = 0
    for word in _WORD.findall(text):
        piece.append(word)
        size += len(word)
        if size >= PIECE_CHARS:
            yield "".join(piece)
            piece, size = [], 0
    if piece:
        yield "".join(piece)


def split_sentences(text: str) -> list[str]:
    """Split a whole text into sentences."""
    splitter = SentenceSplitter()
    return [s.strip() for s in (*splitter.add(text), *splitter.finish()) if s.strip()]
