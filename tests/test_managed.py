"""Managed mode as a user meets it: no LLM server named, so wyoming-orpheus runs llama-server.

Every test runs `python -m wyoming_orpheus` as its own process with the real llama-server
(script/llama-server) serving the tiny Orpheus-layout GGUF, and a local stand-in of the hub's
file API behind HF_ENDPOINT where the model comes from the hub.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import torch
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize

from tests.managed_process import (
    ManagedProcess,
    assert_is_decode_of,
    process_gone,
    replay,
    run_to_exit,
    speak_http,
    speak_wyoming,
    start_managed,
    wait_gone,
)
from tests.stand_ins.hub import HubStandIn
from tests.stand_ins.tiny_orpheus_gguf import write_tiny_orpheus
from tests.test_zeroconf import browse
from tests.wyoming_client import read_reply
from wyoming_orpheus.config import Settings
from wyoming_orpheus.decode.snac import SNAC_FILES
from wyoming_orpheus.managed.binary import gpu_unused
from wyoming_orpheus.managed.server import ManagedLlamaServer
from wyoming_orpheus.managed.sizing import Sizing, build_command, size_for

pytestmark = pytest.mark.slow  # real processes: llama-server, the server itself

REPO_ID = "test-org/orpheus-tiny-GGUF"
GGUF_NAME = "orpheus-tiny-q8_0.gguf"
SEED = ["--llama-server-arg=--seed 42"]  # every request samples the same way: replayable


@pytest.fixture(scope="module")
def hub_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same model, wide enough (~26 MB) for huggingface_hub's 10 MB download chunks."""
    return write_tiny_orpheus(tmp_path_factory.mktemp("hub") / GGUF_NAME, width=112)


@pytest.fixture(scope="module")
def endless_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model that never says end-of-speech: only max_tokens ends its answers."""
    return write_tiny_orpheus(tmp_path_factory.mktemp("gguf") / "endless.gguf", end_every=None)


@pytest.fixture
def snac(snac_model: torch.nn.Module) -> torch.nn.Module:
    return snac_model  # loaded once per session (conftest)


@pytest.fixture
async def hub(hub_gguf: Path, snac_dir: Path) -> AsyncIterator[HubStandIn]:
    """The hub stand-in with the tiny GGUF and SNAC, each in the repository layout."""
    stand_in = HubStandIn(
        repos={
            REPO_ID: {GGUF_NAME: hub_gguf.read_bytes(), "README.md": b"# tiny\n"},
            "test-org/two-quants": {"m-Q4_K_M.gguf": b"GGUF", "m-Q8_0.gguf": b"GGUF"},
            "test-org/snac_24khz": {name: (snac_dir / name).read_bytes() for name in SNAC_FILES},
        }
    )
    await stand_in.start()
    yield stand_in
    await stand_in.stop()


def hub_env(hub: HubStandIn, cache: Path, **extra: str) -> dict[str, str]:
    """What a user's environment says: where the hub is, where its cache lies."""
    return {"HF_ENDPOINT": hub.url, "HF_HUB_CACHE": str(cache), **extra}


async def running(
    tmp_path: Path, servers: list[ManagedProcess], gguf: Path, snac_dir: Path
) -> tuple[ManagedProcess, int]:
    """Start a managed server on a local model; return it, ready, and llama-server's pid."""
    server = await start_managed(tmp_path, ["--llm-gguf", str(gguf), "--snac-model", str(snac_dir)])
    servers.append(server)
    return server, server.llama_pid(await server.wait_ready())


# --- from a local file: speech over both doors, exactly what llama-server generated ---


