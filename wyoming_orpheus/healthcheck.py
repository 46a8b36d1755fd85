"""Health check: a real describe/info round trip; exit 0 when the server answers in time."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from urllib.parse import urlparse

from wyoming.client import AsyncTcpClient
from wyoming.info import Describe, Info


async def check(host: str, port: int, seconds: float) -> bool:
    """Return True when the server answers describe with a TTS program within `seconds`."""
    client = AsyncTcpClient(host, port)
    try:
        async with asyncio.timeout(seconds):
            await client.connect()
            await client.write_event(Describe().event())
            while (event := await client.read_event()) is not None:
                if Info.is_type(event.type):
                    return bool(Info.from_event(event).tts)
    except (OSError, TimeoutError):
        return False
    finally:
        await client.disconnect()
    return False


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and run the check."""
    parser = argparse.ArgumentParser(prog="python -m wyoming_orpheus.healthcheck")
    parser.add_argument("--uri", default="tcp://127.0.0.1:10200", help="server to ask")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
    args = parser.parse_args(argv)
    uri = urlparse(args.uri)
    if uri.scheme != "tcp" or not uri.hostname or uri.port is None:
        parser.error("--uri must look like tcp://HOST:PORT")
    return 0 if asyncio.run(check(uri.hostname, uri.port, args.timeout)) else 1


if __name__ == "__main__":
    sys.exit(main())
