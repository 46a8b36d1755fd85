"""Reading Wyoming events with every limit enforced before anything is buffered.

The wyoming package's reader trusts the client: a `data_length` of 10**12 makes it buffer
whatever arrives, a non-number length or a header that is not a JSON object raises an
exception it does not catch. This reader checks each length against a limit before reading
the bytes, and turns every malformed frame into a ProtocolError with a message a client
developer can act on. After a malformed frame the framing is lost, so the caller answers
with an error event and closes the connection.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from wyoming.event import Event

MAX_HEADER_BYTES = 64 * 1024
"""Longest header line (the StreamReader's limit; the server passes it when it listens)."""
MAX_PAYLOAD_BYTES = 1024 * 1024
"""A TTS server receives no audio; a payload over this is refused unread."""


class ProtocolError(ValueError):
    """The bytes are not a Wyoming event; the message says what is wrong."""


async def read_event(reader: asyncio.StreamReader, max_data_bytes: int) -> Event | None:
    """Read one event; None at the end of the stream; ProtocolError for a malformed frame."""
    header = await _header(reader)
    if header is None:
        return None
    data = header.get("data") or {}
    if not isinstance(data, dict):
        raise ProtocolError("'data' must be a JSON object")
    data_length = _length(header, "data_length", max_data_bytes)
    if data_length:
        extra = _json_object(await _exactly(reader, data_length), "the data block")
        data = {**data, **extra}
    payload_length = _length(header, "payload_length", MAX_PAYLOAD_BYTES)
    payload = await _exactly(reader, payload_length) if payload_length else None
    event_type = header.get("type")
    if not isinstance(event_type, str) or not event_type:
        raise ProtocolError("the header needs a 'type' string")
    return Event(type=event_type, data=data, payload=payload)


async def _header(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    try:
        line = await reader.readline()
    except ValueError:  # the StreamReader's limit: the line never ended within it
        raise ProtocolError(f"header line longer than {MAX_HEADER_BYTES} bytes") from None
    if not line:
        return None
    if not line.endswith(b"\n"):
        raise ProtocolError("the connection ended inside a header line")
    return _json_object(line, "the header line")


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ProtocolError(f"{what} is not valid UTF-8") from None
    except ValueError as err:
        raise ProtocolError(f"{what} is not valid JSON: {err}") from None
    if not isinstance(value, dict):
        raise ProtocolError(f"{what} must be a JSON object")
    return value


def _length(header: dict[str, Any], key: str, limit: int) -> int:
    value = header.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProtocolError(f"'{key}' must be a non-negative integer")
    if value > limit:
        raise ProtocolError(f"'{key}' is {value} bytes; this server takes at most {limit}")
    return value


async def _exactly(reader: asyncio.StreamReader, count: int) -> bytes:
    try:
        return await reader.readexactly(count)
    except asyncio.IncompleteReadError:
        raise ProtocolError("the connection ended inside an event") from None