async def test_a_local_gguf_speaks_over_both_doors_without_any_llm_url(
    tmp_path: Path, servers: list[ManagedProcess], tiny_gguf: Path, snac_dir: Path, snac: Any
) -> None:
    args = ["--llm-gguf", str(tiny_gguf), "--snac-model", str(snac_dir), *SEED]
    server = await start_managed(tmp_path, [*args, "--zeroconf", "orpheus-managed"])
    servers.append(server)
    body = await server.wait_ready()
    assert body["status"] == "ok" and body["llm_server"]["state"] == "running"
    assert body["llm_server"]["restarts"] == 0
    llama_url = body["llm_server"]["url"]
    assert llama_url.startswith("http://127.0.0.1:")  # bound to loopback only
    assert body["upstreams"][0]["url"] == llama_url + "/completions"
    # Sized from the settings: 2 syntheses per core on CPU, each with one segment ahead.
    slots = (os.cpu_count() or 1) * 2 * 2
    assert f"llama-server: {slots} slots of " in server.log()
    # The test build is CPU-only, and says so: no layers offloaded.
    assert "(GPUs: none)" in server.log() and "0 GPU layers" in server.log()
    # Its --help lists the options that raise batched throughput (issue 29): they are passed.
    running = Path(f"/proc/{server.llama_pid(body)}/cmdline").read_bytes().split(b"\0")
    assert b"-kvu" in running and b"-bs" in running

    service = await browse("orpheus-managed")  # advertised once llama-server answered
    assert service is not None and service.port == server.port
    text = "Hello there."
    wyoming_audio = await speak_wyoming(server.port, text)
    http_audio = await speak_http(server, text)
    frames = await replay(llama_url, text)
    assert_is_decode_of(wyoming_audio, frames, snac)
    assert_is_decode_of(http_audio, frames, snac)
    assert "llama-server: " in server.log()  # its own log lines, forwarded at debug level


# --- from the hub: download with resume, then offline from the cache ---


async def test_a_hub_model_downloads_resumes_after_a_kill_and_then_starts_offline(
    tmp_path: Path, servers: list[ManagedProcess], hub: HubStandIn, hub_gguf: Path
) -> None:
    cache = tmp_path / "hub-cache"
    args = ["--llm-gguf", REPO_ID, "--snac-model", "test-org/snac_24khz"]
    size = hub_gguf.stat().st_size
    hub.link.bytes_per_second = size / 6  # six seconds for the whole file
    first = await start_managed(tmp_path, args, hub_env(hub, cache), name="first")
    servers.append(first)
    body = await first.wait_health(
        lambda _, b: any(d["bytes_done"] > 0 for d in b.get("downloading", []))
    )
    (download,) = body["downloading"]
    assert body["status"] == "downloading" and body["ready"] is False
    assert download["file"] == f"{REPO_ID}/{GGUF_NAME}" and download["bytes_total"] == size
    first.process.kill()  # the power goes out mid-download
    await first.process.wait()
    repo_dir = cache / f"models--{REPO_ID.replace('/', '--')}"
    assert not list(repo_dir.glob("snapshots/*/*.gguf"))  # nothing half-written looks whole
    (partial,) = repo_dir.glob("blobs/*.incomplete")
    kept = partial.stat().st_size
    assert 0 < kept < size

    hub.link.bytes_per_second = None
    second = await start_managed(tmp_path, args, hub_env(hub, cache), name="second")
    servers.append(second)
    await second.wait_ready()
    resumed = hub.downloads_of(GGUF_NAME)[-1]
    assert resumed.range is not None and int(resumed.range.split("=")[1].split("-")[0]) > 0
    (whole,) = repo_dir.glob("snapshots/*/*.gguf")
    assert (
        hashlib.sha256(whole.read_bytes()).digest()
        == hashlib.sha256(hub_gguf.read_bytes()).digest()
    )
    assert "Resuming " in second.log()
    assert len(await speak_wyoming(second.port, "Downloaded and speaking.")) > 0
    await second.stop()

    await hub.stop()  # no network at all now
    requests_before = len(hub.requests)
    offline = await start_managed(
        tmp_path, args, hub_env(hub, cache, HF_HUB_OFFLINE="1"), name="offline"
    )
    servers.append(offline)
    await offline.wait_ready()
    assert len(await speak_wyoming(offline.port, "Offline from the cache.")) > 0
    assert len(hub.requests) == requests_before


async def test_a_connection_cut_mid_download_is_resumed_in_the_same_start(
    tmp_path: Path, servers: list[ManagedProcess], hub: HubStandIn, hub_gguf: Path, snac_dir: Path
) -> None:
    cut = hub.link.cut_after = hub_gguf.stat().st_size // 2
    server = await start_managed(
        tmp_path,
        ["--llm-gguf", f"{REPO_ID}:Q8_0", "--snac-model", str(snac_dir)],
        hub_env(hub, tmp_path / "cache"),
    )
    servers.append(server)
    await server.wait_ready()
    first, *_, last = hub.downloads_of(GGUF_NAME)
    assert first.range is None and last.range is not None
    assert 0 < int(last.range.removeprefix("bytes=").rstrip("-")) <= cut  # not from the start


