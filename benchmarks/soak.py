"""Soak: both doors under concurrent clients, random hang-ups and random LLM faults; then
look for leaks and check every completed request's audio.

The server (engine, Wyoming door, HTTP door) runs in this process next to the LLM stand-in
from tests/, so its tasks, threads, sockets and memory can be counted. Clients pick a door at
random (Wyoming `synthesize`, Wyoming streamed text, HTTP pcm); some hang up after their first
audio; the stand-in fails a share of requests (HTTP 500, dropped or stalled streams, after a
random number of tokens). After a warm-up phase and again at the end, with every client gone,
it takes a snapshot: asyncio tasks, threads, socket descriptors, connections still open on
either door, open upstream requests, RSS. Every request that completed must carry exactly the
audio an offline decode of the frames the stand-in sent for it gives.

    .venv/bin/python -m benchmarks.soak [--seconds 600] [--warm-up 30] [--clients 4] [--seed 0]

tests/test_soak.py runs a short variant in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import platform
import random
import re
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from wyoming.audio import AudioChunk
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop

from tests.stand_ins.llm_server import Behaviour, OrpheusStandIn, RequestRecord
from tests.stand_ins.snac_model import write_snac_model
from wyoming_orpheus.audio.pcm import to_int16
from wyoming_orpheus.config import Settings, UpstreamSettings
from wyoming_orpheus.decode.memory import release_free_memory
from wyoming_orpheus.decode.snac import decode_batch, load_snac
from wyoming_orpheus.engine import Engine
from wyoming_orpheus.http_api import HttpServer, HttpState
from wyoming_orpheus.wyoming_server.handler import build_info
from wyoming_orpheus.wyoming_server.listener import WyomingServer

KINDS = ("wyoming", "wyoming-stream", "http")
FAULTS = ("http500", "drop", "stall")
WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
         "juliet", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo",
         "sierra", "tango")  # fmt: skip
RESULTS = Path(__file__).parent / "results"


@dataclass
class Outcome:
    """One client request and what came back."""

    key: str
    kind: str
    audio: bytearray = field(default_factory=bytearray)
    error: str | None = None
    hung_up: bool = False
    spooled: Path | None = None

    def spool(self, folder: Path) -> None:
        """Move the audio to disk: holding every request's audio would itself grow RSS
        (~25 MB over a 300 s run)."""
        self.spooled = folder / f"{self.key.replace(' ', '-')}.pcm"
        self.spooled.write_bytes(self.audio)
        self.audio = bytearray()

    def received(self) -> bytes:
        return self.spooled.read_bytes() if self.spooled else bytes(self.audio)

    @property
    def completed(self) -> bool:
        return self.error is None and not self.hung_up


@dataclass
class Snapshot:
    """What the process holds once every client is gone."""

    tasks: dict[str, int]
    threads: dict[str, int]
    """Threads by name, numbers dropped (asyncio_3 -> asyncio)."""
    socket_fds: int
    door_connections: int
    """Connections still open on the Wyoming or HTTP port (ESTABLISHED or CLOSE_WAIT)."""
    upstream_connections: int
    """Keep-alive connections to the LLM server (pooled, bounded)."""
    open_upstream_requests: int
    rss_mb: float
    python_objects: int
    """Objects the garbage collector tracks, after a collection: what the server still holds
    (requests, buffers, tensors, tasks). Unlike RSS it does not move with heap fragmentation."""

    @property
    def other_sockets(self) -> int:
        """Socket descriptors besides pooled upstream connections (two ends each, both here)."""
        return self.socket_fds - 2 * self.upstream_connections


@dataclass
class Report:
    seconds: float
    clients: int
    seed: int
    requests: dict[str, int] = field(default_factory=dict)
    faults_injected: dict[str, int] = field(default_factory=dict)
    completed: int = 0
    exact: int = 0
    mismatches: list[str] = field(default_factory=list)
    baseline: dict[str, Any] = field(default_factory=dict)
    end: dict[str, Any] = field(default_factory=dict)
    leaked_tasks: dict[str, int] = field(default_factory=dict)
    rss_growth: float = 0.0
    objects_per_request: float = 0.0
    """Growth of gc-tracked objects from the baseline to the end, per soak request."""


def key_for(number: int) -> str:
    """A unique phrase of words (digits would be normalized into other words)."""
    words = []
    while True:
        number, digit = divmod(number, len(WORDS))
        words.append(WORDS[digit])
        if number == 0:
            return " ".join(words)


# --- clients ---


async def wyoming_request(port: int, outcome: Outcome, text: str, hang_up: bool) -> None:
    client = AsyncTcpClient("127.0.0.1", port)
    await client.connect()
    try:
        if outcome.kind == "wyoming-stream":
            await client.write_event(SynthesizeStart().event())
            for start in range(0, len(text), 6):
                await client.write_event(SynthesizeChunk(text=text[start : start + 6]).event())
            await client.write_event(SynthesizeStop().event())
            done = "synthesize-stopped"
        else:
            await client.write_event(Synthesize(text=text).event())
            done = "audio-stop"
        while True:
            event = await client.read_event()
            if event is None:
                outcome.error = "connection closed"
                return
            if event.type == "audio-stop" and done == "audio-stop":
                await _trailing_error(client, outcome)
            if AudioChunk.is_type(event.type):
                outcome.audio += AudioChunk.from_event(event).audio
                if hang_up:
                    outcome.hung_up = True
                    return
            elif Error.is_type(event.type):
                outcome.error = Error.from_event(event).code or "error"
            if event.type == done:
                return
    finally:
        await client.disconnect()


async def _trailing_error(client: AsyncTcpClient, outcome: Outcome) -> None:
    """A failure after audio-start ends with audio-stop and then the error, written at once
    one after the other; a success sends nothing more."""
    try:
        async with asyncio.timeout(0.5):
            event = await client.read_event()
    except TimeoutError:
        return
    if event is not None and Error.is_type(event.type):
        outcome.error = Error.from_event(event).code or "error"


async def http_request(url: str, outcome: Outcome, text: str, hang_up: bool) -> None:
    body = {"input": text, "response_format": "pcm"}
    async with aiohttp.ClientSession() as session:
        try:
            async with session.post(url + "/v1/audio/speech", json=body) as response:
                if response.status != 200:
                    outcome.error = (await response.json())["error"]["code"]
                    return
                async for data in response.content.iter_any():
                    outcome.audio += data
                    if hang_up:
                        outcome.hung_up = True
                        return
        except aiohttp.ClientPayloadError:
            outcome.error = "cut"  # a failure after the audio started cuts the body


async def client_loop(
    rng: random.Random,
    doors: tuple[int, str],
    until: float,
    outcomes: list[Outcome],
    counter: list[int],
    spool: Path,
) -> None:
    port, url = doors
    while time.monotonic() < until:
        counter[0] += 1
        key = key_for(counter[0])
        outcome = Outcome(key, rng.choice(KINDS))
        outcomes.append(outcome)
        text = f"Soak {key} speaks."
        hang_up = rng.random() < 0.1
        try:
            async with asyncio.timeout(60):
                if outcome.kind == "http":
                    await http_request(url, outcome, text, hang_up)
                else:
                    await wyoming_request(port, outcome, text, hang_up)
        except (OSError, TimeoutError, aiohttp.ClientError) as err:
            outcome.error = f"client: {type(err).__name__}"
        outcome.spool(spool)


# --- what the process holds ---


def _tcp_states(port: int, local: bool) -> Counter[str]:
    """TCP states of connections with `port` as the local (or remote) port, IPv4 and IPv6."""
    states: Counter[str] = Counter()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address = fields[1] if local else fields[2]
            if int(address.rsplit(":", 1)[1], 16) == port:
                states[fields[3]] += 1
    return states


def _fd_target(fd: str) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except FileNotFoundError:
        return ""  # the descriptor listdir itself used


def snapshot(doors: tuple[int, int], llm: OrpheusStandIn) -> Snapshot:
    gc.collect()
    release_free_memory()
    current = asyncio.current_task()
    tasks = Counter(
        getattr(t.get_coro(), "__qualname__", repr(t.get_coro()))
        for t in asyncio.all_tasks()
        if t is not current
    )
    fds = [_fd_target(fd) for fd in os.listdir("/proc/self/fd")]
    established, close_wait = "01", "08"
    door = sum(
        states[established] + states[close_wait]
        for states in (_tcp_states(port, local=True) for port in doors)
    )
    upstream = _tcp_states(llm.port, local=False)[established]
    status = Path("/proc/self/status").read_text()
    rss_kb = int(next(x for x in status.splitlines() if x.startswith("VmRSS:")).split()[1])
    return Snapshot(
        tasks=dict(tasks),
        threads=dict(Counter(re.sub(r"[_-]?\d+$", "", t.name) for t in threading.enumerate())),
        socket_fds=sum(1 for target in fds if target.startswith("socket:")),
        door_connections=door,
        upstream_connections=upstream,
        open_upstream_requests=sum(1 for r in llm.requests if r.closed_at is None),
        rss_mb=rss_kb / 1024,
        python_objects=len(gc.get_objects()),
    )


async def quiesce(engine: Engine, llm: OrpheusStandIn) -> None:
    """Wait until no synthesis runs or waits and no upstream request is open."""
    stats = engine.synthesizer.stats
    async with asyncio.timeout(30):
        # Polled: the counters belong to the engine and the stand-in, which signal nothing.
        while stats.active or stats.queued or any(r.closed_at is None for r in llm.requests):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    await asyncio.sleep(1.5)  # the engine hands freed heap back after 1 s idle


# --- the audio check ---


def check_audio(
    outcomes: list[Outcome], records: list[RequestRecord], snac_dir: Path
) -> tuple[int, list[str]]:
    """Compare every completed request's audio with an offline decode of its frames."""
    model = load_snac(str(snac_dir), "cpu")
    by_key: dict[str, list[RequestRecord]] = {}
    for record in records:
        words = record.text.removeprefix("Soak ").removesuffix(" speaks.")
        by_key.setdefault(words, []).append(record)
    exact, mismatches = 0, []
    for outcome in outcomes:
        if not outcome.completed:
            continue
        finished = [r for r in by_key.get(outcome.key, []) if r.finished]
        if len(finished) != 1:
            mismatches.append(f"{outcome.key}: {len(finished)} finished upstream requests")
            continue
        expected = to_int16(decode_batch(model, np.array([finished[0].frames]), "cpu")[0])
        received = np.frombuffer(outcome.received(), dtype="<i2")
        if len(received) != len(expected):
            mismatches.append(f"{outcome.key}: {len(received)} samples, {len(expected)} expected")
        elif np.abs(received.astype(int) - expected.astype(int)).max() > 1:
            mismatches.append(f"{outcome.key}: samples differ")
        else:
            exact += 1
    return exact, mismatches


