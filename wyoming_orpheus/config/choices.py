"""The fixed vocabularies settings choose from, and the defaults that are tables."""

from __future__ import annotations

LLM_APIS = ("openai", "ollama")
PROMPT_FORMATS = ("training", "audio")
DEVICES = ("auto", "cpu", "cuda", "mps")
DECODE_MODES = ("auto", "windowed", "stateful")
LOG_FORMAT_DEFAULT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# What the spoken-form normalizer writes out; each can be turned off on its own.
NORMALIZE_CATEGORIES = (
    "urls",
    "currency",
    "dates",
    "times",
    "units",
    "ordinals",
    "abbreviations",
    "numbers",
    "symbols",
    "punctuation",
)
URL_MODES = ("speak", "drop")
PLAYOUT_MODES = ("adaptive", "immediate")
# The GGUF that managed mode runs when none is named (Orpheus 3B fine-tune, Q8_0).
LLM_GGUF_DEFAULT = "lex-au/Orpheus-3b-FT-Q8_0.gguf"
LLAMA_RELEASE_API_DEFAULT = "https://api.github.com/repos/ggml-org/llama.cpp/releases"
ALL_GPU_LAYERS = 999
"""What llama-server reads as 'every layer on the GPU' (the model has far fewer)."""

# OpenAI's voice names -> Orpheus voices, matched by character (gender, register).
OPENAI_VOICES_DEFAULT = {
    "alloy": "tara",
    "ash": "dan",
    "ballad": "zac",
    "coral": "jess",
    "echo": "leo",
    "fable": "mia",
    "onyx": "leo",
    "nova": "leah",
    "sage": "zoe",
    "shimmer": "mia",
    "verse": "dan",
}

DEFAULT_SLOTS = 4
"""Slots assumed of an LLM server that does not say how many (llama-server's default -np)."""