@pytest.mark.parametrize(
    ("gguf", "message"),
    [
        ("test-org/no-such-repo", "no hub repository test-org/no-such-repo"),
        (
            "test-org/two-quants",
            "hub repository test-org/two-quants has several GGUF files; name one: "
            "test-org/two-quants/m-Q4_K_M.gguf, "
            "test-org/two-quants/m-Q8_0.gguf",
        ),
        (
            "test-org/two-quants:Q5_K_M",
            "hub repository test-org/two-quants has no GGUF files tagged Q5_K_M",
        ),
        (f"{REPO_ID}/missing.gguf", f"hub repository {REPO_ID} has no file missing.gguf"),
        ("/models/absent.gguf", "GGUF file /models/absent.gguf does not exist"),
    ],
)
async def test_a_model_that_cannot_be_had_is_a_clear_start_error(
    tmp_path: Path, hub: HubStandIn, snac_dir: Path, gguf: str, message: str
) -> None:
    args = ["--llm-gguf", gguf, "--snac-model", str(snac_dir)]
    code, log = await run_to_exit(tmp_path, args, hub_env(hub, tmp_path / "cache"))
    assert code == 1
    assert f"Cannot start: {message}" in log


async def test_no_network_and_nothing_cached_is_a_clear_start_error(
    tmp_path: Path, hub: HubStandIn, snac_dir: Path
) -> None:
    await hub.stop()
    args = ["--llm-gguf", REPO_ID, "--snac-model", str(snac_dir)]
    code, log = await run_to_exit(tmp_path, args, hub_env(hub, tmp_path / "cache"))
    assert code == 1
    assert "the hub is unreachable (or HF_HUB_OFFLINE is set) and nothing of it is in" in log


