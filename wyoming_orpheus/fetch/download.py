"""A plain resumable HTTP download: Range requests after a cut, the size checked, progress shown.

NOTE: issue 30: llama.cpp's release was fetched with huggingface_hub's internal `http_get`, so
`HF_HUB_OFFLINE=1` (meant for the hub) refused GitHub too, with a message about the hub, and
one huggingface_hub upgrade could break it. `requests` (well kept, sync like the thread this
runs in, honours HTTPS_PROXY and REQUESTS_CA_BUNDLE, certifi's CAs) carries it now; the hub's
own files use it too for the blob an earlier start left half done (hub.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import BinaryIO

import requests

from .progress import Download, first_line, progress_class

_LOGGER = logging.getLogger(__name__)

BLOCK = 1 << 20
"""Bytes read and written at a time (progress is counted per block)."""
CUTS_RESUMED = 5
"""Cuts resumed within one download before it gives up (a start later resumes again)."""
TIMEOUT = (15.0, 60.0)
"""Seconds to connect, and to wait for the next bytes, before a try counts as cut."""


_CUT = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
"""What a link cut mid-answer raises: resumed with a Range request."""


class DownloadError(Exception):
    """The download cannot go on now; what is in the sink stays, to be resumed later."""


class TooLong(DownloadError):
    """The server sent more than the size it was said to have: no resume can fix that."""


def resume_into(
    url: str,
    sink: BinaryIO,
    download: Download,
    *,
    size: int | None,
    headers: dict[str, str] | None = None,
) -> None:
    """Append url's bytes to sink from its current length, resuming after cuts.

    `size`: the whole file's bytes when known; more is refused (TooLong), fewer is a cut.
    """
    bar = progress_class(download)(
        total=size, initial=sink.tell(), unit="B", unit_scale=True, desc=download.name
    )
    cuts = 0
    try:
        with requests.Session() as session:
            while not _whole(sink, size):
                try:
                    _one_try(session, url, sink, bar.update, size, headers or {})
                except _CUT as err:
                    cuts += 1
                    if cuts > CUTS_RESUMED:
                        raise DownloadError(f"{first_line(err)} ({cuts - 1} resumes)") from None
                    _LOGGER.info("%s: the link was cut; resuming at byte %d", url, sink.tell())
                    time.sleep(min(2.0**cuts / 4, 5.0))
                    continue
                if size is None:
                    break  # the server said nothing of the size: its end is the end
    finally:
        bar.close()


def _whole(sink: BinaryIO, size: int | None) -> bool:
    return size is not None and sink.tell() >= size


def _one_try(
    session: requests.Session,
    url: str,
    sink: BinaryIO,
    counted: Callable[[int], object],
    size: int | None,
    headers: dict[str, str],
) -> None:
    """One GET from the sink's length on; raises ConnectionError when it ends short."""
    start = sink.tell()
    asked = {**headers, **({"Range": f"bytes={start}-"} if start else {})}
    with session.get(url, headers=asked, stream=True, timeout=TIMEOUT) as answer:
        if start and answer.status_code == 200:
            sink.seek(0)  # the server ignores Range: it sends the whole file again
            sink.truncate()
        elif answer.status_code not in (200, 206):
            said = answer.reason or ""
            raise DownloadError(f"{url} answered {answer.status_code} {said}".rstrip())
        for block in answer.iter_content(BLOCK):
            sink.write(block)
            counted(len(block))
            if size is not None and sink.tell() > size:
                raise TooLong(f"the server sent more than the {size} bytes it was said to have")
    if size is not None and sink.tell() < size:
        raise requests.ConnectionError(f"the answer ended at byte {sink.tell()} of {size}")
