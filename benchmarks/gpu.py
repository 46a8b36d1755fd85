"""GPU decode benchmark: many concurrent streams through the product's decode worker.

For each decode mode (windowed, stateful), compile variant (off; torch.compile; torch.compile
with CUDA graphs, i.e. mode="reduce-overhead") and stream count, N streams receive random
frames as an LLM at --rate tokens/s each would send them (0: all at once, for throughput) and
decode through the product's StreamDecoder and DecodeWorker. Reported: aggregate audio seconds
decoded per second, p50/p99 of the worker's decode steps (each includes the copy back to the
CPU, so it waits for the GPU), peak GPU memory, and the error of stream 0 against one
whole-utterance decode on the same device.

    .venv/bin/python -m benchmarks.gpu [--device cuda] [--streams 1 8 32 64 128 256]

Runs on CPU too (--device cpu, small --streams), which is how it is checked without a GPU.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.decode import feed_frames
from tests.stand_ins.snac_model import write_snac_model
from wyoming_orpheus.decode.hardware import Tier, choose_tier, detect_device
from wyoming_orpheus.decode.snac import decode_batch, load_snac
from wyoming_orpheus.decode.streams import Playback, open_stream
from wyoming_orpheus.decode.worker import DecodeWorker
from wyoming_orpheus.format import SAMPLE_RATE, SAMPLES_PER_FRAME

TOKENS_PER_FRAME = 7
FRAME_SECONDS = SAMPLES_PER_FRAME / SAMPLE_RATE
COMPILE_VARIANTS = ("off", "compile", "cuda-graphs")


def prepare_model(snac: Path, device: str, variant: str) -> torch.nn.Module:
    """Load SNAC the product's way; compile its decoder as the variant asks."""
    model = load_snac(str(snac), device)
    if variant != "off":
        mode = "reduce-overhead" if variant == "cuda-graphs" else "default"
        decoder = model.get_submodule("decoder")
        model.decoder = torch.compile(decoder, mode=mode, dynamic=variant == "compile")  # type: ignore[assignment]
    return model


async def one_stream(worker: DecodeWorker, frames: np.ndarray, rate: float) -> np.ndarray:
    """Feed frames at `rate` tokens/s (0: all at once) and return the decoded audio."""
    playback = Playback()
    started = time.monotonic()

    async def arrive(index: int) -> None:
        if rate:
            due = started + (index + 1) * TOKENS_PER_FRAME / rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))

    return await feed_frames(open_stream(worker, playback.lead), playback, frames, arrive)


async def run_case(
    model: torch.nn.Module, tier: Tier, streams: int, seconds: float, rate: float
) -> dict[str, Any]:
    """Decode `streams` concurrent streams; return throughput, step times, memory, error."""
    steps: list[float] = []
    worker = DecodeWorker(model, tier, steps.append)
    worker.start()
    count = round(seconds / FRAME_SECONDS)
    rng = np.random.default_rng(streams)
    frames = [rng.integers(0, 4096, size=(count, 7)) for _ in range(streams)]
    if tier.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    try:
        started = time.monotonic()
        audio = await asyncio.gather(*(one_stream(worker, f, rate) for f in frames))
        wall = time.monotonic() - started
    finally:
        worker.stop()
    whole = decode_batch(model, frames[0][None], tier.device)[0]
    error = float(np.sqrt(np.mean((audio[0] - whole) ** 2)) / np.sqrt(np.mean(whole**2)))
    return {
        "streams": streams,
        "audio_s_per_s": streams * count * FRAME_SECONDS / wall,
        "step_p50_ms": statistics.median(steps) * 1000,
        "step_p99_ms": float(np.percentile(steps, 99)) * 1000,
        "steps": len(steps),
        "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if tier.device == "cuda" else 0.0,
        "rel_rms_error": error,
    }


async def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    facts = detect_device(args.device)
    base = choose_tier(facts)
    snac = write_snac_model(Path(tempfile.mkdtemp()) / "snac", seed=0, noise=False)
    rows = []
    for mode in args.modes:
        # The stateful decoder runs SNAC's layers one by one: compiling the module is moot.
        variants = args.compile if mode == "windowed" else ["off"]
        for variant in variants:
            model = prepare_model(snac, base.device, variant)
            # The worker compiles nothing itself: the variant already did what it asks for.
            tier = dataclasses.replace(base, decode_mode=mode, compile=False)
            for rate in args.rates:
                for streams in args.streams:
                    result = await run_case(model, tier, streams, args.seconds, rate)
                    row = {"mode": mode, "compile": variant, "rate": rate, **result}
                    rows.append(row)
                    print_row(row)
    return {
        "command": "python -m benchmarks.gpu " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
        "device": f"{facts.kind}: {facts.name}, {facts.memory_gb:.0f} GB",
        "tier": base.name,
        "machine": platform.platform(),
        "torch": torch.__version__,
        "rows": rows,
    }


COLUMNS = (
    ("mode", "{}"),
    ("compile", "{}"),
    ("rate", "{:g}"),
    ("streams", "{}"),
    ("audio_s_per_s", "{:.1f}"),
    ("step_p50_ms", "{:.1f}"),
    ("step_p99_ms", "{:.1f}"),
    ("peak_gpu_mb", "{:.0f}"),
    ("rel_rms_error", "{:.1e}"),
)


def print_row(row: dict[str, Any]) -> None:
    print("| " + " | ".join(fmt.format(row[key]) for key, fmt in COLUMNS) + " |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", choices=["auto", "cpu", "cuda", "mps"])
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 8, 32, 64, 128, 256])
    parser.add_argument("--seconds", type=float, default=10.0, help="audio per stream")
    parser.add_argument(
        "--rates",
        type=float,
        nargs="+",
        default=[100.0, 0.0],
        help="tokens/s per stream; 0 sends all frames at once (throughput)",
    )
    parser.add_argument("--modes", nargs="+", default=["windowed", "stateful"])
    parser.add_argument(
        "--compile", nargs="+", default=list(COMPILE_VARIANTS), choices=COMPILE_VARIANTS
    )
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/gpu.json"))
    args = parser.parse_args()
    print("| " + " | ".join(key for key, _ in COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    report = asyncio.run(run_benchmark(args))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
