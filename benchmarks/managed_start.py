"""Managed mode, start to ready: our own start, llama-server's load, and the first request.

Runs `python -m wyoming_orpheus` with no LLM server named, the model already local (the tiny
Orpheus-layout GGUF the tests use; the real 3B cannot be had on these machines), and the real
llama-server. Each run is split by the server's own log timestamps:

- ours: process start to llama-server started (imports, settings, hardware tier, the GGUF
  found in the cache or on disk);
- llama load: llama-server started to its health check answering (its model load);
- ready after llama: llama-server answering to our /health saying ready (the target is under
  1 s: SNAC loads and the decoder warms up meanwhile);
- first audio: a Wyoming synthesize to its first audio chunk.

With --from-nothing each start has an empty cache and no llama-server of its own
(`--llama-server release`): it fetches llama.cpp's release from a loopback stand-in of the
release API serving the real llama-server packed as a release, and "ours" splits further into
before the fetch, the download (API answer, archive, sha256 check) and the unpacking.

    .venv/bin/python -m benchmarks.managed_start [--repeats 5] [--no-warm-up] [--from-nothing]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from wyoming.client import AsyncTcpClient
from wyoming.tts import Synthesize

from benchmarks.e2e import free_port
from tests.stand_ins import llama_server
from tests.stand_ins.llama_release import ReleaseStandIn, build_files, pack_tar
from tests.stand_ins.snac_model import write_snac_model
from tests.stand_ins.tiny_orpheus_gguf import write_tiny_orpheus
from wyoming_orpheus.fetch.release import TAG, variant_for

LOG_FORMAT = "%(created).3f %(name)s: %(message)s"
_STARTED = re.compile(r"^([\d.]+) \S+: llama-server: \d+ slots of")
_LLAMA_READY = re.compile(r"^([\d.]+) \S+: llama-server ready after")
_FETCH = re.compile(r"^([\d.]+) \S+: Managed mode: .*using llama.cpp's prebuilt release")
_DOWNLOADED = re.compile(r"^([\d.]+) \S+: Downloaded llama-")
_UNPACKED = re.compile(r"^([\d.]+) \S+: llama.cpp \S+ unpacked into")


async def one_start(
    gguf: Path, snac: Path, work: Path, warm_up: bool, release: ReleaseStandIn | None
) -> dict[str, float]:
    """Start the server once; return the phases in seconds."""
    port, http_port = free_port(), free_port()
    log_path = work / "server.log"
    args = ["--uri", f"tcp://127.0.0.1:{port}", "--http-host", "127.0.0.1"]
    args += ["--http-port", str(http_port), "--llm-gguf", str(gguf), "--snac-model", str(snac)]
    args += ["--device", "cpu", "--log-format", LOG_FORMAT]
    env = dict(os.environ, ORPHEUS_WARM_UP="true" if warm_up else "false")
    if release is not None:  # an empty cache each time: nothing but the release API
        cache = Path(tempfile.mkdtemp(dir=work))
        env.update(XDG_CACHE_HOME=str(cache), ORPHEUS_LLAMA_RELEASE_API=release.api)
        args += ["--llama-server", "release"]
    begun = time.time()
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "wyoming_orpheus", *args, stdout=log, stderr=log, env=env
        )
    try:
        ready = await _wait_ready(f"http://127.0.0.1:{http_port}/health", process)
        first_audio = await _first_audio(port)
    finally:
        process.terminate()
        await process.wait()
    text = log_path.read_text(errors="replace")
    started = _stamp(_STARTED, text)
    llama_ready = _stamp(_LLAMA_READY, text)
    fetch: dict[str, float] = {}
    if release is not None:
        asked, downloaded = _stamp(_FETCH, text), _stamp(_DOWNLOADED, text)
        unpacked = _stamp(_UNPACKED, text)
        fetch = {
            "ours_before_fetch": asked - begun,
            "download": downloaded - asked,
            "unpack": unpacked - downloaded,
            "ours_after_fetch": started - unpacked,
        }
    return {
        **fetch,
        "ours": started - begun,
        "llama_load": llama_ready - started,
        "ready_after_llama": ready - llama_ready,
        "start_to_ready": ready - begun,
        "first_audio": first_audio,
    }


async def _wait_ready(url: str, process: asyncio.subprocess.Process) -> float:
    async with aiohttp.ClientSession() as session:
        while True:
            if process.returncode is not None:
                raise RuntimeError(f"the server exited with {process.returncode}")
            try:
                async with session.get(url) as answer:
                    if answer.status == 200:
                        return time.time()
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.01)


async def _first_audio(port: int) -> float:
    client = AsyncTcpClient("127.0.0.1", port)
    await client.connect()
    try:
        asked = time.monotonic()
        await client.write_event(Synthesize(text="The first words after a start.").event())
        while (event := await client.read_event()) is not None:
            if event.type == "audio-chunk":
                return time.monotonic() - asked
            if event.type == "error":
                raise RuntimeError(f"synthesis failed: {event.data}")
        raise RuntimeError("the server closed the connection")
    finally:
        await client.disconnect()


async def _release_stand_in() -> ReleaseStandIn:
    """The release API on loopback, serving this machine's build: the real llama-server."""
    name = f"llama-{TAG}-bin-{variant_for(platform.system(), platform.machine(), [])}.tar.gz"
    release = ReleaseStandIn(TAG, {name: pack_tar(build_files(llama_server.binary()), TAG)})
    await release.start()
    return release


def _stamp(pattern: re.Pattern[str], text: str) -> float:
    for line in text.splitlines():
        if match := pattern.match(line):
            return float(match.group(1))
    raise RuntimeError(f"no log line matches {pattern.pattern}")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        gguf = write_tiny_orpheus(work / "tiny.gguf")
        snac = write_snac_model(work / "snac", seed=0)
        release = await _release_stand_in() if args.from_nothing else None
        try:
            runs = [
                await one_start(gguf, snac, work, args.warm_up, release)
                for _ in range(args.repeats)
            ]
        finally:
            if release is not None:
                await release.stop()
    medians = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    return {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "from_nothing": args.from_nothing,
        "archive_bytes": len(next(iter(release.assets.values()))) if release else None,
        "warm_up": args.warm_up,
        "repeats": args.repeats,
        "median_seconds": medians,
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warm-up", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--from-nothing",
        action="store_true",
        help="an empty cache each start: llama.cpp's release fetched (from a loopback stand-in)",
    )
    parser.add_argument("--json", default="benchmarks/results/managed_start.json")
    args = parser.parse_args()
    report = asyncio.run(run(args))
    what = "from nothing (release fetched)" if args.from_nothing else "model cached"
    print(f"managed mode, {what}, warm-up {'on' if args.warm_up else 'off'}, medians of")
    print(f"{args.repeats} starts (seconds):")
    for key, value in report["median_seconds"].items():
        print(f"  {key:<18} {value:7.3f}")
    if report["archive_bytes"]:
        print(f"  (the archive: {report['archive_bytes'] / 2**20:.1f} MiB over loopback)")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
