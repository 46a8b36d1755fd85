"""End-to-end benchmark: the real server, real clients, the LLM simulated at a token rate.

Starts `python -m wyoming_orpheus` against the Orpheus LLM stand-in from tests/ (streaming at
--rates tokens/s per stream), drives N concurrent clients through wyoming's own client
(`synthesize`, or streamed text: a chunk every 30 ms) and over HTTP (`pcm` through aiohttp),
and reports what a listener feels: time to first audio, underruns of a player that starts
--prebuffer s after its first chunk, real-time factor, gaps; and the server's CPU and memory.
Side by side, in the same run: a model of the earlier servers' 28-token scheme on the same
frames at the same rate, and optionally a server from another checkout (--baseline DIR).

    .venv/bin/python -m benchmarks.e2e [--streams 1 2 4] [--rates 100 82] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import torch
from wyoming.audio import AudioChunk, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop

from benchmarks.listener import SAMPLE_RATE, Listen, summarize
from tests.stand_ins.llm_server import OrpheusStandIn, RequestRecord, make_frames
from tests.stand_ins.snac_model import write_snac_model
from wyoming_orpheus.decode.snac import decode_batch, load_snac
from wyoming_orpheus.format import TOKENS_PER_FRAME
from wyoming_orpheus.playout.rule import least_wait

FRAMES_PER_SECOND = SAMPLE_RATE / 2048
TEXT = (
    "{tag} here. The living room is at twenty one degrees and the humidity is fine. "
    "The washer finished a while ago, and the dryer will be done in about twenty minutes. "
    "Have a nice evening."
)
STREAM_CHUNK_CHARS = 6
STREAM_CHUNK_EVERY = 0.03
TICKS = os.sysconf("SC_CLK_TCK")

Client = Callable[[int, str], Awaitable[Listen]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """The real server as a subprocess; CPU and memory read from /proc."""

    def __init__(self, source: Path, llm_url: str, snac: Path, http: bool, extra: list[str]):
        self.port, self.http_port = free_port(), free_port()
        self._args = [
            sys.executable,
            "-m",
            "wyoming_orpheus",
            "--uri",
            f"tcp://127.0.0.1:{self.port}",
            "--llm-url",
            llm_url,
            "--snac-model",
            str(snac),
            "--device",
            "cpu",
            *extra,
        ]
        self._args += (
            ["--http-host", "127.0.0.1", "--http-port", str(self.http_port)]
            if http
            else ["--no-http"]
        )
        self._env = {**os.environ, "PYTHONPATH": str(source)}
        self._source = source
        self.process: asyncio.subprocess.Process | None = None
        self.ready_s = 0.0

    async def start(self) -> None:
        started = time.monotonic()
        self.process = await asyncio.create_subprocess_exec(
            *self._args, env=self._env, cwd=self._source, stderr=asyncio.subprocess.DEVNULL
        )
        async with asyncio.timeout(120):
            while True:
                try:
                    client = AsyncTcpClient("127.0.0.1", self.port)
                    await client.connect()
                    await client.write_event(Describe().event())
                    await client.read_event()
                    await client.disconnect()
                    break
                except OSError:
                    await asyncio.sleep(0.05)
        self.ready_s = time.monotonic() - started

    def _proc(self, name: str) -> str:
        assert self.process is not None
        return Path(f"/proc/{self.process.pid}/{name}").read_text()

    def cpu_seconds(self) -> float:
        fields = self._proc("stat").rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime

    def memory_mb(self, key: str) -> float:
        line = next(x for x in self._proc("status").splitlines() if x.startswith(key + ":"))
        return int(line.split()[1]) / 1024

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(self.process.wait(), 30)


def request_tag(stream: int, run: int) -> str:
    """A tag that finds a request's record at the stand-in: letters only, since the server
    speaks digits as words before the text reaches the LLM."""
    return f"Room {_letters(stream)} run {_letters(run)}"


def _letters(number: int) -> str:
    return "".join("abcdefghijklmnopqrstuvwxyz"[int(d)] for d in f"{number:03d}")


def _record(llm: OrpheusStandIn, tag: str) -> RequestRecord | None:
    """The stand-in's record of the request whose text carries `tag`."""
    return next((r for r in llm.requests if tag in r.text), None)


