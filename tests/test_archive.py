"""Unpacking a release archive: nothing it holds may land outside its folder (issue 31)."""

from __future__ import annotations

import asyncio
import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.stand_ins.llama_release import ReleaseStandIn
from wyoming_orpheus.fetch.archive import ArchiveError, Bounds, unpack
from wyoming_orpheus.fetch.progress import Downloads
from wyoming_orpheus.fetch.release import TAG, ReleaseError, fetch_build

STEPS = "abcdefghijklmnop"


class Tar:
    """Builds a tar archive member by member, as CPython's own tarfile tests do."""

    def __init__(self) -> None:
        self.buffer = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buffer, mode="w")  # noqa: SIM115 - closed in bytes()

    def add(
        self,
        name: str,
        *,
        content: bytes | None = None,
        kind: bytes = tarfile.REGTYPE,
        link: str = "",
        mode: int = 0o644,
    ) -> Tar:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = link
        info.mode = mode
        data = content or b""
        info.size = len(data) if kind == tarfile.REGTYPE else 0
        self.tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
        return self

    def bytes(self) -> bytes:
        self.tar.close()
        return self.buffer.getvalue()


def cve_2025_4517(staging: Path) -> bytes:
    """CPython's regression archive for CVE-2025-4517 (test_realpath_limit_attack), sized for
    a staging folder: a chain of links that expands past PATH_MAX, where os.path.realpath
    stops, and a link out through it that a hard link and a file then use."""
    path_max = os.pathconf(staging, "PC_PATH_MAX")
    component = "d" * ((path_max - len(str(staging)) - 1) // (len(STEPS) + 1))
    tar = Tar()
    path = ""
    for step in STEPS:
        tar.add(os.path.join(path, component), kind=tarfile.DIRTYPE, mode=0o777)
        tar.add(os.path.join(path, step), kind=tarfile.SYMTYPE, link=component)
        path = os.path.join(path, component)
    linkpath = os.path.join(*STEPS, "l" * 254)
    tar.add(linkpath, kind=tarfile.SYMTYPE, link=os.path.join(*[".."] * len(STEPS)))
    tar.add("escape", kind=tarfile.SYMTYPE, link=os.path.join(linkpath, ".."))
    # NOTE: the new file first: Python 3.11.7's data filter writes it above the staging folder.
    tar.add("escape/newfile", content=b"new")
    tar.add("flaglink", kind=tarfile.LNKTYPE, link=os.path.join("escape", "flag"))
    tar.add("flaglink", content=b"overwrite")
    return tar.bytes()


def write(tmp_path: Path, data: bytes, name: str = "build.tar") -> Path:
    archive = tmp_path / name
    archive.write_bytes(data)
    return archive


def everything_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("depth", [1, 4, 12])
def test_the_cve_2025_4517_archive_cannot_write_outside_at_any_staging_depth(
    tmp_path: Path, depth: int
) -> None:
    outside = tmp_path / "outside"
    staging = outside.joinpath(*["deeper" * 3] * depth, "staging")
    staging.mkdir(parents=True)
    flag = outside / "flag"
    flag.write_text("keep me")
    before = everything_under(tmp_path)
    archive = write(tmp_path, cve_2025_4517(staging))
    refused = "lies under|leads out of the folder|not a regular file named"
    with pytest.raises(ArchiveError, match=refused):
        unpack(archive, staging, archive.name)
    assert flag.read_text() == "keep me"
    assert everything_under(tmp_path) == before | {archive.name}  # nothing written anywhere
    assert list(staging.iterdir()) == []


async def test_the_cve_2025_4517_archive_from_a_release_is_refused_and_nothing_is_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cache = tmp_path / "wyoming-orpheus" / "llama.cpp"
    cache.mkdir(parents=True)
    name = f"llama-{TAG}-bin-ubuntu-x64.tar.gz"
    release = ReleaseStandIn(TAG, {name: cve_2025_4517(cache / f".{TAG}-ubuntu-x64.abcdefgh")})
    await release.start()
    try:
        with pytest.raises(ReleaseError, match=f"cannot unpack {name}: .*nothing was cached"):
            await asyncio.to_thread(fetch_build, release.api, TAG, "ubuntu-x64", Downloads())
    finally:
        await release.stop()
    assert not (tmp_path / "newfile").exists() and not (cache / "newfile").exists()
    assert [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] == []


@pytest.mark.parametrize(
    ("archive", "why"),
    [
        (Tar().add("/etc/evil", content=b"x"), "absolute"),
        (Tar().add("a/../../evil", content=b"x"), "climbs out"),
        (Tar().add("up", kind=tarfile.SYMTYPE, link="../outside"), "leads out of the folder"),
        (Tar().add("abs", kind=tarfile.SYMTYPE, link="/etc/passwd"), "only relative targets"),
        (
            Tar()
            .add("d", kind=tarfile.DIRTYPE)
            .add("d/parent", kind=tarfile.SYMTYPE, link="..")
            .add("out", kind=tarfile.SYMTYPE, link="d/parent/.."),
            "leads out of the folder",
        ),
        (  # the link's meaning set by a link named later: the whole tree is read first
            Tar()
            .add("d", kind=tarfile.DIRTYPE)
            .add("d/out", kind=tarfile.SYMTYPE, link="x/../..")
            .add("d/x", kind=tarfile.SYMTYPE, link=".."),
            "leads out of the folder",
        ),
        (Tar().add("loop", kind=tarfile.SYMTYPE, link="loop/x"), "more than 40 links"),
        (
            Tar().add("dir", kind=tarfile.SYMTYPE, link=".").add("dir/file", content=b"x"),
            "lies under 'dir', which is a symlink",
        ),
        (Tar().add("hard", kind=tarfile.LNKTYPE, link="../../etc/passwd"), "climbs out"),
        (Tar().add("hard", kind=tarfile.LNKTYPE, link="later"), "not a regular file named"),
        (
            Tar()
            .add("link", kind=tarfile.SYMTYPE, link="file")
            .add("file", content=b"x")
            .add("hard", kind=tarfile.LNKTYPE, link="link"),
            "not a regular file named",
        ),
        (Tar().add("fifo", kind=tarfile.FIFOTYPE), "not a file, folder or link"),
        (Tar().add("dev", kind=tarfile.CHRTYPE), "not a file, folder or link"),
        (Tar().add("twice", content=b"a").add("twice", content=b"b"), "appears twice"),
        (Tar().add("f", content=b"a").add("f/under", content=b"b"), "which is a file"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_each_unsafe_member_is_refused_before_anything_is_written(
    tmp_path: Path, archive: Tar, why: str
) -> None:
    staging = tmp_path / "staging"
    staging.mkdir()
    path = write(tmp_path, archive.bytes())
    with pytest.raises(ArchiveError, match=why):
        unpack(path, staging, path.name)
    assert list(staging.iterdir()) == []


def test_bombs_stop_at_the_bounds_which_the_error_names(tmp_path: Path) -> None:
    bounds = Bounds(members=50, total_bytes=1 << 20)
    many = Tar()
    for index in range(51):
        many.add(f"f{index}", content=b"x")
    staging = tmp_path / "many"
    staging.mkdir()
    path = write(tmp_path, many.bytes(), "many.tar")
    with pytest.raises(ArchiveError, match="more than 50 entries"):
        unpack(path, staging, path.name, bounds)
    assert list(staging.iterdir()) == []

    zeros = io.BytesIO()  # 2 MiB of zeros packed into a few kB
    with tarfile.open(fileobj=zeros, mode="w:gz") as tar:
        info = tarfile.TarInfo("zeros")
        info.size = 2 << 20
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    assert len(zeros.getvalue()) < 10_000
    path = write(tmp_path, zeros.getvalue(), "zeros.tar.gz")
    with pytest.raises(ArchiveError, match=f"more than {1 << 20} bytes"):
        unpack(path, tmp_path / "many", path.name, bounds)

    # A zip counts what it really writes, whatever its entries declare.
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as archive:
        for index in range(3):
            archive.writestr(f"z{index}", bytes(600_000))
    path = write(tmp_path, packed.getvalue(), "zeros.zip")
    staging = tmp_path / "zip"
    staging.mkdir()
    with pytest.raises(ArchiveError, match="bytes"):
        unpack(path, staging, path.name, bounds)


def test_a_real_builds_shape_unpacks_with_its_links_and_modes(tmp_path: Path) -> None:
    archive = (
        Tar()
        .add("llama-b1/", kind=tarfile.DIRTYPE)
        .add("llama-b1/llama-server", content=b"#!/bin/sh\n", mode=0o755)
        .add("llama-b1/libggml.so.0.9.4", content=b"lib", mode=0o755)
        .add("llama-b1/libggml.so.0", kind=tarfile.SYMTYPE, link="libggml.so.0.9.4")
        .add("llama-b1/libggml.so", kind=tarfile.SYMTYPE, link="./libggml.so.0")
        .add("llama-b1/LICENSE", content=b"MIT", mode=0o600)
        .add("llama-b1/COPYING", kind=tarfile.LNKTYPE, link="llama-b1/LICENSE")
        .add("llama-b1/sub/up", kind=tarfile.SYMTYPE, link="../LICENSE")
    )
    path = write(tmp_path, archive.bytes())
    staging = tmp_path / "staging"
    staging.mkdir()
    unpack(path, staging, path.name)
    root = staging / "llama-b1"
    assert os.access(root / "llama-server", os.X_OK)
    assert stat.S_IMODE((root / "LICENSE").stat().st_mode) & 0o111 == 0
    assert (root / "libggml.so").read_bytes() == b"lib"
    assert os.readlink(root / "libggml.so.0") == "libggml.so.0.9.4"
    assert (root / "COPYING").read_bytes() == b"MIT"
    assert (root / "COPYING").stat().st_ino == (root / "LICENSE").stat().st_ino
    assert (root / "sub" / "up").read_bytes() == b"MIT"


def test_a_zip_keeps_modes_and_links_and_refuses_links_out(tmp_path: Path) -> None:
    def zipped(*entries: tuple[str, bytes, int]) -> Path:
        packed = io.BytesIO()
        with zipfile.ZipFile(packed, "w") as archive:
            for name, data, mode in entries:
                info = zipfile.ZipInfo(name)
                info.external_attr = mode << 16
                archive.writestr(info, data)
        return write(tmp_path, packed.getvalue(), "build.zip")

    good = zipped(
        ("bin/llama-server", b"#!/bin/sh\n", stat.S_IFREG | 0o755),
        ("bin/libx.so.1", b"lib", stat.S_IFREG | 0o644),
        ("bin/libx.so", b"libx.so.1", stat.S_IFLNK | 0o777),
    )
    staging = tmp_path / "good"
    staging.mkdir()
    unpack(good, staging, good.name)
    assert os.access(staging / "bin" / "llama-server", os.X_OK)
    assert os.readlink(staging / "bin" / "libx.so") == "libx.so.1"

    bad = zipped(("bin/out", b"../../x", stat.S_IFLNK | 0o777))
    staging = tmp_path / "bad"
    staging.mkdir()
    with pytest.raises(ArchiveError, match="leads out of the folder"):
        unpack(bad, staging, bad.name)
    assert list(staging.iterdir()) == []
