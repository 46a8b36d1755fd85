"""What a household hears from an LLM server slower than real time that batches (issue 29).

The real server (`python -m wyoming_orpheus`) against the Orpheus LLM stand-in from tests/
streaming like a batching server (one shared decode loop, the published gains 1, 1.6, 2.1,
2.5 at 1-4 requests, 4 slots; tests/stand_ins/batching.py) at --rates tokens/s for one
request alone. A four-sentence answer of ~--seconds of speech, one listener and two at once,
through each door: Wyoming `synthesize`, Wyoming streamed text (timed from its first
sentence), HTTP `pcm`. Side by side in one run: this design (sentence requests, planned for
the batch) and today's (`--no-playout-sentences`: one request per <= 600 characters).

Reported per row: when the first bytes came (keep-alive silence counts), when the first
speech bytes came, when a player that starts 0.3 s after its first bytes and never
re-buffers plays the first speech (after the silence before it), the longest quiet on the
line, the gaps that player hears in speech, and the least wait over sentence schedules on
that server (brute force; with two listeners, over schedules that treat them alike) beside
the least wait of one request per answer (one listener alone).

    .venv/bin/python -m benchmarks.household [--rates 45 60 70 100] [--listeners 1 2]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.e2e import Server, http_speech, wyoming_stream, wyoming_synthesize
from benchmarks.listener import Listen
from tests.stand_ins.batching import Batching
from tests.stand_ins.llm_server import OrpheusStandIn
from tests.stand_ins.snac_model import write_snac_model
from wyoming_orpheus.format import REAL_TIME_TOKENS_PER_SECOND, SAMPLE_RATE
from wyoming_orpheus.playout.rule import least_wait
from wyoming_orpheus.text.segments import split_sentence_requests

ANSWER = (
    "{tag} here, and the living room is at twenty one degrees with the humidity just fine. "
    "The washer finished a while ago, and the dryer will be done in about twenty minutes. "
    "Tomorrow looks sunny in the morning with a chance of rain late in the afternoon. "
    "Remember that the recycling goes out tonight, before you go to bed."
)
DESIGNS = {
    "sentence requests": ["--playout-sentences"],
    "today: one request per 600 chars": ["--no-playout-sentences"],
}
PREBUFFER = 0.3


def doors(llm: OrpheusStandIn, server: Server) -> dict[str, Any]:
    url = f"http://127.0.0.1:{server.http_port}"
    return {
        "wyoming synthesize": lambda tag: wyoming_synthesize(llm, server.port, tag, ANSWER),
        "wyoming streamed text": lambda tag: wyoming_stream(llm, server.port, tag, ANSWER),
        "http pcm": lambda tag: http_speech(llm, url, tag, ANSWER),
    }


def quiet(listen: Listen) -> float:
    """Return the longest time with no bytes on the line, from the request to the last audio."""
    times = sorted([listen.asked] + [t for t, _ in listen.silence + listen.chunks])
    return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


def row(listens: list[Listen]) -> dict[str, float]:
    spoken = [x for x in listens if x.chunks]
    return {
        "first_bytes_s": max(x.first_bytes for x in spoken),
        "speech_bytes_s": max(x.first_audio for x in spoken),
        "first_speech_s": max(x.heard_speech(PREBUFFER) for x in spoken),
        "longest_quiet_s": max(quiet(x) for x in spoken),
        "gaps_s": max(x.dry_seconds(PREBUFFER) for x in spoken),
        "silence_s": statistics.mean(sum(n for _, n in x.silence) for x in spoken) / SAMPLE_RATE,
        "speech_s": statistics.mean(x.audio_seconds for x in spoken),
    }


async def answer(client: Any, listeners: int, run: int) -> list[Listen]:
    tags = [
        f"Room {'abcdefgh'[i]} {'abcdefghijklmnopqrstuvwxyz'[run % 26]}" for i in range(listeners)
    ]
    return list(await asyncio.gather(*(client(tag) for tag in tags)))


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    snac = write_snac_model(Path(tempfile.mkdtemp()) / "snac", seed=0, noise=False)
    llm = OrpheusStandIn()
    await llm.start()
    text = ANSWER.format(tag="Room a a")
    llm.behaviour.frames_per_char = args.seconds * SAMPLE_RATE / 2048 / len(text)
    sentences = split_sentence_requests(text, 600)
    lengths = [args.seconds * len(s) / len(text) for s in sentences]
    rows: list[dict[str, Any]] = []
    run = 0
    try:
        for rate in args.rates:
            batching = Batching(rate)
            llm.behaviour.batching = batching
            factor = rate / REAL_TIME_TOKENS_PER_SECOND
            least = {n: batching.least_shared_wait(lengths, n) for n in args.listeners}
            for design, flags in DESIGNS.items():
                server = Server(Path.cwd(), llm.base_url, snac, True, [*flags, *args.server_arg])
                await server.start()
                try:
                    clients = doors(llm, server)
                    for _ in range(args.warm_up):  # a household's server: its rate is known
                        run += 1
                        await answer(clients["wyoming synthesize"], 1, run)
                    for door, client in clients.items():
                        for listeners in args.listeners:
                            run += 1
                            heard = row(await answer(client, listeners, run))
                            rows.append(
                                {"rate": rate, "design": design, "door": door,
                                 "listeners": listeners, **heard,
                                 "least_sentences_s": least[listeners],
                                 "least_one_request_s": least_wait(args.seconds, factor)}
                            )  # fmt: skip
                            print_row(rows[-1])
                finally:
                    await server.stop()
    finally:
        await llm.stop()
    return {
        "command": "python -m benchmarks.household " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "answer_seconds": args.seconds,
        "sentences": len(sentences),
        "gains": list(Batching(1).gains),
        "slots": Batching(1).slots,
        "rows": rows,
    }


COLUMNS = (
    ("rate", "tok/s", "{:g}"),
    ("design", "design", "{}"),
    ("door", "door", "{}"),
    ("listeners", "N", "{}"),
    ("first_bytes_s", "first bytes s", "{:.2f}"),
    ("speech_bytes_s", "speech bytes s", "{:.2f}"),
    ("first_speech_s", "speech heard s", "{:.2f}"),
    ("longest_quiet_s", "longest quiet s", "{:.2f}"),
    ("gaps_s", "gaps s", "{:.2f}"),
    ("least_sentences_s", "least wait (sentences) s", "{:.2f}"),
    ("least_one_request_s", "least wait (one request) s", "{:.2f}"),
)


def print_row(values: dict[str, Any]) -> None:
    cells = [fmt.format(values[key]) for key, _, fmt in COLUMNS]
    print("| " + " | ".join(cells) + " |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[45.0, 60.0, 70.0, 100.0])
    parser.add_argument("--listeners", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seconds", type=float, default=16.0, help="speech per answer")
    parser.add_argument("--warm-up", type=int, default=2, help="answers before measuring")
    parser.add_argument("--server-arg", action="append", default=[], metavar="ARG")
    parser.add_argument("--json", default="benchmarks/results/household.json")
    args = parser.parse_args()
    print("| " + " | ".join(title for _, title, _ in COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    report = asyncio.run(measure(args))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
