"""One LLM server and what the pool knows of it: its load, its failures, its measured rates."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import DEFAULT_SLOTS, UpstreamSettings
from ..format import REAL_TIME_TOKENS_PER_SECOND
from .completion import endpoint_url, shown_url
from .rate import LoadMeter, RollingRate


@dataclass
class Upstream:
    """One LLM server and what the pool knows of it."""

    settings: UpstreamSettings
    voices: frozenset[str]
    in_flight: int = 0
    leases: int = 0
    """The answers whose requests go here (`UpstreamPool.lease`), sent or not yet."""
    told_slots: int | None = None
    """The slots the server said it has (llama-server's /props), when the settings do not."""
    failed_until: float = 0.0
    last_error: str | None = None
    """The last failure's text (shown in /health); cleared by a success."""
    rate: RollingRate = field(default_factory=RollingRate)
    """Its audio tokens per second over its last requests (playout, /health, /metrics)."""
    rate_at: dict[int, RollingRate] = field(default_factory=dict)
    """Its per-request rate by how many requests it ran at once (a batching server streams
    each slower and all together faster: issue 29), over the last requests at each."""

    def record(self, measured: tuple[int, float], by_load: dict[int, tuple[int, float]]) -> None:
        """Remember one whole generation's rate, overall and at each load it ran at."""
        self.rate.add(*measured)
        for load, part in by_load.items():
            self.rate_at.setdefault(max(1, load), RollingRate()).add(*part)

    running: list[LoadMeter] = field(default_factory=list)
    """The generations streaming now, measured as they go."""

    def rates_at(self) -> dict[int, float]:
        """Return its measured per-request real-time factor by requests in flight: the last
        whole generations at each load, and what the ones streaming now measured so far (a
        load never seen before is known within a second or two of running at it)."""
        sums = {k: r.sums() for k, r in self.rate_at.items()}
        for meter in self.running:
            for k, (tokens, seconds) in meter.measured().items():
                known = sums.get(k, (0, 0.0))
                sums[k] = (known[0] + tokens, known[1] + seconds)
        return {
            k: tokens / seconds / REAL_TIME_TOKENS_PER_SECOND
            for k, (tokens, seconds) in sums.items()
            if seconds > 0
        }

    @property
    def slots(self) -> int:
        """Return the requests it runs at once: as set, as it told, or the default."""
        return self.settings.slots or self.told_slots or DEFAULT_SLOTS

    @property
    def url(self) -> str:
        """Return the endpoint URL without credentials (messages, logs and /health name it)."""
        return shown_url(endpoint_url(self.settings))