# --- the run ---


def settings_for(llm: OrpheusStandIn, snac_dir: Path, decode_workers: int | None) -> Settings:
    return Settings.of(
        uri="tcp://127.0.0.1:0",
        upstreams=(UpstreamSettings(llm.base_url),),
        snac_model=str(snac_dir),
        device="cpu",
        http_host="127.0.0.1",
        http_port=0,
        first_token_timeout=2,
        stall_timeout=0.5,
        upstream_cooldown=0,
        warm_up=False,  # the warm-up phase of the soak does it
        decode_workers=decode_workers,
    )


async def burst(clients: int, doors: tuple[int, str], counter: list[int]) -> None:
    """Every kind of request from every client at once: each pool reaches its working size
    (threads, connections, arenas) before the baseline is taken."""
    port, url = doors
    for kind in KINDS:
        requests = []
        for _ in range(clients):
            counter[0] += 1
            outcome = Outcome(key_for(counter[0]), kind)
            text = f"Soak {outcome.key} speaks."
            if kind == "http":
                requests.append(http_request(url, outcome, text, hang_up=False))
            else:
                requests.append(wyoming_request(port, outcome, text, hang_up=False))
        await asyncio.gather(*requests)


async def phase(
    seconds: float,
    clients: int,
    rng: random.Random,
    doors: tuple[int, str],
    counter: list[int],
    spool: Path,
) -> list[Outcome]:
    outcomes: list[Outcome] = []
    until = time.monotonic() + seconds
    loops = [
        client_loop(random.Random(rng.random()), doors, until, outcomes, counter, spool)
        for _ in range(clients)
    ]
    await asyncio.gather(*loops)
    return outcomes


