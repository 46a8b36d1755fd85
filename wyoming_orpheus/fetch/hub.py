"""Model files from the Hugging Face hub: which file a spec names, and fetching it with progress.

Downloads go through huggingface_hub, so they share the hub cache (`HF_HOME`, `HF_HUB_CACHE`)
and honour `HF_ENDPOINT`, `HF_TOKEN` and `HF_HUB_OFFLINE`. A file appears in the cache only
once it is whole: an interrupted download stays a `<etag>.incomplete` blob that the next
start resumes with a Range request.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from .download import DownloadError, resume_into
from .hub_cache import blob_place
from .progress import Download, Downloads, first_line, progress_class

_LOGGER = logging.getLogger(__name__)

_REPO_RE = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


class HubError(Exception):
    """A model file cannot be had; the message says why and what to do."""


@dataclass(frozen=True)
class HubFile:
    """A file in a hub repository, or a pattern that picks one."""

    repo: str
    filename: str | None = None
    """The file; None picks the repository's single GGUF (or the one matching tag)."""
    tag: str | None = None
    """A quantization tag as llama.cpp's `-hf owner/repo:TAG` reads it (Q4_K_M)."""


def parse_gguf_spec(spec: str) -> Path | HubFile:
    """Read `--llm-gguf`: a local path, `owner/repo`, `owner/repo:TAG` or `owner/repo/f.gguf`."""
    text = spec.strip()
    local = Path(text).expanduser()
    if local.exists() or text.startswith(("/", ".", "~")):
        if not local.is_file():
            raise HubError(f"GGUF file {local} does not exist")
        return local
    repo, _, tag = text.partition(":")
    parts = repo.split("/")
    if len(parts) > 2 and not tag:
        repo, filename = "/".join(parts[:2]), "/".join(parts[2:])
        if _REPO_RE.fullmatch(repo) and filename.endswith(".gguf"):
            return HubFile(repo, filename=filename)
    if _REPO_RE.fullmatch(repo) and (not tag or re.fullmatch(r"[\w.-]+", tag)):
        return HubFile(repo, tag=tag or None)
    raise HubError(
        f"llm_gguf={spec!r} is neither an existing file nor a hub id (owner/repo, "
        "owner/repo:Q4_K_M or owner/repo/file.gguf)"
    )


def fetch_gguf(spec: str, downloads: Downloads) -> Path:
    """Return a local path of the GGUF that spec names, downloading it if needed."""
    parsed = parse_gguf_spec(spec)
    if isinstance(parsed, Path):
        return parsed
    filename = parsed.filename or pick_gguf(parsed, _repo_files(parsed.repo))
    return fetch_file(parsed.repo, filename, downloads)


def pick_gguf(wanted: HubFile, files: list[str]) -> str:
    """Pick the one GGUF of a repository (matching the tag, if one was given)."""
    # llama.cpp's -hf skips the vision projectors that multimodal repositories carry.
    ggufs = sorted(f for f in files if f.endswith(".gguf") and "mmproj" not in f.lower())
    if wanted.tag:
        # The tag as a whole word before the extension or a dash: Q4_K never picks Q4_K_M.
        pattern = re.compile(rf"(?<![A-Za-z0-9]){re.escape(wanted.tag)}(?=[.-])", re.IGNORECASE)
        ggufs = [f for f in ggufs if pattern.search(f.rsplit("/", 1)[-1])]
    if len(ggufs) == 1:
        return ggufs[0]
    what = f"GGUF files tagged {wanted.tag}" if wanted.tag else "GGUF files"
    if not ggufs:
        raise HubError(f"hub repository {wanted.repo} has no {what}")
    names = ", ".join(f"{wanted.repo}/{f}" for f in ggufs)
    raise HubError(f"hub repository {wanted.repo} has several {what}; name one: {names}")


