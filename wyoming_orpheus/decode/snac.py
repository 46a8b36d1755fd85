"""SNAC: loading it (a local directory or the hub) and decoding whole frame batches."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch.nn.utils import parametrize

from ..errors import OrpheusError
from ..fetch.hub import HubError, fetch_file
from ..fetch.progress import Downloads

_LOGGER = logging.getLogger(__name__)

SNAC_FILES = ("config.json", "pytorch_model.bin")

# Frame slot -> (level, position within the frame): slot 0 is level 0; slots 1 and 4 are
# level 1; slots 2, 3, 5, 6 are level 2, in that order (REFERENCE.md section 1).
_LEVEL1_SLOTS = [1, 4]
_LEVEL2_SLOTS = [2, 3, 5, 6]


class CodecLoadError(OrpheusError):
    """SNAC could not be loaded; the message says what to fix."""

    code = "codec-error"


def load_snac(path_or_id: str, device: str, downloads: Downloads | None = None) -> torch.nn.Module:
    """Load SNAC from a local directory or a hub id, ready for fast inference."""
    from snac import SNAC  # import here: snac pulls in huggingface_hub

    local = local_snac_dir(path_or_id) or _fetch_snac(path_or_id, downloads or Downloads())
    try:
        model = SNAC.from_pretrained(str(local))
    except Exception as err:
        raise CodecLoadError(
            f"cannot load SNAC model '{path_or_id}': {err}. Give --snac-model a local directory "
            "with config.json and pytorch_model.bin, or a reachable hub id."
        ) from err
    model.encoder = torch.nn.Identity()  # TTS only decodes; free the encoder's memory
    _remove_weight_norm(model)
    return model.eval().to(device)


def local_snac_dir(path_or_id: str) -> Path | None:
    """Return the local SNAC directory it names, None for a hub id; a bad path raises."""
    local = Path(path_or_id).expanduser()
    if local.exists() and not (local / "config.json").is_file():
        raise CodecLoadError(f"SNAC directory {local} has no config.json")
    if not local.exists() and path_or_id.startswith(("/", ".", "~")):
        raise CodecLoadError(f"SNAC directory {local} does not exist")
    return local if local.exists() else None


def _fetch_snac(repo: str, downloads: Downloads) -> Path:
    """Fetch SNAC's two files by the same path as the GGUF (cache, resume, progress)."""
    try:
        for name in SNAC_FILES:
            path = fetch_file(repo, name, downloads)
    except HubError as err:
        raise CodecLoadError(
            f"cannot load SNAC model '{repo}': {err}. Give --snac-model a local directory "
            "with config.json and pytorch_model.bin, or a reachable hub id."
        ) from None
    return path.parent


def _remove_weight_norm(model: torch.nn.Module) -> None:
    """Fold weight-norm parametrizations into plain weights once.

    NOTE: SNAC recomputes weight norm on every call; folding gives the same function
    and was 20-30% faster on CPU (REFERENCE.md section 2).
    """
    for module in model.modules():
        if parametrize.is_parametrized(module):
            names = list(module.parametrizations.keys())  # type: ignore[union-attr,operator]
            for name in names:
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)


def frames_to_codes(frames: np.ndarray) -> list[np.ndarray]:
    """Split (B, T, 7) frame codes into SNAC's three levels: (B,T), (B,2T), (B,4T)."""
    batch = frames.shape[0]
    return [
        frames[:, :, 0],
        frames[:, :, _LEVEL1_SLOTS].reshape(batch, -1),
        frames[:, :, _LEVEL2_SLOTS].reshape(batch, -1),
    ]


def decode_batch(model: torch.nn.Module, frames: np.ndarray, device: str) -> np.ndarray:
    """Decode (B, T, 7) frames into (B, T*2048) float32 samples."""
    codes = [torch.from_numpy(level).to(device) for level in frames_to_codes(frames)]
    with torch.inference_mode():
        audio: torch.Tensor = model.decode(codes)  # type: ignore[operator]
    return audio[:, 0, :].float().cpu().numpy()