def note_upstream(llm: OrpheusStandIn, tag: str, listen: Listen) -> None:
    """Copy from the stand-in's record: when the request arrived there, and when it sent the
    last token of the 4th frame."""
    record = _record(llm, tag)
    if record is None:
        return
    listen.llm_request_at = record.started
    needed = len(llm.behaviour.leading_tokens) + 4 * TOKENS_PER_FRAME
    listen.fourth_frame_at = next((at for sent, at in record.sent_log if sent >= needed), None)


def tokens_sent(llm: OrpheusStandIn, tag: str) -> int:
    """Return the tokens the stand-in has sent for the request whose text carries `tag`."""
    record = _record(llm, tag)
    return record.tokens_sent if record else 0


async def wyoming_synthesize(llm: OrpheusStandIn, port: int, tag: str, text: str = TEXT) -> Listen:
    client = AsyncTcpClient("127.0.0.1", port)
    await client.connect()
    listen = Listen(time.monotonic())
    await client.write_event(Synthesize(text=text.format(tag=tag)).event())
    await _read_audio(client, listen, llm, tag)
    await client.disconnect()
    return listen


async def wyoming_stream(llm: OrpheusStandIn, port: int, tag: str, text: str = TEXT) -> Listen:
    """Streamed text as an LLM answer arrives; first audio counts from the first sentence."""
    text = text.format(tag=tag)
    first_sentence_end = text.index(". ") + 1
    client = AsyncTcpClient("127.0.0.1", port)
    await client.connect()
    listen = Listen(0.0)
    await client.write_event(SynthesizeStart().event())

    async def send() -> None:
        for start in range(0, len(text), STREAM_CHUNK_CHARS):
            await client.write_event(
                SynthesizeChunk(text[start : start + STREAM_CHUNK_CHARS]).event()
            )
            if listen.asked == 0.0 and start + STREAM_CHUNK_CHARS >= first_sentence_end:
                listen.asked = time.monotonic()
            await asyncio.sleep(STREAM_CHUNK_EVERY)
        await client.write_event(SynthesizeStop().event())

    sender = asyncio.create_task(send())
    await _read_audio(client, listen, llm, tag)
    await sender
    await client.disconnect()
    return listen


