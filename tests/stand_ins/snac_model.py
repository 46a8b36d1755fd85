"""A SNAC 24 kHz model with the real architecture and seeded random weights, saved to disk.

Two widths: the published one (timing tests and benchmarks: the real cost per frame) and a
narrow one for everything else. The narrow model keeps every rate, kernel and dilation, so
its frames, hop, receptive field and the exactness of streamed decoding are those of the real
model; only the channel counts shrink, and a decode costs a few hundredths as much.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from snac import SNAC

# The published config.json of hubertsiuzdak/snac_24khz (REFERENCE.md section 2).
SNAC_24KHZ_CONFIG = {
    "sampling_rate": 24000,
    "encoder_dim": 48,
    "encoder_rates": [2, 4, 8, 8],
    "decoder_dim": 1024,
    "decoder_rates": [8, 8, 4, 2],
    "attn_window_size": None,
    "codebook_size": 4096,
    "codebook_dim": 8,
    "vq_strides": [4, 2, 1],
    "noise": True,
    "depthwise": True,
}
# Width only: latent 4 x 16 = 64 channels (the real model: 768), decoder 64 -> 4 (1024 -> 64).
NARROW = {"encoder_dim": 4, "decoder_dim": 64}


def write_snac_model(
    directory: Path, seed: int = 0, noise: bool = True, narrow: bool = False
) -> Path:
    """Save config.json + pytorch_model.bin the way the hub repository lays them out."""
    directory.mkdir(parents=True, exist_ok=True)
    config = dict(SNAC_24KHZ_CONFIG, noise=noise, **(NARROW if narrow else {}))
    (directory / "config.json").write_text(json.dumps(config), encoding="utf-8")
    torch.manual_seed(seed)
    model = SNAC(**config)
    torch.save(model.state_dict(), directory / "pytorch_model.bin")
    return directory