async def test_a_full_disk_is_a_clear_start_error_and_leaves_nothing_that_looks_whole(
    tmp_path: Path, hub: HubStandIn, snac_dir: Path, hub_gguf: Path
) -> None:
    cache = tmp_path / "small-disk"
    cache.mkdir()
    # A 1 MiB tmpfs, smaller than the model, mounted in a user and mount namespace of its own.
    mount = f'mount -t tmpfs -o size=1m tmpfs {cache} && exec "$@"'
    args = ["--llm-gguf", REPO_ID, "--snac-model", str(snac_dir)]
    assert hub_gguf.stat().st_size > 2**20
    command = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", mount, "sh"]
    command += [sys.executable, "-m", "wyoming_orpheus", "--no-http"]
    command += ["--uri", "tcp://127.0.0.1:0"]
    done = await asyncio.to_thread(
        subprocess.run,
        [*command, *args],
        env=dict(os.environ, ORPHEUS_WARM_UP="false", **hub_env(hub, cache)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr[-3000:]
    assert f"cannot save {REPO_ID}/{GGUF_NAME} in the hub cache: No space left on device" in (
        done.stderr
    )
    assert not list(cache.glob("**/*.gguf"))  # the tmpfs is gone with its namespace


# --- supervision ---


async def test_kill_9_of_llama_server_mid_stream_fails_that_request_and_the_next_speaks(
    tmp_path: Path, servers: list[ManagedProcess], endless_gguf: Path, snac_dir: Path
) -> None:
    server, pid = await running(tmp_path, servers, endless_gguf, snac_dir)
    client = AsyncTcpClient("127.0.0.1", server.port)
    await client.connect()
    try:
        long_text = "This answer goes on and on while the model keeps talking. " * 40
        await client.write_event(Synthesize(text=long_text).event())
        await read_reply(client, "audio-chunk")
        os.kill(pid, signal.SIGKILL)  # llama-server crashes mid-stream
        reply = await read_reply(client, "error")
    finally:
        await client.disconnect()
    assert reply.error is not None and reply.error.code == "upstream-unreachable"
    assert "the managed llama-server was killed by SIGKILL" in reply.error.text
    body = await server.wait_ready(timeout=30)
    assert body["llm_server"]["restarts"] == 1 and server.llama_pid(body) != pid
    assert len(await speak_wyoming(server.port, "Back again.")) > 0
    assert "llama-server was killed by SIGKILL after" in server.log()


async def test_once_ready_a_short_probe_says_how_fast_the_llm_is(
    tmp_path: Path, servers: list[ManagedProcess], endless_gguf: Path, snac_dir: Path
) -> None:
    # The endless model: a probe is cut after 140 tokens, never by an early end of speech.
    server, _ = await running(tmp_path, servers, endless_gguf, snac_dir)
    # In the log and in /health (and so remembered for the playout of the first request).
    body = await server.wait_health(lambda _, b: b["upstreams"][0]["tokens_per_second"])
    speed = re.search(r"LLM: (\d+) tokens/s = ([\d.]+) x real time", server.log())
    assert speed is not None, "no speed line in the log"
    factor = float(speed.group(2))
    assert factor == pytest.approx(int(speed.group(1)) / 82.03, abs=0.01)  # both rounded
    assert body["upstreams"][0]["keeps_real_time"] is (
        body["upstreams"][0]["real_time_factor"] >= 1
    )
    assert ("slower than real time" in server.log()) is (factor < 1)
    assert "tokens_per_second" in body["upstreams"][0]


async def test_a_gpu_this_llama_server_cannot_use_is_a_warning_and_in_health(
    tmp_path: Path, servers: list[ManagedProcess], tiny_gguf: Path, snac_dir: Path
) -> None:
    # A GPU box with the NVIDIA driver (nvidia-smi lists a GPU) and the CPU-only llama-server
    # the suite builds: the usual household without the CUDA toolkit (issue 24).
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA GeForce RTX 3060 (UUID: GPU-1234)'\n")
    smi.chmod(0o755)
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    args = ["--llm-gguf", str(tiny_gguf), "--snac-model", str(snac_dir)]
    server = await start_managed(tmp_path, args, env=env)
    servers.append(server)
    body = await server.wait_ready()
    unused = body["llm_server"]["gpu_unused"]
    assert unused is not None and "GPU 0: NVIDIA GeForce RTX 3060" in unused
    assert "lists no GPU" in unused
    for fix in ("Vulkan", "LLAMA_BACKEND=cuda script/llama-server", "docker/compose.yaml"):
        assert fix in unused
    assert f"WARNING wyoming_orpheus.managed.server: The GPU goes unused: {unused}" in server.log()
    assert len(await speak_wyoming(server.port, "Still speaking.")) > 0  # on the CPU, but speaking


def test_a_gpu_goes_unused_only_when_one_shows_and_nothing_is_offloaded() -> None:
    gpu = ["GPU 0: NVIDIA GeForce RTX 3060"]
    assert gpu_unused([], [], 0) is None  # no GPU here: nothing to say
    assert gpu_unused(gpu, ["CUDA0: NVIDIA GeForce RTX 3060"], 999) is None
    assert gpu_unused(gpu, None, 999) is None  # the build could not say; layers offloaded
    assert "lists no GPU" in (gpu_unused(gpu, [], 0) or "")
    assert "llm_gpu_layers is 0" in (gpu_unused(gpu, ["Vulkan0: RTX 3060"], 0) or "")
    # A Vulkan build that finds no device: what it lacks is on the host, not another build.
    vulkan = gpu_unused(gpu, [], 999, vulkan=True) or ""
    assert "finds no Vulkan device" in vulkan and "libvulkan1" in vulkan


def failing_binary(tmp_path: Path) -> Path:
    """A llama-server that lists its options but dies at once, as a broken build does."""
    script = tmp_path / "llama-server"
    script.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = --help ]; then echo "-m, --model FNAME  --host HOST  --port PORT"; '
        'echo "-np, --parallel N  -c, --ctx-size N  -ngl, --n-gpu-layers N"; exit 0; fi\n'
        'echo "ggml_backend_cuda_init: out of memory" >&2\n'
        "exit 3\n",
        encoding="utf-8",
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


async def test_a_binary_that_exits_at_once_is_retried_with_backoff_while_the_doors_answer(
    tmp_path: Path, servers: list[ManagedProcess], tiny_gguf: Path, snac_dir: Path
) -> None:
    args = ["--llm-gguf", str(tiny_gguf), "--snac-model", str(snac_dir)]
    args += ["--llama-server", str(failing_binary(tmp_path)), "--zeroconf", "orpheus-crashloop"]
    server = await start_managed(tmp_path, args)
    servers.append(server)
    # Backoff: each crash is seen as it happens, 1 then 2 s apart (the delay doubles), not a
    # busy loop; a supervisor that gave up would never reach the next one.
    restarted_at = []
    for count in (1, 2, 3):
        body = await server.wait_health(
            lambda _, b, n=count: b.get("llm_server", {}).get("restarts", 0) >= n
        )
        restarted_at.append(time.monotonic())
    first_gap, second_gap = (b - a for a, b in itertools.pairwise(restarted_at))
    assert 0.9 < first_gap < 2.5 and first_gap + 0.5 < second_gap < 4.5, (first_gap, second_gap)
    assert body["ready"] is False and body["status"] == "starting"
    llm = body["llm_server"]
    assert llm["state"] in ("restarting", "starting", "exited") and llm["last_exit"] == 3
    assert "ggml_backend_cuda_init: out of memory" in llm["last_lines"]
    with pytest.raises(TimeoutError):  # never advertised: Home Assistant would find no voice
        await browse("orpheus-crashloop", timeout=3.0)
    client = AsyncTcpClient("127.0.0.1", server.port)
    await client.connect()
    try:
        await client.write_event(Describe().event())
        info = Info.from_event((await read_reply(client, "info", timeout=1.0)).events[-1])
        assert info.tts[0].voices
        await client.write_event(Synthesize(text="Anyone there?").event())
        reply = await read_reply(client, "error")
    finally:
        await client.disconnect()
    assert reply.error is not None and reply.error.code == "upstream-unreachable"
    assert "exited with code 3" in server.log() and "out of memory" in server.log()


# --- stopping: llama-server never outlives us ---


async def test_sigterm_stops_llama_server_and_exits_0(
    tmp_path: Path, servers: list[ManagedProcess], tiny_gguf: Path, snac_dir: Path
) -> None:
    server, pid = await running(tmp_path, servers, tiny_gguf, snac_dir)
    server.process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(server.process.wait(), 30) == 0
    assert process_gone(pid)


async def test_sigkill_of_our_server_takes_llama_server_down_within_2_s(
    tmp_path: Path, servers: list[ManagedProcess], tiny_gguf: Path, snac_dir: Path
) -> None:
    server, pid = await running(tmp_path, servers, tiny_gguf, snac_dir)
    server.process.kill()  # no code of ours runs after this
    await server.process.wait()
    await wait_gone(pid, timeout=2.0)


# --- start errors: exit 2 with one message ---


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("--no-such-option", "llama_server_args: --no-such-option is not an option of"),
        ("--port=9000", "llama_server_args: --port is set by managed mode"),
    ],
)
async def test_a_bad_llama_server_option_exits_2(
    tmp_path: Path, tiny_gguf: Path, arg: str, message: str
) -> None:
    code, log = await run_to_exit(
        tmp_path, ["--llm-gguf", str(tiny_gguf), f"--llama-server-arg={arg}"]
    )
    assert code == 2
    assert message in log


