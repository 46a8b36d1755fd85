"""Unpacking a downloaded archive (tar or zip) so that nothing it holds can leave its folder.

NOTE: issue 31: tarfile's `filter="data"` resolves links through the file system
(`os.path.realpath`), which stops expanding at PATH_MAX: an archive shaped like CPython's
regression test for CVE-2025-4517 gets a link out of the folder past it on every Python before
3.11.13 / 3.12.11 / 3.13.4, and 3.11.0-3.11.3 have no filter at all. So every member is checked
here, on the archive's own tree and never through the file system, before anything is written:

- names relative, without `..`, and never through a symlink the archive makes;
- only folders, regular files, symlinks and hard links (no devices, FIFOs or sparse tricks);
- a symlink's target resolved lexically, through the archive's other symlinks, inside the folder;
- a hard link only to a regular file named earlier in the archive;
- at most `Bounds` members and bytes unpacked, the bytes counted as they are written.

Then folders and files are written (O_EXCL | O_NOFOLLOW), hard links, and symlinks last, so no
write ever passes through a link.
"""

from __future__ import annotations

import os
import stat
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal


@dataclass(frozen=True)
class Bounds:
    """How much one archive may unpack to."""

    members: int = 2_000
    """Entries (a llama.cpp build has ~20-60)."""
    total_bytes: int = 1 << 30
    """Bytes unpacked, counted as written (a llama.cpp build is ~30-150 MB)."""


BOUNDS = Bounds()
MAX_LINK_HOPS = 40
"""Symlinks followed while resolving one target (the kernel's own limit)."""
MAX_LINK_TARGET = 4096
"""The longest symlink target read from a zip (a zip stores it as the entry's content)."""
_COPY_BLOCK = 1 << 20

Kind = Literal["dir", "file", "symlink", "hardlink"]


class ArchiveError(Exception):
    """The archive cannot be unpacked safely; the message names the member and the rule."""


@dataclass(frozen=True)
class Member:
    """One entry of an archive, as checked: its path parts, kind and what it points to."""

    parts: tuple[str, ...]
    kind: Kind
    size: int = 0
    executable: bool = False
    target: str = ""
    """A symlink's target as written, or a hard link's member path."""
    open: Callable[[], IO[bytes]] | None = None

    @property
    def name(self) -> str:
        """Return the member's path inside the archive."""
        return "/".join(self.parts)


def unpack(archive: Path, into: Path, name: str, bounds: Bounds = BOUNDS) -> None:
    """Unpack a `.zip` or a tar archive into an empty folder after checking every member."""
    if name.endswith(".zip"):
        with zipfile.ZipFile(archive) as packed:
            _write(_checked(_zip_members(packed), bounds), into, bounds)
    else:
        with tarfile.open(archive) as tar:
            _write(_checked(_tar_members(tar), bounds), into, bounds)


def _tar_members(tar: tarfile.TarFile) -> Iterator[Member]:
    for info in tar:  # read header by header: a bomb of members stops at the bound
        parts = _parts(info.name)
        if info.isdir():
            yield Member(parts, "dir")
        elif info.isreg() and not info.issparse():
            yield Member(
                parts,
                "file",
                info.size,
                bool(info.mode & 0o111),
                open=lambda info=info: _extracted(tar, info),  # type: ignore[misc]
            )
        elif info.issym():
            yield Member(parts, "symlink", target=info.linkname)
        elif info.islnk():
            yield Member(parts, "hardlink", target="/".join(_parts(info.linkname)))
        else:
            raise ArchiveError(f"{info.name!r} is not a file, folder or link (a device or FIFO)")


def _extracted(tar: tarfile.TarFile, info: tarfile.TarInfo) -> IO[bytes]:
    source = tar.extractfile(info)
    if source is None:  # pragma: no cover - only for non-regular members, refused above
        raise ArchiveError(f"{info.name!r} has no content")
    return source


def _zip_members(packed: zipfile.ZipFile) -> Iterator[Member]:
    for info in packed.infolist():
        parts = _parts(info.filename)
        mode = info.external_attr >> 16
        if info.is_dir() or stat.S_ISDIR(mode):
            yield Member(parts, "dir")
        elif stat.S_ISLNK(mode):
            if info.file_size > MAX_LINK_TARGET:
                raise ArchiveError(f"{info.filename!r} is a link with an over-long target")
            target = packed.read(info).decode("utf-8", "replace")
            yield Member(parts, "symlink", target=target)
        elif stat.S_IFMT(mode) in (0, stat.S_IFREG):  # no type bits: a plain file (DOS)
            yield Member(
                parts,
                "file",
                info.file_size,
                bool(mode & 0o111),
                open=lambda info=info: packed.open(info),  # type: ignore[misc]
            )
        else:
            raise ArchiveError(f"{info.filename!r} is not a file, folder or link")


