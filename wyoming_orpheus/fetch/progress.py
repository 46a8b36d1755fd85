"""What every download shares: the list /health shows, the progress bar or log lines, errors."""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm

_LOGGER = logging.getLogger(__name__)

LOG_EVERY_SECONDS = 5.0
"""How often download progress is logged when stderr is not a terminal."""


@dataclass
class Download:
    """One file being fetched: what /health and the log show."""

    name: str
    done: int = 0
    total: int | None = None
    finished: bool = False


@dataclass
class Downloads:
    """Every download of this process, for /health (thread-safe: downloads run in threads)."""

    items: list[Download] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def start(self, name: str) -> Download:
        """Register a download."""
        item = Download(name)
        with self._lock:
            self.items.append(item)
        return item

    def active(self) -> list[dict[str, Any]]:
        """Return the unfinished downloads as /health shows them."""
        with self._lock:
            return [
                {"file": d.name, "bytes_done": d.done, "bytes_total": d.total}
                for d in self.items
                if not d.finished
            ]


def first_line(err: BaseException) -> str:
    """Return an error's first line: what a one-line start error quotes of it."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def progress_class(download: Download) -> type[tqdm]:
    """A tqdm class for a download: a bar on a terminal, else a log line every few s."""
    on_terminal = sys.stderr.isatty()

    class _Progress(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = not on_terminal
            super().__init__(*args, **kwargs)
            download.done = int(kwargs.get("initial") or 0)
            download.total = kwargs.get("total")
            self._logged = time.monotonic()
            if download.done:
                _LOGGER.info("Resuming %s at %s", download.name, _size(download.done))

        def update(self, n: float | None = 1) -> bool | None:
            download.done += int(n or 0)
            now = time.monotonic()
            if not on_terminal and now - self._logged >= LOG_EVERY_SECONDS:
                self._logged = now
                _LOGGER.info("Downloading %s: %s", download.name, _fraction(download))
            return super().update(n)

        def close(self) -> None:
            whole = bool(download.total) and download.done >= (download.total or 0)
            if whole and not download.finished:
                download.finished = True  # tqdm closes a bar more than once
                _LOGGER.info("Downloaded %s (%s)", download.name, _size(download.done))
            super().close()

    return _Progress


def _fraction(download: Download) -> str:
    if not download.total:
        return _size(download.done)
    share = 100 * download.done / download.total
    return f"{_size(download.done)} of {_size(download.total)} ({share:.0f}%)"


def _size(count: int) -> str:
    return f"{count / 2**20:.1f} MiB"