def fetch_file(repo: str, filename: str, downloads: Downloads) -> Path:
    """Download one file of a hub repository into the hub cache (or find it there)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    download = downloads.start(f"{repo}/{filename}")
    try:
        _resume_blob(repo, filename, download)
        path = hf_hub_download(repo, filename, tqdm_class=progress_class(download))
    except GatedRepoError:
        raise HubError(f"hub repository {repo} is gated: accept its terms, set HF_TOKEN") from None
    except RepositoryNotFoundError:
        raise HubError(_no_repo(repo)) from None
    except EntryNotFoundError:
        raise HubError(f"hub repository {repo} has no file {filename}") from None
    except LocalEntryNotFoundError:
        raise HubError(
            f"cannot download {repo}/{filename}: the hub is unreachable (or HF_HUB_OFFLINE is "
            "set) and the file is not in the hub cache; connect once, or give a local path"
        ) from None
    except HfHubHTTPError as err:
        raise HubError(f"cannot download {repo}/{filename}: {first_line(err)}") from None
    except OSError as err:
        # A full disk, a read-only cache: the partial file stays `.incomplete`, never whole.
        raise HubError(
            f"cannot save {repo}/{filename} in the hub cache: {err.strerror or err}; free "
            "space or point HF_HUB_CACHE elsewhere"
        ) from None
    finally:
        download.finished = True
    return Path(str(path))


def _resume_blob(repo: str, filename: str, download: Download) -> None:
    """Download the file's blob into the hub cache, resuming what an earlier start left.

    NOTE: huggingface_hub 2 resumes only within one call: it writes to a temporary file of a
    name unique to the process and deletes it on failure, so a restart (a power cut, a
    Ctrl-C) fetched a multi-GB GGUF from the start. Here the blob is fetched first to
    `blobs/<etag>.incomplete` (download.py), moved to `blobs/<etag>` once whole, and
    hf_hub_download then only links it into the snapshot (the layout: hub_cache.py).
    """
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.utils import build_hf_headers

    if constants.HF_HUB_OFFLINE:
        return  # hf_hub_download answers from the cache, or says it cannot
    try:
        meta = get_hf_file_metadata(hf_hub_url(repo, filename))
    except HfHubHTTPError:
        raise  # no such repository or file, gated, ...: the caller says which
    except Exception:  # unreachable (huggingface_hub's HTTP client errors)
        return  # hf_hub_download then falls back to the cache, or says why it cannot
    if not meta.etag or meta.xet_file_data is not None:
        return  # Xet storage has a resumable client of its own
    place = blob_place(repo, meta.etag)
    if place.blob.exists():
        return
    place.blob.parent.mkdir(parents=True, exist_ok=True)
    place.lock.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(place.lock), place.partial.open("ab") as sink:
        if meta.size is not None and sink.tell() > meta.size:
            sink.truncate(0)  # not a prefix of this file: start over
        try:
            resume_into(meta.location, sink, download, size=meta.size, headers=build_hf_headers())
        except DownloadError as err:
            raise HubError(f"cannot download {repo}/{filename}: {err}") from None
    place.partial.replace(place.blob)


def _repo_files(repo: str) -> list[str]:
    """List a repository's files from the hub, or from the cache when the hub is out of reach."""
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    try:
        info = HfApi().model_info(repo, timeout=30)
        return [s.rfilename for s in info.siblings or []]
    except GatedRepoError:
        raise HubError(f"hub repository {repo} is gated: accept its terms, set HF_TOKEN") from None
    except RepositoryNotFoundError:
        raise HubError(_no_repo(repo)) from None
    except HfHubHTTPError as err:
        raise HubError(f"cannot list hub repository {repo}: {first_line(err)}") from None
    except Exception as err:  # offline or unreachable (huggingface_hub's HTTP client errors)
        _LOGGER.info("Hub not reachable (%s); looking for %s in the cache", first_line(err), repo)
    try:
        folder = Path(snapshot_download(repo, local_files_only=True, allow_patterns=["*.gguf"]))
    except Exception:
        raise HubError(
            f"cannot list hub repository {repo}: the hub is unreachable (or HF_HUB_OFFLINE is "
            "set) and nothing of it is in the hub cache; connect once, or give a local path"
        ) from None
    return [str(p.relative_to(folder)) for p in folder.rglob("*.gguf")]


def _no_repo(repo: str) -> str:
    return f"no hub repository {repo} (or it is private: set HF_TOKEN)"
