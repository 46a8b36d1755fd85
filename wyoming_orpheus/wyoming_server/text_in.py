"""Streamed text in (synthesize-chunk): chunks not aligned to words in, whole sentences out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from ..text import Part, SentenceSplitter, TextError


class TextStream:
    """Text of one streaming request: chunks in, complete sentences out."""

    def __init__(self) -> None:
        self._splitter = SentenceSplitter()
        self._sentences: asyncio.Queue[str | None] = asyncio.Queue()
        self.chars = 0
        self.stopped = asyncio.Event()
        self.failed = False
        """Later chunks are ignored: the synthesis failed or the text was refused."""
        self.refusal: TextError | None = None
        """Why the text was cut short (already answered); the request's outcome."""

    def add(self, text: str) -> None:
        """Take one chunk; queue every sentence it completes."""
        self.chars += len(text)
        for sentence in self._splitter.add(text):
            self._sentences.put_nowait(sentence)

    def stop(self) -> None:
        """End of text: queue the unfinished last sentence."""
        for sentence in self._splitter.finish():
            self._sentences.put_nowait(sentence)
        self._sentences.put_nowait(None)
        self.stopped.set()

    async def parts(self) -> AsyncIterator[Part]:
        """Yield sentences as they complete."""
        while (sentence := await self._sentences.get()) is not None:
            yield sentence
