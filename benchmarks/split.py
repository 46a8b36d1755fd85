"""Where the server's CPU goes: SNAC decoding versus everything else around it.

Issue #10's target: the server's work besides decoding (LLM stream parsing, framing, Wyoming
events, HTTP, encoding, text) under 2% of one core per real-time stream. This runs the real
server (`python -m wyoming_orpheus`, as benchmarks.e2e does) against the LLM stand-in, drives
N streams of each client kind at a token rate, and samples the server's Python threads with
py-spy for the whole run, sampling the thread that holds the GIL (Python work; the event loop
waiting in epoll is left out). Each sample is charged to the part named by the innermost frame
on its stack that belongs to a known part; the decode's own CPU (torch runs without the GIL)
is the process's CPU minus everything else.

    .venv/bin/python -m benchmarks.split [--streams 2] [--rate 100] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import torch

from benchmarks.e2e import Server, clients_for, scenario
from tests.stand_ins.llm_server import OrpheusStandIn
from tests.stand_ins.snac_model import write_snac_model

# (part, path fragments of the frames that belong to it); the first part whose fragment
# appears in a frame's file wins, innermost frame first.
PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("decode", ("wyoming_orpheus/decode/", "/torch/", "/snac/")),
    ("encoding (PyAV, WAV)", ("audio/encoders.py", "/av/")),
    ("LLM stream (HTTP client, SSE/NDJSON parsing)", ("wyoming_orpheus/upstream/",)),
    ("Wyoming events", ("wyoming_orpheus/wyoming_server/", "/wyoming/")),
    ("HTTP (aiohttp: the HTTP door and the LLM client)",
     ("/http_api/", "/aiohttp/", "/multidict/", "/yarl/")),
    ("text (normalize, segments)", ("/text/",)),
    ("synthesis, playout, level, tempo",
     ("/synthesis/", "/playout/", "audio/pcm.py", "audio/level.py", "engine.py")),
    ("metrics", ("metrics.py", "/prometheus_client/")),
    ("event loop, sockets", ("/asyncio/", "selectors.py", "socket.py", "sockets.py")),
)  # fmt: skip
IDLE = "idle (the event loop waiting)"
_FRAME_FILE = re.compile(r"\(([^()]*?\.py)(?::\d+)?\)")


def part_of(stack: str) -> str:
    """Name the part a sampled stack belongs to (frames outermost first, `;`-separated)."""
    frames = stack.split(";")
    if "select (selectors.py" in frames[-1]:
        return IDLE
    for frame in reversed(frames):
        match = _FRAME_FILE.search(frame)
        if match is None:
            continue
        for part, fragments in PARTS:
            # py-spy names library files relative to site-packages ("aiohttp/streams.py").
            path = "/" + match[1]
            if any(fragment in path for fragment in fragments):
                return part
    return "other"


def read_samples(path: Path) -> Counter[str]:
    """Count py-spy's raw (collapsed) samples per part."""
    counts: Counter[str] = Counter()
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            counts[part_of(stack)] += int(count)
    return counts


async def profile(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(os.cpu_count() or 1)
    snac = write_snac_model(Path(tempfile.mkdtemp()) / "snac", seed=0, noise=False)
    llm = OrpheusStandIn()
    await llm.start()
    server = Server(Path.cwd(), llm.base_url, snac, True, args.server_arg)
    out = Path(args.json).with_suffix(".samples.txt")
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        await server.start()
        assert server.process is not None
        spy = await asyncio.create_subprocess_exec(
            _py_spy(),
            "record", "--pid", str(server.process.pid), "--rate", str(args.sample_rate),
            "--format", "raw", "--output", str(out), "--nonblocking", "--gil",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        await asyncio.sleep(1.0)  # py-spy attaches
        cpu_before = server.cpu_seconds()
        audio_seconds = 0.0
        clients = clients_for(llm, server, args, http=True)
        for run, (kind, client) in enumerate(clients.items()):
            result = await scenario(
                llm, server, client, args.streams, args.rate, args.seconds, 0.3, run
            )
            audio_seconds += result["audio_seconds_per_stream"] * args.streams
            rows.append({"client": kind, "underruns": result["underruns_total"]})
        cpu = server.cpu_seconds() - cpu_before
        spy.send_signal(signal.SIGINT)
        await asyncio.wait_for(spy.wait(), 60)
    finally:
        await server.stop()
        await llm.stop()
    samples = read_samples(out)
    samples.pop(IDLE, None)
    sampled_s = {part: count / args.sample_rate for part, count in samples.items()}
    outside_decode = sum(s for part, s in sampled_s.items() if part != "decode")
    parts = {part: s for part, s in sampled_s.items() if part != "decode"}
    parts["decode (process CPU minus the rest)"] = cpu - outside_decode
    return {
        "benchmark": "split",
        "command": "python -m benchmarks.split " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "streams": args.streams,
        "rate": args.rate,
        "audio_seconds": audio_seconds,
        "server_cpu_s": cpu,
        "clients": rows,
        # CPU seconds per audio second per stream = share of one core per real-time stream.
        "share_of_a_core_per_stream": {
            part: seconds / audio_seconds for part, seconds in sorted(parts.items())
        },
        "besides_decoding": outside_decode / audio_seconds,
    }


def _py_spy() -> str:
    return str(Path(sys.executable).with_name("py-spy"))


def print_table(report: dict[str, Any]) -> None:
    print(f"| part | share of one core per real-time stream ({report['streams']} streams, "
          f"{report['rate']:g} tok/s) |")  # fmt: skip
    print("|---|---|")
    for part, share in report["share_of_a_core_per_stream"].items():
        print(f"| {part} | {share * 100:.2f}% |")
    print(f"| **everything besides decoding** | **{report['besides_decoding'] * 100:.2f}%** |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=2)
    parser.add_argument("--rate", type=float, default=100.0, help="tokens/s per stream")
    parser.add_argument("--seconds", type=float, default=10.0, help="audio per request")
    parser.add_argument("--sample-rate", type=int, default=200, help="py-spy samples/s")
    parser.add_argument("--modes", nargs="+", default=["synthesize", "stream"])
    parser.add_argument("--server-arg", action="append", default=[], metavar="ARG")
    parser.add_argument("--json", default="benchmarks/results/split.json")
    args = parser.parse_args()
    report = asyncio.run(profile(args))
    print_table(report)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