def test_batching_options_are_passed_only_when_listed_and_not_chosen_by_the_user() -> None:
    sizing = Sizing(parallel=8, ctx_per_slot=7168, gpu_layers=0)
    listed = frozenset({"-kvu", "--kv-unified", "-no-kvu", "-bs", "--backend-sampling"})
    command = build_command(Path("llama-server"), Path("m.gguf"), 1, sizing, [], listed)
    assert "-kvu" in command and "-bs" in command
    older = build_command(Path("llama-server"), Path("m.gguf"), 1, sizing, [], frozenset())
    assert "-kvu" not in older and "-bs" not in older  # an older build does not know them
    chosen = build_command(Path("llama-server"), Path("m.gguf"), 1, sizing, ["-no-kvu"], listed)
    assert "-kvu" not in chosen and chosen[-1] == "-no-kvu" and "-bs" in chosen


def test_llama_server_gets_slots_for_sentence_requests_and_the_plans_know_them() -> None:
    # Issue 29: below real time an answer's sentences generate side by side; one synthesis
    # without lookahead would have sized llama-server to a single slot.
    settings = Settings.of(lookahead_segments=0)
    assert size_for(settings, 1, gpu=False).parallel == 4
    assert size_for(settings.but(playout_sentences=False), 1, gpu=False).parallel == 1
    assert size_for(settings, 6, gpu=False).parallel == 6
    sizing = size_for(settings, 1, gpu=False)
    assert ManagedLlamaServer([]).slots(sizing) == 4
    assert ManagedLlamaServer(["-np", "2"]).slots(sizing) == 2  # the user's -np wins
    assert ManagedLlamaServer(["--parallel=8"]).slots(sizing) == 8