async def soak(
    snac_dir: Path,
    seconds: float,
    warm_up: float,
    clients: int,
    seed: int,
    decode_workers: int | None = None,
) -> Report:
    """Run the soak and return its report (nothing is asserted here; see tests/test_soak.py)."""
    with tempfile.TemporaryDirectory(prefix="soak-audio-") as folder:
        spool = Path(folder)
        return await _soak(snac_dir, seconds, warm_up, clients, seed, decode_workers, spool)


async def _soak(
    snac_dir: Path,
    seconds: float,
    warm_up: float,
    clients: int,
    seed: int,
    decode_workers: int | None,
    spool: Path,
) -> Report:
    llm = OrpheusStandIn(
        Behaviour(seed=seed, random_faults=FAULTS, fault_rate=0.15, tokens_per_second=400)
    )
    await llm.start()
    engine = await Engine.create(settings_for(llm, snac_dir, decode_workers))
    wyoming = WyomingServer(
        engine.settings.wyoming.uri,
        build_info(engine.synthesizer.catalog, True),
        engine.synthesizer,
        engine.settings.limits,
    )
    http = HttpServer(HttpState(engine.settings, engine))
    report = Report(seconds=seconds, clients=clients, seed=seed)
    try:
        await wyoming.start()
        await http.start()
        doors = (wyoming.port, f"http://127.0.0.1:{http.port}")
        rng, counter = random.Random(seed), [0]
        await burst(clients, doors, counter)
        await phase(warm_up, clients, rng, doors, counter, spool)
        await quiesce(engine, llm)
        baseline = snapshot((wyoming.port, http.port), llm)
        warm_requests = len(llm.requests)
        outcomes = await phase(seconds, clients, rng, doors, counter, spool)
        await quiesce(engine, llm)
        end = snapshot((wyoming.port, http.port), llm)
    finally:
        await http.stop()
        await wyoming.shutdown(grace=0)
        await engine.close()
        await llm.stop()
    records = llm.requests[warm_requests:]
    report.requests = dict(Counter(f"{o.kind} {_label(o)}" for o in outcomes).most_common())
    report.faults_injected = dict(Counter(r.fault for r in records if r.fault))
    report.completed = sum(o.completed for o in outcomes)
    report.exact, report.mismatches = check_audio(outcomes, llm.requests, snac_dir)
    report.baseline, report.end = _as_dict(baseline), _as_dict(end)
    report.leaked_tasks = {
        name: n - baseline.tasks.get(name, 0)
        for name, n in end.tasks.items()
        if n > baseline.tasks.get(name, 0) and not name.startswith("RequestHandler.")
    }
    report.rss_growth = (end.rss_mb - baseline.rss_mb) / baseline.rss_mb
    # The soak's own bookkeeping (each request's outcome, the stand-in's record of it) stays
    # alive until the audio check: ~10 objects per request; a server leak adds its own.
    report.objects_per_request = (end.python_objects - baseline.python_objects) / max(
        1, len(outcomes)
    )
    return report


