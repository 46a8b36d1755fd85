"""Hardware tiers: what the decode device is, and the batch, threads and limits it gets."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace

import torch

from ..config import DecoderSettings

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeviceFacts:
    """What was found about the decode device."""

    kind: str
    """cuda, mps or cpu."""
    name: str
    memory_gb: float = 0.0
    """GPU memory (CUDA only)."""
    compute_capability: tuple[int, int] = (0, 0)
    cpu_count: int = 1


@dataclass(frozen=True)
class Tier:
    """How the decoder runs on this hardware."""

    name: str
    device: str
    """torch device string."""
    batch_size: int
    """Most decode windows in one batched call."""
    collect_ms: float
    """How long the decode worker waits for more windows to batch."""
    threads: int
    """torch intra-op threads (CPU work)."""
    compile: bool
    max_concurrent: int
    """Syntheses at once, across both front doors."""
    decode_mode: str = "windowed"
    """windowed: exact context windows, batched across streams (GPUs, where launches cost
    more than compute); stateful: per-layer caches, each sample computed once (CPUs, where
    compute is what costs)."""
    workers: int = 1
    """Decode worker threads; each runs whole steps with `threads` intra-op threads."""


def detect_device(requested: str) -> DeviceFacts:
    """Inspect the machine; `requested` is auto, cpu, cuda or mps."""
    cpus = os.cpu_count() or 1
    if requested in ("auto", "cuda") and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return DeviceFacts(
            kind="cuda",
            name=props.name,
            memory_gb=props.total_memory / 2**30,
            compute_capability=(props.major, props.minor),
            cpu_count=cpus,
        )
    if requested == "cuda":
        raise RuntimeError("device=cuda was asked for but PyTorch sees no CUDA GPU")
    if requested in ("auto", "mps") and torch.backends.mps.is_available():
        return DeviceFacts(kind="mps", name="Apple MPS", cpu_count=cpus)
    if requested == "mps":
        raise RuntimeError("device=mps was asked for but PyTorch sees no Apple MPS device")
    return DeviceFacts(kind="cpu", name="CPU", cpu_count=cpus)


def choose_tier(facts: DeviceFacts) -> Tier:
    """Pick the tier for the device (pure: tested with injected facts)."""
    if facts.kind == "cuda":
        major = facts.compute_capability[0]
        # NOTE: the same thresholds the Orpheus-FastAPI project used for its "high-end" mode.
        if facts.memory_gb >= 16 or major >= 8 or (facts.memory_gb >= 12 and major >= 7):
            return Tier("cuda-high", "cuda", 32, 10.0, 1, False, 16)
        if facts.memory_gb >= 8:
            return Tier("cuda-mid", "cuda", 16, 10.0, 1, False, 8)
        return Tier("cuda-entry", "cuda", 8, 10.0, 1, False, 4)
    if facts.kind == "mps":
        return Tier("mps", "mps", 8, 5.0, 1, False, 4, "stateful")
    # NOTE: one single-threaded decode worker per core beats one worker with a thread per core
    # (no intra-op hand-offs or spin-waits: 4 streams on 2 cores keep real time, BENCHMARKS.md);
    # a core decodes ~2.7 streams in real time, so allow 2 per core. Batching gains little on
    # CPU, so collect briefly.
    cores = max(1, facts.cpu_count)
    return Tier("cpu", "cpu", 4, 2.0, 1, False, 2 * cores, "stateful", workers=cores)


def apply_overrides(tier: Tier, settings: DecoderSettings) -> Tier:
    """Apply the config's explicit choices on top of the detected tier."""
    changes: dict[str, object] = {}
    if settings.decode_batch_size is not None:
        changes["batch_size"] = settings.decode_batch_size
    if settings.decode_threads is not None:
        changes["threads"] = settings.decode_threads
    if settings.decode_workers is not None:
        changes["workers"] = settings.decode_workers
    if settings.compile is not None:
        changes["compile"] = settings.compile
    if settings.max_concurrent is not None:
        changes["max_concurrent"] = settings.max_concurrent
    if settings.decode_mode != "auto":
        changes["decode_mode"] = settings.decode_mode
    return replace(tier, **changes) if changes else tier  # type: ignore[arg-type]


def select_tier(settings: DecoderSettings) -> tuple[DeviceFacts, Tier]:
    """Detect the device, choose its tier, apply overrides and log the choice."""
    facts = detect_device(settings.device)
    tier = apply_overrides(choose_tier(facts), settings)
    _LOGGER.info(
        "Decode device: %s (%s); tier %s: %s decode, batch %d, %d worker(s) of %d thread(s), "
        "compile %s, %d syntheses at once",
        facts.kind,
        facts.name,
        tier.name,
        tier.decode_mode,
        tier.batch_size,
        tier.workers,
        tier.threads,
        tier.compile,
        tier.max_concurrent,
    )
    return facts, tier
