"""Decode benchmark: this project's exact streaming decoder vs the reference projects' scheme.

Both decode the same random frames (SNAC 24 kHz architecture, random weights, noise off),
side by side in one run. Reported: CPU seconds per second of audio (median of --repeats),
the ratio to the reference, and each one's error against a whole-utterance decode.

    .venv/bin/python -m benchmarks.decode [--seconds 15] [--repeats 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wyoming_orpheus.decode.hardware import choose_tier, detect_device
from wyoming_orpheus.decode.snac import decode_batch, frames_to_codes, load_snac
from wyoming_orpheus.decode.streams import (
    Playback,
    StatefulStreamDecoder,
    StreamDecoder,
    WindowedStreamDecoder,
    drain,
)
from wyoming_orpheus.decode.worker import DecodeWorker
from wyoming_orpheus.format import SAMPLE_RATE, SAMPLES_PER_FRAME

TOKENS_PER_FRAME = 7
REALTIME_TOKENS_PER_SECOND = 82.03


@dataclass
class Result:
    """One decoder under one scenario."""

    name: str
    cpu_s_per_audio_s: float
    wall_s_per_audio_s: float
    frames_decoded_per_frame: float
    max_abs_error: float
    rel_rms_error: float
    samples_lost: int


WHOLE = "whole utterance (one decode call, not streamed)"


def write_random_snac(directory: Path) -> Path:
    """Save the real 24 kHz architecture with random weights, noise off, as the hub lays it out."""
    from tests.stand_ins.snac_model import write_snac_model

    return write_snac_model(directory, seed=0, noise=False)


def errors(audio: np.ndarray, whole: np.ndarray) -> tuple[float, float]:
    """Return max abs and relative RMS error against the whole-utterance decode."""
    diff = audio - whole
    return float(np.abs(diff).max()), float(np.sqrt(np.mean(diff**2)) / np.sqrt(np.mean(whole**2)))


def measure(run: Callable[[], Any]) -> tuple[Any, float, float]:
    """Run once; return its result, CPU seconds (all threads) and wall seconds."""
    cpu, wall = time.process_time(), time.perf_counter()
    result = run()
    return result, time.process_time() - cpu, time.perf_counter() - wall


def reference_decode(model: torch.nn.Module, frames: np.ndarray, device: str) -> np.ndarray:
    """Every 7 tokens decode the last 28 (4 frames) and keep samples 2048..4096."""
    out = []
    for count in range(4, len(frames) + 1):
        window = frames[count - 4 : count][None]
        codes = [torch.from_numpy(level).to(device) for level in frames_to_codes(window)]
        with torch.inference_mode():
            audio: torch.Tensor = model.decode(codes)  # type: ignore[operator]
        out.append(audio[0, 0, SAMPLES_PER_FRAME : 2 * SAMPLES_PER_FRAME].float().cpu().numpy())
    return np.concatenate(out)


class VirtualClock:
    """Time as an LLM generating at a fixed rate sees it (decode assumed not to fall behind)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def streaming_decode(
    worker: DecodeWorker, frames: np.ndarray, tokens_per_second: float | None, mode: str
) -> tuple[np.ndarray, int]:
    """Feed frames one by one as the LLM would; return audio and frames decoded in all."""
    clock = VirtualClock()
    playback = Playback(clock)
    decoded = 0

    async def counting_decode(window: np.ndarray) -> np.ndarray:
        nonlocal decoded
        decoded += len(window)
        return await worker.decode(window)

    decoder: StreamDecoder
    if mode == "windowed":
        decoder = WindowedStreamDecoder(counting_decode, lead=playback.lead)
    else:
        decoder = StatefulStreamDecoder(worker, lead=playback.lead)
        decoded = len(frames)  # each frame passes the layer caches once

    async def arrive(index: int) -> None:
        if tokens_per_second:
            clock.now = (index + 1) * TOKENS_PER_FRAME / tokens_per_second

    return await feed_frames(decoder, playback, frames, arrive), decoded


async def feed_frames(
    decoder: StreamDecoder,
    playback: Playback,
    frames: np.ndarray,
    arrive: Callable[[int], Awaitable[None]],
) -> np.ndarray:
    """Hand frames to a decoder one by one as an LLM would, after `arrive(index)`; return audio."""
    out = []
    for index, frame in enumerate(frames):
        await arrive(index)
        decoder.add([tuple(int(c) for c in frame)])  # type: ignore[list-item]
        for samples in await drain(decoder):
            playback.sent(len(samples))
            out.append(samples)
    decoder.end()
    out += await drain(decoder)
    return np.concatenate(out)


