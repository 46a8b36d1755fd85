"""One segment's LLM stream, read in a task of its own so reading never waits on decoding."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable

_END = object()


class TokenFeed:
    """Reads one upstream stream into a queue in its own task: reading never waits on decoding."""

    def __init__(
        self,
        stream: AsyncGenerator[str, None],
        chars: int,
        arrived: Callable[[float, str], None],
    ) -> None:
        self.chars = chars
        """The segment's spoken characters (its voice's pace is learned from them)."""
        self._arrived = arrived
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._task = asyncio.create_task(self._read(stream))

    async def _read(self, stream: AsyncGenerator[str, None]) -> None:
        try:
            async with contextlib.aclosing(stream):
                async for piece in stream:
                    # Timed here, as it arrives: what the playout rate measures.
                    self._arrived(time.monotonic(), piece)
                    self._queue.put_nowait(piece)
            self._queue.put_nowait(_END)
        except Exception as err:
            self._queue.put_nowait(err)

    def __aiter__(self) -> AsyncIterator[str]:
        return self._pieces()

    async def _pieces(self) -> AsyncIterator[str]:
        """Yield everything that arrived since the last read as one piece.

        NOTE: issue #10: pushed piece by piece, a loaded decoder stepped one frame at a time
        (~3x the per-frame cost of a 4-16 frame step), so the listener's lead never grew.
        Taking all that queued up while the previous decode ran lets blocks grow under load.
        """
        while True:
            batch: list[str] = []
            item = await self._queue.get()
            while isinstance(item, str):
                batch.append(item)
                if self._queue.empty():
                    break
                item = self._queue.get_nowait()
            if batch:
                yield "".join(batch)
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item

    def cancel(self) -> None:
        """Stop reading; the upstream connection closes at once."""
        self._task.cancel()
