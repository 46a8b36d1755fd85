"""The tasks of one request under one asyncio.TaskGroup: none outlives the request."""

from __future__ import annotations

import asyncio
from types import TracebackType


class RequestTasks:
    """An asyncio.TaskGroup whose body's own exception leaves as itself, not in a group.

    NOTE: issue 29: a request's tasks (the feeder, one reader per sentence) were each created
    and cancelled by hand, and one was never awaited. In a TaskGroup every one is awaited
    when the request ends, however it ends; a task that is not done yet is cancelled when
    the request failed or the listener went away. The tasks never raise (each hands its
    failure on in order, after the audio before it), so the only exception a group can hold
    is the body's: the caller (a door, GeneratorExit from a closed generator, the cancelled
    task) sees exactly what it would have seen without the group.
    """

    def __init__(self) -> None:
        self._group = asyncio.TaskGroup()

    async def __aenter__(self) -> asyncio.TaskGroup:
        return await self._group.__aenter__()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            await self._group.__aexit__(kind, error, traceback)  # it never swallows one
        except BaseExceptionGroup as grouped:
            if len(grouped.exceptions) == 1 and grouped.exceptions[0] is error:
                raise error from error.__cause__
            raise
