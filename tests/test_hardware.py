"""Hardware tiers from injected device facts (the GPU paths run where a GPU exists)."""

from __future__ import annotations

import pytest
import torch

from wyoming_orpheus.config import Settings
from wyoming_orpheus.decode.hardware import DeviceFacts, apply_overrides, choose_tier, detect_device


@pytest.mark.parametrize(
    ("facts", "name", "batch", "concurrent"),
    [
        (DeviceFacts("cuda", "RTX 4090", 24.0, (8, 9), 16), "cuda-high", 32, 16),
        (DeviceFacts("cuda", "RTX 3060", 12.0, (8, 6), 8), "cuda-high", 32, 16),
        (DeviceFacts("cuda", "Tesla T4", 15.0, (7, 5), 8), "cuda-high", 32, 16),
        (DeviceFacts("cuda", "GTX 1080", 8.0, (6, 1), 8), "cuda-mid", 16, 8),
        (DeviceFacts("cuda", "GTX 1650", 4.0, (7, 5), 4), "cuda-entry", 8, 4),
        (DeviceFacts("mps", "Apple MPS", cpu_count=10), "mps", 8, 4),
        (DeviceFacts("cpu", "CPU", cpu_count=2), "cpu", 4, 4),
        (DeviceFacts("cpu", "CPU", cpu_count=16), "cpu", 4, 32),
    ],
)
def test_tier_choice(facts: DeviceFacts, name: str, batch: int, concurrent: int) -> None:
    tier = choose_tier(facts)
    assert (tier.name, tier.batch_size, tier.max_concurrent) == (name, batch, concurrent)
    assert tier.device == facts.kind


def test_cpu_tier_runs_a_single_threaded_decode_worker_per_core() -> None:
    tier = choose_tier(DeviceFacts("cpu", "CPU", cpu_count=6))
    assert (tier.workers, tier.threads, tier.max_concurrent) == (6, 1, 12)


def test_config_overrides_the_tier() -> None:
    settings = Settings.of(
        decode_batch_size=3,
        decode_threads=1,
        decode_workers=2,
        compile=True,
        max_concurrent=9,
    )
    tier = apply_overrides(choose_tier(DeviceFacts("cpu", "CPU", cpu_count=2)), settings.decoder)
    assert (tier.batch_size, tier.threads, tier.workers) == (3, 1, 2)
    assert (tier.compile, tier.max_concurrent) == (True, 9)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU answer")
def test_asking_for_cuda_without_a_gpu_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        detect_device("cuda")


def test_auto_detection_finds_this_machines_device() -> None:
    facts = detect_device("auto")
    expected = (
        "cuda"
        if torch.cuda.is_available()
        else ("mps" if torch.backends.mps.is_available() else "cpu")
    )
    assert facts.kind == expected and facts.cpu_count >= 1
