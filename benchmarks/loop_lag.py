"""How long hostile text holds the event loop (issue 31): lag and describe while it is served.

Runs an engine with both doors over the LLM stand-in (max_text_chars at its largest, 100,000),
sends each hostile text of tests/test_loop_lag.py through the Wyoming door (and the plain ones
through HTTP too), while a Home Assistant-like client asks `describe` every 0.1 s. Per text:
the largest event-loop lag (a 10 ms sleeper's lateness, sampled here so that the code before
loop_lag.py can be measured the same way) and the slowest describe.

    .venv/bin/python -m benchmarks.loop_lag [--repeats 3] [--json loop_lag.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import tempfile
from pathlib import Path
from typing import Any

from tests.stand_ins.llm_server import Behaviour, OrpheusStandIn
from tests.stand_ins.snac_model import write_snac_model
from tests.test_loop_lag import HOSTILE, LONG, describe_times, http_once, wyoming_once
from wyoming_orpheus.config import Settings, UpstreamSettings
from wyoming_orpheus.engine import Engine
from wyoming_orpheus.http_api import HttpServer, HttpState
from wyoming_orpheus.wyoming_server.handler import build_info
from wyoming_orpheus.wyoming_server.listener import WyomingServer

SAMPLE = 0.01


async def largest_lag(stop: asyncio.Event) -> float:
    """Sleep SAMPLE again and again until stopped; return the most it overslept."""
    loop = asyncio.get_running_loop()
    largest = 0.0
    while not stop.is_set():
        started = loop.time()
        await asyncio.sleep(SAMPLE)
        largest = max(largest, loop.time() - started - SAMPLE)
    return largest


NAMES = ("entity bomb", "SSML 5000 deep", "SSML over the limit", "numbers", "no space",
         "sentence every 3", "short sentences", "unclosed <")  # fmt: skip


async def measure(snac_dir: Path, repeats: int) -> list[dict[str, Any]]:
    """Serve every hostile text `repeats` times; return each one's median figures."""
    llm = OrpheusStandIn(Behaviour(tokens_per_second=200))
    await llm.start()
    settings = Settings.of(
        upstreams=(UpstreamSettings(llm.base_url),),
        snac_model=str(snac_dir),
        device="cpu",
        warm_up=False,
        uri="tcp://127.0.0.1:0",
        http_host="127.0.0.1",
        http_port=0,
        max_text_chars=LONG,
    )
    engine = await Engine.create(settings)
    server = WyomingServer(
        settings.wyoming.uri,
        build_info(engine.synthesizer.catalog, True),
        engine.synthesizer,
        engine.settings.limits,
    )
    await server.start()
    http = HttpServer(HttpState(settings, engine))
    await http.start()
    url = f"http://127.0.0.1:{http.port}"
    rows = []
    try:
        for name, (text, ssml, _expected) in zip(NAMES, HOSTILE, strict=True):
            lags, slowest = [], []
            for _ in range(repeats):
                stop = asyncio.Event()
                describing = asyncio.create_task(describe_times(server.port, stop))
                sampling = asyncio.create_task(largest_lag(stop))
                await wyoming_once(server.port, text, ssml)
                if not ssml:
                    await http_once(url, text)
                stop.set()
                slowest.append(max(await describing))
                lags.append(await sampling)
            rows.append(
                {
                    "text": name,
                    "characters": len(text),
                    "lag_ms": round(statistics.median(lags) * 1000, 1),
                    "describe_ms": round(statistics.median(slowest) * 1000, 1),
                }
            )
    finally:
        await server.shutdown(grace=0)
        await http.stop()
        await engine.close()
        await llm.stop()
    return rows


def main() -> None:
    """Run, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default="loop_lag.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        snac_dir = write_snac_model(Path(folder), seed=0, noise=False, narrow=True)
        rows = asyncio.run(measure(snac_dir, args.repeats))
    print(f"{'text':<22}{'chars':>9}{'largest lag ms':>16}{'slowest describe ms':>21}")
    for row in rows:
        print(f"{row['text']:<22}{row['characters']:>9}{row['lag_ms']:>16}{row['describe_ms']:>21}")
    Path(args.json).write_text(
        json.dumps({"machine": platform.processor() or platform.machine(), "rows": rows}, indent=2)
    )


if __name__ == "__main__":
    main()
