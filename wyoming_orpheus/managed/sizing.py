"""How managed mode sizes llama-server: its slots and context, and its command line."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..config import ALL_GPU_LAYERS, DEFAULT_SLOTS, Settings
from ..upstream.completion import max_tokens_for
from .binary import HOST

PROMPT_TOKENS_OVERHEAD = 32
"""The prompt's control tokens and the voice name, beyond one token per text character."""

# Options whose values managed mode chooses unless the user passes them.
_SIZING = {
    "parallel": ("-np", "--parallel"),
    "ctx": ("-c", "--ctx-size"),
    "gpu_layers": ("-ngl", "--gpu-layers", "--n-gpu-layers"),
}
BATCHING_OPTIONS = (
    (("-kvu", "--kv-unified"), ("-no-kvu", "--no-kv-unified")),
    (("-bs", "--backend-sampling"), ()),
)
"""Options that raise llama-server's throughput with several requests in flight (issue 29):
one KV cache shared by every slot (a slot is not limited to -c / -np, and a short request
leaves room for a long one), and sampling on the GPU backend. Each is passed only when the
binary's --help lists it and the user did not pass it (or its negation) themselves."""


SENTENCE_SLOTS = DEFAULT_SLOTS
"""Slots for an answer's sentence requests side by side (the upstream `slots` default)."""


@dataclass(frozen=True)
class Sizing:
    """How many requests llama-server runs at once, and the context each one needs."""

    parallel: int
    ctx_per_slot: int
    gpu_layers: int

    @property
    def ctx(self) -> int:
        """Return the whole context: llama-server divides `-c` among its `-np` slots."""
        return self.parallel * self.ctx_per_slot


def size_for(settings: Settings, max_concurrent: int, gpu: bool) -> Sizing:
    """Size the slots and context from what one synthesis may ask of the LLM at once."""
    # Each synthesis streams one segment and starts the next ones ahead (lookahead).
    parallel = max_concurrent * (1 + settings.speech.lookahead_segments)
    if settings.playout.playout == "adaptive" and settings.playout.playout_sentences:
        # Below real time an answer's sentences generate side by side (issue 29): as many
        # at once as the plans expect of an upstream by default, llama-server's own default.
        parallel = max(parallel, SENTENCE_SLOTS)
    longest = settings.speech.segment_max_chars
    generated = max_tokens_for("x" * longest, settings.sampling.max_tokens)
    per_slot = generated + longest + PROMPT_TOKENS_OVERHEAD
    per_slot = -(-per_slot // 256) * 256  # llama.cpp allocates in blocks; keep it round
    layers = settings.managed.llm_gpu_layers
    if layers is None:
        layers = ALL_GPU_LAYERS if gpu else 0
    return Sizing(parallel, per_slot, layers)


def build_command(
    binary: Path,
    model: Path,
    port: int,
    sizing: Sizing,
    extra: Sequence[str],
    options: frozenset[str] = frozenset(),
) -> list[str]:
    """The llama-server command line: ours first, the user's options win where they overlap.

    `options`: what the binary's --help lists; a batching option is passed only if listed.
    """
    given = {arg.split("=", 1)[0] for arg in extra}
    values = {"parallel": sizing.parallel, "ctx": sizing.ctx, "gpu_layers": sizing.gpu_layers}
    command = [str(binary), "-m", str(model), "--host", HOST, "--port", str(port)]
    for key, names in _SIZING.items():
        if not given.intersection(names):
            command += [names[0], str(values[key])]
    for names, negations in BATCHING_OPTIONS:
        if names[0] in options and not given.intersection((*names, *negations)):
            command.append(names[0])
    return [*command, *extra]


def slots_given(extra: Sequence[str], sizing: Sizing) -> int:
    """Return the requests llama-server runs at once: ours, or the user's `-np`."""
    for index, arg in enumerate(extra):
        name, _, value = arg.partition("=")
        if name in _SIZING["parallel"]:
            value = value or (extra[index + 1] if index + 1 < len(extra) else "")
            return int(value) if value.isdigit() and int(value) > 0 else sizing.parallel
    return sizing.parallel
