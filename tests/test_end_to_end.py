"""As a user runs it: `python -m wyoming_orpheus` as a subprocess, driven over TCP."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize
from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncZeroconf

from tests.stand_ins.llm_server import OrpheusStandIn
from tests.test_zeroconf import browse
from tests.waiting import until
from tests.wyoming_client import assert_well_formed, read_reply
from wyoming_orpheus.wyoming_server.discovery import SERVICE_TYPE

pytestmark = pytest.mark.slow  # real processes: llama-server, the server itself


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def extra_args(request: pytest.FixtureRequest, tmp_path: Path) -> list[str]:
    """More flags for the server process, and files for them in its working directory.

    A test sets them with indirect parametrization: {"args": [...], "files": {name: text}}.
    """
    spec = getattr(request, "param", {})
    for name, text in spec.get("files", {}).items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    return list(spec.get("args", []))


@pytest.fixture
async def server_process(
    llm: OrpheusStandIn, snac_dir: Path, tmp_path: Path, extra_args: list[str]
) -> AsyncIterator[tuple[asyncio.subprocess.Process, int, int]]:
    port, http_port = free_port(), free_port()
    log = (tmp_path / "server.log").open("w")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wyoming_orpheus",
        "--uri",
        f"tcp://127.0.0.1:{port}",
        "--llm-url",
        llm.base_url,
        "--snac-model",
        str(snac_dir),
        "--device",
        "cpu",
        "--http-host",
        "127.0.0.1",
        "--http-port",
        str(http_port),
        "--zeroconf",
        "orpheus-e2e",
        "--debug",
        *extra_args,
        cwd=tmp_path,
        stderr=log,
    )
    try:
        await wait_for_port(port, process)
        yield process, port, http_port
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        log.close()
        print((tmp_path / "server.log").read_text())  # shown by pytest when a test fails


async def log_says(tmp_path: Path, text: str, timeout: float = 10.0) -> None:
    """Wait until the server's log has a line with text (what it did, not a guess of when)."""
    log = tmp_path / "server.log"
    await until(
        lambda: text in log.read_text(encoding="utf-8", errors="replace"),
        f"the server's log to say {text!r}",
        timeout,
        every=0.02,
    )


async def wait_for_port(
    port: int, process: asyncio.subprocess.Process, timeout: float = 60
) -> None:
    async with asyncio.timeout(timeout):
        while True:
            if process.returncode is not None:
                raise AssertionError(f"server exited with {process.returncode}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.2)
                continue
            writer.close()
            return


async def test_the_installed_server_speaks_and_is_discoverable(
    server_process, llm: OrpheusStandIn
) -> None:
    _, port, _ = server_process
    client = AsyncTcpClient("127.0.0.1", port)
    await client.connect()
    try:
        await client.write_event(Describe().event())
        info = Info.from_event((await read_reply(client, "info")).events[-1])
        assert info.tts[0].name == "orpheus"
        await client.write_event(Synthesize(text="Hello from a real process.").event())
        reply = await read_reply(client, "audio-stop")
    finally:
        await client.disconnect()
    assert_well_formed(reply)
    assert reply.seconds == pytest.approx(len(llm.requests[0].frames) * 2048 / 24000, abs=1e-3)
    service = await browse("orpheus-e2e")
    assert service is not None and service.port == port


async def test_sigterm_lets_the_synthesis_finish_and_exits_0(
    server_process, llm: OrpheusStandIn
) -> None:
    process, port, _ = server_process
    llm.behaviour.tokens_per_second = 200
    client = AsyncTcpClient("127.0.0.1", port)
    await client.connect()
    try:
        await client.write_event(Synthesize(text="Finish this sentence before you go.").event())
        await read_reply(client, "audio-start")
        process.send_signal(signal.SIGTERM)
        reply = await read_reply(client, "audio-stop")
    finally:
        await client.disconnect()
    assert reply.seconds > 0 and llm.requests[0].finished
    assert await asyncio.wait_for(process.wait(), 30) == 0


LEXICON = "all:\n  HA: Home Assistant\n"


@pytest.mark.parametrize(
    "extra_args",
    [{"args": ["--lexicon", "lexicon.yaml"], "files": {"lexicon.yaml": LEXICON}}],
    indirect=True,
)
async def test_sensor_text_is_spoken_form_and_the_lexicon_reloads_on_sighup(
    server_process, tmp_path: Path, llm: OrpheusStandIn
) -> None:
    process, port, _ = server_process
    text = "HA says: it is 21.5 °C, battery at 5 %"
    await speak(port, text)
    (tmp_path / "lexicon.yaml").write_text("all:\n  HA: the house\n", encoding="utf-8")
    process.send_signal(signal.SIGHUP)
    await log_says(tmp_path, "Lexicon reloaded")
    await speak(port, text)
    assert process.returncode is None  # SIGHUP reloads, it does not stop the server
    spoken = "says: it is twenty-one point five degrees Celsius, battery at five percent."
    assert [r.text for r in llm.requests] == [f"Home Assistant {spoken}", f"the house {spoken}"]


async def speak(port: int, text: str) -> None:
    client = AsyncTcpClient("127.0.0.1", port)
    await client.connect()
    try:
        await client.write_event(Synthesize(text=text).event())
        assert_well_formed(await read_reply(client, "audio-stop"))
    finally:
        await client.disconnect()


async def test_healthcheck_passes_against_a_running_server(server_process) -> None:
    _, port, _ = server_process
    checker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wyoming_orpheus.healthcheck", "--uri", f"tcp://127.0.0.1:{port}"
    )
    assert await asyncio.wait_for(checker.wait(), 30) == 0