async def _read_audio(
    client: AsyncTcpClient, listen: Listen, llm: OrpheusStandIn, tag: str
) -> None:
    while True:
        event = await client.read_event()
        assert event is not None, "the server closed the connection"
        if AudioChunk.is_type(event.type):
            audio = AudioChunk.from_event(event).audio
            speech_before = bool(listen.chunks)
            listen.add(time.monotonic(), len(audio) // 2, silent=not any(audio))
            if listen.chunks and not speech_before:
                listen.tokens_at_first_audio = tokens_sent(llm, tag)
        elif AudioStop.is_type(event.type):
            note_upstream(llm, tag, listen)
            return
        elif event.type == "error":
            raise RuntimeError(f"the server answered an error: {event.data}")


async def http_speech(llm: OrpheusStandIn, url: str, tag: str, text: str = TEXT) -> Listen:
    body = {"input": text.format(tag=tag), "voice": "tara", "response_format": "pcm"}
    async with aiohttp.ClientSession() as session:
        listen = Listen(time.monotonic())
        async with session.post(url + "/v1/audio/speech", json=body) as response:
            if response.status == 429:
                return listen  # refused as busy: counted, not measured
            response.raise_for_status()
            carry = 0
            async for data in response.content.iter_any():
                if not listen.chunks:
                    listen.tokens_at_first_audio = tokens_sent(llm, tag)
                carry += len(data)
                listen.add(time.monotonic(), carry // 2)
                carry %= 2
    note_upstream(llm, tag, listen)
    return listen


async def reference_scheme(
    model: torch.nn.Module, frames: int, rate: float, streams: int
) -> list[Listen]:
    """Model the earlier servers: every 7 tokens, decode the last 4 frames, keep 2048 samples.

    One decode thread serves all streams, as their servers run one model; each stream decodes
    in order, so a stream that falls behind stays behind.
    """
    pool = ThreadPoolExecutor(max_workers=1)
    loop = asyncio.get_running_loop()
    codes = [
        np.asarray(make_frames(i, "tara", TEXT, 1.0)[:frames], dtype=np.int64)
        for i in range(streams)
    ]

    async def one(index: int) -> Listen:
        listen = Listen(time.monotonic())
        for frame in range(3, frames):
            arrival = listen.asked + (frame + 1) * 7 / rate
            await asyncio.sleep(max(0.0, arrival - time.monotonic()))
            window = codes[index][frame - 3 : frame + 1][None]
            await loop.run_in_executor(pool, decode_batch, model, window, "cpu")
            if not listen.chunks:
                listen.tokens_at_first_audio = (frame + 1) * 7
            listen.add(time.monotonic(), 2048)
        return listen

    try:
        return list(await asyncio.gather(*(one(i) for i in range(streams))))
    finally:
        pool.shutdown()


async def scenario(
    llm: OrpheusStandIn,
    server: Server | None,
    client: Client,
    streams: int,
    rate: float,
    seconds: float,
    prebuffer: float,
    run: int,
) -> dict[str, Any]:
    text_chars = len(TEXT.format(tag=request_tag(0, 0)))
    llm.behaviour.tokens_per_second = rate
    llm.behaviour.frames_per_char = seconds * FRAMES_PER_SECOND / text_chars
    cpu_before = server.cpu_seconds() if server else 0.0
    started = time.monotonic()
    listens = await asyncio.gather(
        *(client(server.port if server else 0, request_tag(i, run)) for i in range(streams))
    )
    wall = time.monotonic() - started
    summary = summarize(list(listens), prebuffer)
    if "audio_seconds_per_stream" in summary:
        # The least start delay that plays it gaplessly at this rate (issue 23).
        factor = rate / (TOKENS_PER_FRAME * FRAMES_PER_SECOND)
        summary["least_wait_s"] = least_wait(summary["audio_seconds_per_stream"], factor)
    if server is not None and "audio_seconds_per_stream" in summary:
        cpu = server.cpu_seconds() - cpu_before
        summary["server_cpu_s_per_audio_s_per_stream"] = cpu / (
            streams * summary["audio_seconds_per_stream"]
        )
        summary["server_peak_rss_mb"] = server.memory_mb("VmHWM")
    summary["wall_s"] = wall
    return summary


async def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(os.cpu_count() or 1)
    snac = write_snac_model(Path(tempfile.mkdtemp()) / "snac", seed=0, noise=False)
    model = load_snac(str(snac), "cpu")
    llm = OrpheusStandIn()
    await llm.start()
    # Each playout mode is its own server from this checkout, side by side in one run.
    sources = [
        (f"this checkout, playout {mode}" if len(args.playout) > 1 else "this checkout",
         Path.cwd(), ["--playout", mode])
        for mode in args.playout
    ] + [("baseline", p, []) for p in args.baseline]  # fmt: skip
    rows: list[dict[str, Any]] = []
    starts: list[dict[str, Any]] = []
    run = 0
    try:
        for label, source, extra in sources:
            http = "http" in args.doors and label.startswith("this checkout")
            server = Server(source, llm.base_url, snac, http, [*extra, *args.server_arg])
            await server.start()
            starts.append(
                {
                    "source": label,
                    "start_to_ready_s": server.ready_s,
                    "idle_rss_mb": server.memory_mb("VmRSS"),
                }
            )
            clients = clients_for(llm, server, args, http)
            try:
                for door_mode, client in clients.items():
                    for rate in args.rates:
                        for streams in args.streams:
                            run += 1
                            result = await scenario(
                                llm,
                                server,
                                client,
                                streams,
                                rate,
                                args.seconds,
                                args.prebuffer,
                                run,
                            )
                            rows.append(
                                {
                                    "source": label,
                                    "client": door_mode,
                                    "streams": streams,
                                    "rate": rate,
                                    **result,
                                }
                            )
                            print_row(rows[-1])
            finally:
                await server.stop()
        for rate in args.rates:
            for streams in args.streams:
                frames = round(args.seconds * FRAMES_PER_SECOND)
                listens = await reference_scheme(model, frames, rate, streams)
                rows.append(
                    {
                        "source": "earlier servers' 28-token scheme (model)",
                        "client": "-",
                        "streams": streams,
                        "rate": rate,
                        **summarize(listens, args.prebuffer),
                    }
                )
                print_row(rows[-1])
    finally:
        await llm.stop()
    return {
        "command": "python -m benchmarks.e2e " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "torch": torch.__version__,
        "prebuffer_s": args.prebuffer,
        "starts": starts,
        "rows": rows,
    }


def clients_for(
    llm: OrpheusStandIn, server: Server, args: argparse.Namespace, http: bool
) -> dict[str, Client]:
    clients: dict[str, Client] = {}
    if "synthesize" in args.modes:
        clients["wyoming synthesize"] = lambda port, tag: wyoming_synthesize(llm, port, tag)
    if "stream" in args.modes:
        clients["wyoming streamed text"] = lambda port, tag: wyoming_stream(llm, port, tag)
    if http:
        url = f"http://127.0.0.1:{server.http_port}"
        clients["http pcm"] = lambda port, tag: http_speech(llm, url, tag)
    return clients


COLUMNS = (
    ("source", "source", "{}"),
    ("client", "client", "{}"),
    ("streams", "N", "{}"),
    ("rate", "tok/s", "{:g}"),
    ("first_audio_p50_s", "first audio p50", "{:.3f}"),
    ("first_audio_p95_s", "p95", "{:.3f}"),
    ("first_audio_p99_s", "p99", "{:.3f}"),
    ("tokens_at_first_audio_median", "tokens at 1st audio", "{:g}"),
    ("after_fourth_frame_p95_s", "server s after 4th frame p95", "{:.3f}"),
    ("llm_request_after_ask_p95_s", "LLM request after ask p95", "{:.3f}"),
    ("refused", "refused (busy)", "{}"),
    ("underruns_total", "underruns", "{}"),
    ("real_time_factor_max", "RTF max", "{:.2f}"),
    ("largest_gap_s", "largest gap s", "{:.3f}"),
    ("gaps_per_stream_s", "gaps heard s", "{:.2f}"),
    ("least_wait_s", "least wait s", "{:.2f}"),
    ("server_cpu_s_per_audio_s_per_stream", "server CPU s/audio s", "{:.3f}"),
    ("server_peak_rss_mb", "peak RSS MB", "{:.0f}"),
)


def print_row(row: dict[str, Any]) -> None:
    cells = [fmt.format(row[key]) if key in row else "-" for key, _, fmt in COLUMNS]
    print("| " + " | ".join(cells) + " |", flush=True)


def resolved_path(text: str) -> Path:
    return Path(text).resolve()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--rates", type=float, nargs="+", default=[100.0, 82.0])
    parser.add_argument("--seconds", type=float, default=10.0, help="audio per request")
    parser.add_argument("--prebuffer", type=float, default=0.3, help="player pre-buffer, s")
    parser.add_argument("--modes", nargs="+", default=["synthesize", "stream"])
    parser.add_argument("--doors", nargs="+", default=["wyoming", "http"])
    parser.add_argument(
        "--baseline",
        action="append",
        default=[],
        metavar="DIR",
        help="also run a server from this checkout, side by side",
    )
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra server flag, e.g. --server-arg=--max-concurrent=4",
    )
    parser.add_argument(
        "--playout",
        nargs="+",
        default=["adaptive"],
        choices=["adaptive", "immediate"],
        help="a server per mode, side by side (this checkout only)",
    )
    parser.add_argument("--json", default="benchmarks/results/e2e.json")
    args = parser.parse_args()
    print("| " + " | ".join(title for _, title, _ in COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    report = asyncio.run(run_benchmark(args))
    for start in report["starts"]:
        ready, rss = start["start_to_ready_s"], start["idle_rss_mb"]
        print(f"{start['source']}: ready after {ready:.2f} s, idle RSS {rss:.0f} MB")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