def _parts(name: str) -> tuple[str, ...]:
    """Split a member's name into parts; refuse absolute names, `..` and NUL."""
    if name.startswith(("/", "\\")) or "\x00" in name or "\\" in name or ":" in name[:2]:
        raise ArchiveError(f"member {name!r} has an absolute or unusable name")
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise ArchiveError(f"member {name!r} climbs out with '..'")
    return parts


def _checked(members: Iterator[Member], bounds: Bounds) -> list[Member]:
    """Read every member, check the whole tree, and return the members in writing order."""
    tree: dict[tuple[str, ...], Member] = {}
    listed: list[Member] = []
    total = 0
    for member in members:
        if len(listed) >= bounds.members:
            raise ArchiveError(f"it holds more than {bounds.members} entries (the bound)")
        total += member.size
        if total > bounds.total_bytes:
            raise _too_big(bounds)
        if not member.parts:
            if member.kind == "dir":
                continue  # "./" itself
            raise ArchiveError("an entry has an empty name")
        _add(tree, member)
        listed.append(member)
    for member in listed:
        _check_parents(tree, member)
        if member.kind == "symlink":
            _resolve(tree, member.parts[:-1], member.target, member.name, 0)
    order: dict[Kind, int] = {"dir": 0, "file": 0, "hardlink": 1, "symlink": 2}
    return sorted(listed, key=lambda m: order[m.kind])  # stable: archive order within a kind


def _add(tree: dict[tuple[str, ...], Member], member: Member) -> None:
    """Enter a member into the tree; a name may only appear twice as a folder."""
    earlier = tree.get(member.parts)
    if earlier is not None:
        if earlier.kind == member.kind == "dir":
            return
        raise ArchiveError(f"{member.name!r} appears twice")
    if member.kind == "hardlink":
        target = tree.get(tuple(member.target.split("/")))
        if target is None or target.kind != "file":
            raise ArchiveError(
                f"{member.name!r} is a hard link to {member.target!r}, which is not a regular "
                "file named earlier in the archive"
            )
    tree[member.parts] = member


def _check_parents(tree: dict[tuple[str, ...], Member], member: Member) -> None:
    """Refuse a member whose path passes through anything but a folder."""
    for depth in range(1, len(member.parts)):
        parent = tree.get(member.parts[:depth])
        if parent is not None and parent.kind != "dir":
            raise ArchiveError(
                f"{member.name!r} lies under {parent.name!r}, which is a {parent.kind}, not a "
                "folder"
            )


def _resolve(
    tree: dict[tuple[str, ...], Member],
    base: tuple[str, ...],
    target: str,
    link: str,
    hops: int,
) -> tuple[str, ...]:
    """Resolve a symlink target from its folder, through the archive's links, inside the root."""
    if not target or target.startswith("/") or "\x00" in target:
        raise ArchiveError(f"{link!r} links to {target!r}: only relative targets are allowed")
    where = list(base)
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not where:
                raise ArchiveError(f"{link!r} links to {target!r}, which leads out of the folder")
            where.pop()
            continue
        where.append(part)
        node = tree.get(tuple(where))
        if node is not None and node.kind == "symlink":
            if hops >= MAX_LINK_HOPS:
                raise ArchiveError(f"{link!r} goes through more than {MAX_LINK_HOPS} links")
            where = list(_resolve(tree, tuple(where[:-1]), node.target, link, hops + 1))
    return tuple(where)


def _too_big(bounds: Bounds) -> ArchiveError:
    return ArchiveError(f"it unpacks to more than {bounds.total_bytes} bytes (the bound)")


def _write(members: list[Member], into: Path, bounds: Bounds) -> None:
    """Write checked members into `into`, counting the bytes actually written."""
    written = 0
    for member in members:
        path = into.joinpath(*member.parts)
        if member.kind == "dir":
            path.mkdir(parents=True, exist_ok=True)
        elif member.kind == "file":
            path.parent.mkdir(parents=True, exist_ok=True)
            written = _write_file(member, path, written, bounds)
        elif member.kind == "hardlink":
            os.link(into.joinpath(*member.target.split("/")), path, follow_symlinks=False)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(member.target, path)


def _write_file(member: Member, path: Path, written: int, bounds: Bounds) -> int:
    assert member.open is not None
    mode = 0o755 if member.executable else 0o644
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    with member.open() as source, os.fdopen(os.open(path, flags, mode), "wb") as sink:
        while block := source.read(_COPY_BLOCK):
            written += len(block)
            if written > bounds.total_bytes:
                raise _too_big(bounds)
            sink.write(block)
    return written
