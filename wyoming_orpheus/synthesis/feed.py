"""One segment's LLM stream, read in a task of its own so reading never waits on decoding."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass

from ..upstream.tokens import Piece


@dataclass(frozen=True)
class StreamFailed:
    """The failure that ended the stream."""

    error: Exception


@dataclass(frozen=True)
class StreamEnd:
    """The stream ended: the LLM finished the segment."""


_Item = Piece | StreamFailed | StreamEnd
"""What the reader hands on, in order."""


class TokenFeed:
    """Reads one upstream stream into a queue in its own task: reading never waits on decoding."""

    def __init__(
        self,
        stream: AsyncGenerator[Piece, None],
        tasks: asyncio.TaskGroup,
        chars: int,
        arrived: Callable[[Piece], None],
        ended: Callable[[], None] | None = None,
        index: int | None = None,
    ) -> None:
        self.chars = chars
        """The segment's spoken characters (its voice's pace is learned from them)."""
        self.index = index
        """Its sentence in the answer's sentence plan (None: not planned by sentence)."""
        self._arrived = arrived
        self._ended = ended
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._task = tasks.create_task(self._read(stream))  # the answer's group awaits it

    async def _read(self, stream: AsyncGenerator[Piece, None]) -> None:
        try:
            async with contextlib.aclosing(stream):
                async for piece in stream:
                    self._arrived(piece)  # as it arrives: what the playout rate measures
                    self._queue.put_nowait(piece)
            self._queue.put_nowait(StreamEnd())
        except Exception as err:  # handed on in order: the task itself never fails
            self._queue.put_nowait(StreamFailed(err))
        finally:
            if self._ended is not None:
                self._ended()  # no await: also reached by cancellation

    def __aiter__(self) -> AsyncIterator[Piece]:
        return self._pieces()

    async def _pieces(self) -> AsyncIterator[Piece]:
        """Yield everything that arrived since the last read as one piece.

        NOTE: issue #10: pushed piece by piece, a loaded decoder stepped one frame at a time
        (~3x the per-frame cost of a 4-16 frame step), so the listener's lead never grew.
        Taking all that queued up while the previous decode ran lets blocks grow under load.
        """
        while True:
            batch: Piece | None = None
            item = await self._queue.get()
            while isinstance(item, Piece):
                batch = item if batch is None else batch.merged(item)
                if self._queue.empty():
                    break
                item = self._queue.get_nowait()
            if batch is not None:
                yield batch
            if isinstance(item, StreamEnd):
                return
            if isinstance(item, StreamFailed):
                raise item.error

    async def close(self) -> None:
        """Stop reading and wait until the reader is done: the upstream connection is closed.

        NOTE: issue 29: the reader was cancelled but never awaited, so its end (the
        connection's close) could run after the request had been reported. asyncio.wait
        re-raises a cancellation of ours, never the reader's.
        """
        self._task.cancel()
        await asyncio.wait([self._task])