def _run_streaming(
    worker: DecodeWorker, frames: np.ndarray, rate: float | None, mode: str
) -> tuple[np.ndarray, int]:
    return asyncio.run(streaming_decode(worker, frames, rate, mode))


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Run every scenario side by side and return the report."""
    facts = detect_device(args.device)
    tier = choose_tier(facts)
    if args.threads:
        tier = dataclasses.replace(tier, threads=args.threads)
    torch.set_num_threads(tier.threads)
    with tempfile.TemporaryDirectory() as tmp:
        snac_dir = write_random_snac(Path(tmp))
        model = load_snac(str(snac_dir), tier.device)  # weight norm folded, as the product runs
        from snac import SNAC

        as_published = SNAC.from_pretrained(str(snac_dir)).eval().to(tier.device)

    count = round(args.seconds * SAMPLE_RATE / SAMPLES_PER_FRAME)
    frames = np.random.default_rng(1).integers(0, 4096, size=(count, 7))
    audio_s = count * SAMPLES_PER_FRAME / SAMPLE_RATE
    whole = decode_batch(model, frames[None], tier.device)[0]
    worker = DecodeWorker(model, tier)
    worker.start()

    scenarios: list[tuple[str, Callable[[], tuple[np.ndarray, int]]]] = [
        # The floor issue #10 measures against: every frame in one decode call.
        (WHOLE, lambda: (decode_batch(model, frames[None], tier.device)[0], count)),
        (
            "reference scheme (weight norm as published)",
            lambda: (reference_decode(as_published, frames, tier.device), 4 * (count - 3)),
        ),
        (
            "reference scheme (weight norm folded)",
            lambda: (reference_decode(model, frames, tier.device), 4 * (count - 3)),
        ),
    ]
    rates = (("LLM 1.2x", 100.0), ("LLM 2.2x", 180.0), ("offline", None))
    for mode in ("windowed", "stateful"):
        for label, rate in rates:
            scenarios.append(
                (f"{mode}, {label}", partial(_run_streaming, worker, frames, rate, mode))
            )

    results = []
    try:
        for name, run in scenarios:
            cpu_times, wall_times = [], []
            for _ in range(args.repeats):
                (audio, decoded), cpu, wall = measure(run)
                cpu_times.append(cpu)
                wall_times.append(wall)
            if name.startswith("reference"):
                # It never plays the first frame and drops the last two.
                target = whole[SAMPLES_PER_FRAME : (count - 2) * SAMPLES_PER_FRAME]
            else:
                target = whole
            max_err, rms_err = errors(audio, target)
            results.append(
                Result(
                    name=name,
                    cpu_s_per_audio_s=statistics.median(cpu_times) / audio_s,
                    wall_s_per_audio_s=statistics.median(wall_times) / audio_s,
                    frames_decoded_per_frame=decoded / count,
                    max_abs_error=max_err,
                    rel_rms_error=rms_err,
                    samples_lost=len(whole) - len(audio),
                )
            )
    finally:
        worker.stop()

    return {
        "benchmark": "decode",
        "audio_seconds": audio_s,
        "repeats": args.repeats,
        "device": f"{facts.kind} ({facts.name})",
        "threads": tier.threads,
        "torch": torch.__version__,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "results": [asdict(r) for r in results],
    }


def print_table(report: dict[str, Any]) -> None:
    """Print the results with ratios to the published reference."""
    results = report["results"]
    by_name = {r["name"]: r["cpu_s_per_audio_s"] for r in results}
    whole = by_name[WHOLE]
    base = by_name["reference scheme (weight norm as published)"]
    folded = by_name["reference scheme (weight norm folded)"]
    print(
        f"\n{report['audio_seconds']:.1f} s of audio, {report['device']}, "
        f"{report['threads']} threads, median of {report['repeats']}\n"
    )
    header = (
        f"{'decoder':44} {'CPU s/audio s':>13} {'vs ref':>7} {'vs folded':>9} {'vs whole':>8} "
        f"{'wall s/audio s':>14} {'frames/frame':>12} {'rel RMS err':>11} {'lost':>5}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r['name']:44} {r['cpu_s_per_audio_s']:13.3f} {r['cpu_s_per_audio_s'] / base:7.3f} "
            f"{r['cpu_s_per_audio_s'] / folded:9.3f} {r['cpu_s_per_audio_s'] / whole:8.3f} "
            f"{r['wall_s_per_audio_s']:14.3f} "
            f"{r['frames_decoded_per_frame']:12.2f} {r['rel_rms_error']:11.2e} "
            f"{r['samples_lost']:5d}"
        )


def main() -> None:
    """Parse arguments, run, print and save."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="audio length (default 15)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per decoder (median)")
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda", "mps"])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: tier's)")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/decode.json"))
    args = parser.parse_args()
    report = run_benchmark(args)
    print_table(report)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