async def test_one_process_serves_both_doors_and_drains_http_on_sigterm(
    server_process, llm: OrpheusStandIn
) -> None:
    process, _, http_port = server_process
    url = f"http://127.0.0.1:{http_port}"
    llm.behaviour.tokens_per_second = 200
    async with aiohttp.ClientSession() as session:
        async with session.get(url + "/health") as response:
            assert response.status == 200 and (await response.json())["ready"] is True
        async with session.post(
            url + "/v1/audio/speech", json={"input": "Both doors.", "response_format": "pcm"}
        ) as response:
            assert response.status == 200
            first = await response.content.readany()  # the synthesis is under way
            process.send_signal(signal.SIGTERM)
            rest = await response.read()
    assert len(first + rest) == len(llm.requests[0].frames) * 2048 * 2  # finished, not cut
    assert await asyncio.wait_for(process.wait(), 30) == 0


class ServiceWatch:
    """Browse _wyoming._tcp on loopback and note when a name appears and disappears."""

    def __init__(self, name: str) -> None:
        self.added, self.removed = asyncio.Event(), asyncio.Event()
        self._wanted = f"{name}.{SERVICE_TYPE}"
        self._zeroconf = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
        self._browser = AsyncServiceBrowser(
            self._zeroconf.zeroconf, SERVICE_TYPE, handlers=[self._on_change]
        )

    def _on_change(
        self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if name == self._wanted:
            if state_change is ServiceStateChange.Added:
                self.added.set()
            elif state_change is ServiceStateChange.Removed:
                self.removed.set()

    async def close(self) -> None:
        await self._browser.async_cancel()
        await self._zeroconf.async_close()


async def wyoming_until_stop(port: int, text: str, started: asyncio.Event) -> bytes:
    client = AsyncTcpClient("127.0.0.1", port)
    await client.connect()
    try:
        await client.write_event(Synthesize(text=text).event())
        await read_reply(client, "audio-start")
        started.set()
        reply = await read_reply(client, "audio-stop")
    finally:
        await client.disconnect()
    assert reply.error is None
    return reply.audio


async def http_until_end(http_port: int, text: str, started: asyncio.Event) -> bytes:
    body = {"input": text, "response_format": "pcm"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"http://127.0.0.1:{http_port}/v1/audio/speech", json=body) as response,
    ):
        assert response.status == 200
        first = await response.content.readany()
        started.set()
        return first + await response.read()


@pytest.mark.parametrize(
    "extra_args", [{"args": ["--max-concurrent", "3"]}], indirect=True, ids=["3-slots"]
)
async def test_sigterm_under_load_finishes_every_stream_unregisters_and_exits_0(
    server_process, llm: OrpheusStandIn
) -> None:
    process, port, http_port = server_process
    llm.behaviour.tokens_per_second = 150
    watch = ServiceWatch("orpheus-e2e")
    try:
        await asyncio.wait_for(watch.added.wait(), 10)
        texts = ["The first room speaks.", "The second room too.", "And the third, by HTTP."]
        started = [asyncio.Event() for _ in texts]
        streams = [
            asyncio.create_task(wyoming_until_stop(port, texts[0], started[0])),
            asyncio.create_task(wyoming_until_stop(port, texts[1], started[1])),
            asyncio.create_task(http_until_end(http_port, texts[2], started[2])),
        ]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in started)), 30)
        process.send_signal(signal.SIGTERM)
        audios = await asyncio.wait_for(asyncio.gather(*streams), 30)
        # Every in-flight stream finished whole: the audio of every frame the LLM sent.
        for text, audio in zip(texts, audios, strict=True):
            (record,) = [r for r in llm.requests if r.text == text]
            assert record.finished and len(audio) == len(record.frames) * 2048 * 2
        assert await asyncio.wait_for(process.wait(), 30) == 0
        await asyncio.wait_for(watch.removed.wait(), 10)  # unregistered, not left to expire
    finally:
        await watch.close()
    assert all(record.closed_at is not None for record in llm.requests)
    with pytest.raises(OSError):  # nothing listens any more
        await asyncio.open_connection("127.0.0.1", port)


async def test_a_second_sigterm_exits_at_once(
    server_process, llm: OrpheusStandIn, tmp_path: Path
) -> None:
    process, port, _ = server_process
    llm.behaviour.tokens_per_second = 40  # a synthesis far longer than the 10 s grace
    started = asyncio.Event()
    stream = asyncio.create_task(wyoming_until_stop(port, "Slow words. " * 30, started))
    await asyncio.wait_for(started.wait(), 30)
    process.send_signal(signal.SIGTERM)
    await log_says(tmp_path, "Waiting up to")  # draining: the grace period runs
    assert process.returncode is None
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), 3) == 128 + signal.SIGTERM
    with pytest.raises((AssertionError, ConnectionError, asyncio.IncompleteReadError)):
        await asyncio.wait_for(stream, 10)  # cut, as asked


async def test_healthcheck_fails_when_nothing_listens() -> None:
    checker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wyoming_orpheus.healthcheck",
        "--uri",
        f"tcp://127.0.0.1:{free_port()}",
        "--timeout",
        "2",
    )
    assert await asyncio.wait_for(checker.wait(), 30) == 1


def test_a_missing_snac_directory_is_a_clear_start_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "wyoming_orpheus",
            "--snac-model",
            str(tmp_path / "nope"),
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert f"SNAC directory {tmp_path / 'nope'} does not exist" in result.stderr
