"""Run the built image as a user would and check it (script/image-test calls this).

No Docker engine runs on the test machines and `podman run` cannot start containers there;
`buildah run --isolation chroot` runs the image's own entry point instead, on the host's
network, with the SNAC stand-in mounted, and with the command line of
docker/compose.cpu.yaml (zeroconf, Wyoming on 10200, HTTP on 5005) pointed at the LLM
stand-in. Checked: the image's own HEALTHCHECK passes, a Wyoming synthesize against the LLM
stand-in on the host gets all of its audio, the HTTP door answers /health, the process runs as
the image's non-root user, and SIGTERM stops it cleanly (exit 0).

    python -m tests.image_check IMAGE
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import aiohttp
from wyoming.client import AsyncTcpClient
from wyoming.tts import Synthesize

from tests import compose_model
from tests.stand_ins.llm_server import OrpheusStandIn
from tests.stand_ins.snac_model import write_snac_model
from tests.test_end_to_end import wait_for_port
from tests.wyoming_client import assert_well_formed, read_reply

BUILDAH = ["buildah", "--storage-driver", "vfs"]


def image_config(image: str) -> dict:
    out = subprocess.run(
        ["podman", "--storage-driver", "vfs", "image", "inspect", image],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(out.stdout)[0]


async def run_in(
    container: str, *command: str, mounts: tuple[str, ...] = ()
) -> asyncio.subprocess.Process:
    volumes = [arg for mount in mounts for arg in ("-v", mount)]
    return await asyncio.create_subprocess_exec(
        *BUILDAH, "run", "--isolation", "chroot", *volumes, container, "--", *command
    )


async def check(image: str, config: dict, container: str) -> None:
    healthcheck = config.get("Healthcheck") or config["Config"].get("Healthcheck")
    assert healthcheck and healthcheck["Test"][0] == "CMD", f"no HEALTHCHECK in {image}"
    assert config["Config"]["User"] not in ("", "root", "0"), "the image runs as root"
    # The image's own command line (Wyoming on 10200, HTTP on 5005, as its health check
    # expects), on the host's network; only the LLM and SNAC locations are added.
    port = 10200
    llm = OrpheusStandIn()
    await llm.start()
    with tempfile.TemporaryDirectory() as tmp:
        snac = write_snac_model(Path(tmp), seed=0, noise=False)
        snac.chmod(0o755)
        # What `LLM_URL=... docker compose -f docker/compose.cpu.yaml up` runs, plus the
        # stand-in SNAC (the image would download the real one into /data).
        server = await run_in(
            container,
            *config["Config"]["Entrypoint"], *compose_command(llm.base_url),
            "--snac-model", "/snac",
            mounts=(f"{snac}:/snac:ro",),
        )  # fmt: skip
        try:
            await wait_for_port(port, server, timeout=180)
            # The image's own health check, as Docker would run it.
            health = await run_in(container, *healthcheck["Test"][1:])
            assert await asyncio.wait_for(health.wait(), 60) == 0, "HEALTHCHECK failed"
            client = AsyncTcpClient("127.0.0.1", port)
            await client.connect()
            try:
                await client.write_event(Synthesize(text="Hello from the image.").event())
                reply = await read_reply(client, "audio-stop")
            finally:
                await client.disconnect()
            assert_well_formed(reply)
            assert len(reply.audio) == len(llm.requests[0].frames) * 2048 * 2
            async with (
                aiohttp.ClientSession() as session,
                session.get("http://127.0.0.1:5005/health") as response,
            ):
                assert response.status == 200 and (await response.json())["ready"] is True
            # Docker signals the container's main process; buildah runs it as a descendant.
            os.kill(descendant(server.pid, "wyoming-orpheus"), signal.SIGTERM)
            code = await asyncio.wait_for(server.wait(), 30)
            assert code == 0, f"after SIGTERM the container exited with {code}"
        finally:
            if server.returncode is None:
                server.kill()
                await server.wait()
            await llm.stop()
    print(f"{image}: health check passed, spoke {reply.seconds:.2f} s, HTTP ready, stopped cleanly")


def compose_command(llm_url: str) -> list[str]:
    """The wyoming-orpheus command line of docker/compose.cpu.yaml, as Compose would run it."""
    compose = Path(__file__).resolve().parents[1] / "docker" / "compose.cpu.yaml"
    model = compose_model.load_model([compose], {"LLM_URL": llm_url})
    command: list[str] = model["services"]["wyoming-orpheus"]["command"]
    return command


def descendant(pid: int, name: str) -> int:
    """Find the process below `pid` whose command line holds `name`."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    # The deepest match: buildah's own helpers carry the command line among their arguments.
    found, todo = None, [(child, 1) for child in children.get(pid, [])]
    while todo:
        child, depth = todo.pop()
        with contextlib.suppress(OSError):
            command = Path(f"/proc/{child}/cmdline").read_bytes().decode(errors="replace")
            if name in command and (found is None or depth > found[1]):
                found = (child, depth)
        todo += [(grandchild, depth + 1) for grandchild in children.get(child, [])]
    if found is None:
        raise AssertionError(f"no process {name!r} below {pid}")
    return found[0]


def main(image: str) -> None:
    config = image_config(image)
    container = subprocess.run(
        [*BUILDAH, "from", image], check=True, capture_output=True, text=True
    ).stdout.strip()
    try:
        asyncio.run(check(image, config, container))
    finally:
        subprocess.run([*BUILDAH, "rm", container], check=False, capture_output=True)


if __name__ == "__main__":
    main(sys.argv[1])
