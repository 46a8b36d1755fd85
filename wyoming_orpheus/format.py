"""The Orpheus format, in one place: what its tokens mean and what audio they make.

Orpheus speaks by emitting SNAC codes as `<custom_token_N>` text (REFERENCE.md 1): seven tokens
make one frame, a frame decodes to 2048 samples at 24 kHz, and everything downstream is 16-bit
mono PCM. Every floor reads these from here; this module imports nothing (not torch, not numpy),
so the pure rules built on it stay light.
"""

from __future__ import annotations

SAMPLE_RATE = 24000
"""Samples per second of SNAC's 24 kHz model, and of every byte this server sends."""
SAMPLE_WIDTH = 2
"""Bytes per sample of the PCM both doors send (int16)."""
CHANNELS = 1
SAMPLES_PER_FRAME = 2048
"""Samples one SNAC frame decodes to (hop 512 x the coarsest level's 4)."""
TOKENS_PER_FRAME = 7
"""Audio tokens per frame: 1 code of level 0, 2 of level 1, 4 of level 2, interleaved."""
CODES_PER_SLOT = 4096
"""Each frame position (slot) has its own 4096-code range of token numbers."""
CUSTOM_TOKEN_OFFSET = 128256
"""Token id of `<custom_token_0>`: the servers print id 128256 + N as `<custom_token_N>`."""
TOKEN_PREFIX = "<custom_token_"
AUDIO_TOKEN_BASE = 10
"""`<custom_token_10>` is slot 0, code 0."""
END_OF_SPEECH = 2
"""`<custom_token_2>` (id 128258): the model's end of speech."""
REAL_TIME_TOKENS_PER_SECOND = TOKENS_PER_FRAME * SAMPLE_RATE / SAMPLES_PER_FRAME
"""Audio tokens per second that make speech in real time (7 per 2048 samples at 24 kHz: ~82)."""
FRAME_SECONDS = SAMPLES_PER_FRAME / SAMPLE_RATE
"""Seconds of audio in one frame (~85 ms)."""

Frame = tuple[int, int, int, int, int, int, int]
"""One frame's seven codes, each 0..4095, in slot order."""


def token(number: int) -> str:
    """Return the text a server prints for `<custom_token_N>`."""
    return f"{TOKEN_PREFIX}{number}>"


def is_audio_token(number: int) -> bool:
    """Tell whether `<custom_token_N>` is a SNAC code (slot 0..6, code 0..4095)."""
    return AUDIO_TOKEN_BASE <= number < AUDIO_TOKEN_BASE + TOKENS_PER_FRAME * CODES_PER_SLOT