def _label(outcome: Outcome) -> str:
    if outcome.hung_up:
        return "hung up"
    return "completed" if outcome.error is None else f"error {outcome.error}"


def _as_dict(shot: Snapshot) -> dict[str, Any]:
    return {**asdict(shot), "other_sockets": shot.other_sockets}


def print_report(report: Report) -> None:
    print(f"Soak: {report.seconds:g} s, {report.clients} clients, seed {report.seed}")
    print("| requests | count |\n|---|---|")
    for label, count in report.requests.items():
        print(f"| {label} | {count} |")
    print(f"\nFaults injected by the LLM stand-in: {report.faults_injected}")
    print(f"Completed {report.completed}, audio exact {report.exact}, "
          f"mismatches {len(report.mismatches)} {report.mismatches[:5]}")  # fmt: skip
    print("\n| after | tasks | threads | sockets (besides pooled upstream) | door connections "
          "| upstream keep-alive | open upstream requests | Python objects | RSS MB |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for name, shot in (("warm-up", report.baseline), ("soak", report.end)):
        print(f"| {name} | {sum(shot['tasks'].values())} | {sum(shot['threads'].values())} | "
              f"{shot['other_sockets']} | {shot['door_connections']} | "
              f"{shot['upstream_connections']} | {shot['open_upstream_requests']} | "
              f"{shot['python_objects']} | {shot['rss_mb']:.0f} |")  # fmt: skip
    print(f"\nLeaked tasks: {report.leaked_tasks or 'none'}; "
          f"RSS growth after warm-up: {report.rss_growth:+.1%}; "
          f"Python objects per request: {report.objects_per_request:+.1f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--warm-up", type=float, default=30)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--decode-workers", type=int, default=None, help="decode worker threads (default: tier's)"
    )
    parser.add_argument("--json", type=Path, default=RESULTS / "soak.json", help="where to write")
    parser.add_argument(
        "--narrow-snac",
        action="store_true",
        help="the tests' narrow SNAC stand-in (same frames and reach, a fraction of the cost): "
        "more requests per second, for a short run about leaks rather than speed",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the injected faults log warnings by design
    with tempfile.TemporaryDirectory() as tmp:
        snac_dir = write_snac_model(Path(tmp), seed=0, noise=False, narrow=args.narrow_snac)
        report = asyncio.run(
            soak(snac_dir, args.seconds, args.warm_up, args.clients, args.seed, args.decode_workers)
        )
    print_report(report)
    out: Path = args.json
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    out.write_text(json.dumps({**asdict(report), "host": machine}, indent=2) + "\n")
    print(f"\nWrote {out}")


if __name__ == "__main__":
    main()
