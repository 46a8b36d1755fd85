"""One answer's hold on an LLM server: picked once, its requests sent there, counted there."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable

from .completion import Sampling
from .server import Upstream
from .tokens import Piece

StreamFn = Callable[[str, str, Sampling, Upstream | None], AsyncGenerator[Piece, None]]
"""Streams (voice, text, sampling, preferred server): the pool's `stream`, or a test's."""


class Lease:
    """Where one answer's requests go, from its first sentence to its last.

    NOTE: issue 29: an answer's sentence requests are planned for one server's batch, so the
    server is picked once (it was picked for the plan, again for the playout's remembered rate
    and again for each request). A request still goes elsewhere when that server fails (the
    pool's one retry), and a server cooling down is skipped as for any request.
    """

    def __init__(self, voice: str, upstream: Upstream | None, stream: StreamFn) -> None:
        self.voice = voice
        self.upstream = upstream
        """The server picked (None: no server speaks the voice; a request then says so)."""
        self._stream = stream

    def remembered(self) -> float | None:
        """Return the server's real-time factor over its last requests (None: not measured)."""
        return None if self.upstream is None else self.upstream.rate.real_time_factor()

    def rates_at(self) -> dict[int, float]:
        """Return the server's measured per-request real-time factor by requests in flight."""
        return {} if self.upstream is None else self.upstream.rates_at()

    def stream(self, text: str, sampling: Sampling) -> AsyncGenerator[Piece, None]:
        """Stream one request of the answer, to its server while that one is healthy."""
        return self._stream(self.voice, text, sampling, self.upstream)
