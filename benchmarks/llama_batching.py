"""How the real llama-server batches, measured as the pool measures it (issue 29).

llama.cpp's llama-server (script/llama-server) serves the suite's tiny Orpheus GGUF, made wide
enough (--width) that a token costs what it costs in a small model, with 4 slots. For each
number of requests at once (1 to --slots), --rounds rounds of that many sentence requests go
through the product's own pool; the pool records each request's rate at every load it ran
at (`Upstream.rates_at`, what the sentence plans read). Reported per load: the per-request
rate (tokens/s and real-time factor), and the gain (all requests together against one
alone) beside the stand-in's published gains (tests/stand_ins/batching.py).

    .venv/bin/python -m benchmarks.llama_batching [--width 1024] [--slots 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
from contextlib import aclosing
from pathlib import Path
from typing import Any

from tests.stand_ins.batching import PUBLISHED_GAINS
from tests.stand_ins.llama_server import LlamaServer
from tests.stand_ins.tiny_orpheus_gguf import write_tiny_orpheus
from wyoming_orpheus.config import Settings, UpstreamSettings
from wyoming_orpheus.format import REAL_TIME_TOKENS_PER_SECOND
from wyoming_orpheus.upstream.pool import UpstreamPool

SENTENCE = "Sentence {n} of the answer is about this long."


async def _drain(pool: UpstreamPool, text: str) -> None:
    async with aclosing(pool.stream("tara", text)) as pieces:
        async for _ in pieces:
            pass


async def measure(width: int, slots: int, rounds: int) -> dict[int, float]:
    """Run the rounds; return the per-request real-time factor the pool recorded per load."""
    with tempfile.TemporaryDirectory() as folder:
        model = write_tiny_orpheus(Path(folder) / "wide.gguf", end_every=None, width=width)
        server = LlamaServer(model, Path(folder) / "llama.log", parallel=slots)
        await server.start()
        settings = Settings.of(upstreams=(UpstreamSettings(server.url, slots=slots),))
        pool = UpstreamPool(settings.llm, settings.requests, settings.sampling)
        await pool.start()
        try:
            for load in range(1, slots + 1):
                for n in range(rounds):
                    texts = [SENTENCE.format(n=n * slots + i) for i in range(load)]
                    await asyncio.gather(*(_drain(pool, text) for text in texts))
            return pool.upstreams[0].rates_at()
        finally:
            await pool.close()
            await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", default="benchmarks/results/llama_batching.json")
    args = parser.parse_args()
    rates = asyncio.run(measure(args.width, args.slots, args.rounds))
    rows: list[dict[str, Any]] = []
    print("| requests at once | per request, tokens/s | real-time factor | gain | published |")
    print("|---|---|---|---|---|")
    for load in sorted(rates):
        gain = rates[load] * load / rates[1]
        published = PUBLISHED_GAINS[min(load, len(PUBLISHED_GAINS)) - 1]
        tokens = rates[load] * REAL_TIME_TOKENS_PER_SECOND
        print(f"| {load} | {tokens:.0f} | {rates[load]:.2f}x | {gain:.2f}x | {published:.1f}x |")
        rows.append({"load": load, "rtf": rates[load], "tokens_per_second": tokens, "gain": gain})
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "width": args.width,
        "slots": args.slots,
        "rounds": args.rounds,
        "rows": rows,
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
