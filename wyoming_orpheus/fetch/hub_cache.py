"""The one place that relies on huggingface_hub's cache layout, which is not its public API.

A GGUF of several GB must resume where an earlier start stopped; huggingface_hub resumes only
within one call (hub.py says why). So the blob is fetched by us into the place the hub cache
keeps it, `{HF_HUB_CACHE}/models--{owner}--{name}/blobs/{etag}` (its lock beside, under
`.locks/`), and hf_hub_download then links it into its snapshot. `repo_folder_name` is
imported from `huggingface_hub.file_download` (not exported at the top); nothing else of its
internals is used. tests/test_canaries.py checks this layout against the installed release.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BlobPlace:
    """Where the hub cache keeps one file's content, and the lock huggingface_hub takes on it."""

    blob: Path
    lock: Path

    @property
    def partial(self) -> Path:
        """Return where an unfinished download of it is kept (`<etag>.incomplete`)."""
        return self.blob.with_name(self.blob.name + ".incomplete")


def blob_place(repo: str, etag: str, cache: Path | None = None) -> BlobPlace:
    """Return where the hub cache (`cache`, else HF_HUB_CACHE) keeps a model file's blob."""
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    root = Path(constants.HF_HUB_CACHE) if cache is None else cache
    folder = repo_folder_name(repo_id=repo, repo_type="model")
    return BlobPlace(root / folder / "blobs" / etag, root / ".locks" / folder / f"{etag}.lock")
