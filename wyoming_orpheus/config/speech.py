"""Settings of what is spoken and how: voice and text, playout, the decoder."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .choices import (
    DECODE_MODES,
    DEVICES,
    NORMALIZE_CATEGORIES,
    PLAYOUT_MODES,
    URL_MODES,
)
from .declare import TOGGLE, setting
from .values import (
    as_bool,
    as_str,
    categories,
    choice,
    float_in,
    int_in,
    optional_bool,
    optional_str,
)

TIER = "the hardware tier's"


@dataclass(frozen=True)
class SpeechSettings:
    """The default voice and speed, text limits and spoken form, segments, output level."""

    TITLE: ClassVar[str] = "Voice and text"
    NOTE: ClassVar[str] = ""

    voice: str = setting(
        "tara",
        parse=as_str,
        help="Voice used when a request names none: tara leah jess leo dan mia zac zoe (and "
        "the voices of bound languages).",
    )
    speed: float = setting(1.0, parse=float_in(0.5, 2.0), help="Default tempo, pitch unchanged.")
    max_text_chars: int = setting(
        10000,
        parse=int_in(1, 100_000),
        help="Longest text one request may carry, counted on what is spoken (SSML's text). "
        "Bounded so that no request can hold up the server (docs/reliability.md).",
    )
    segment_max_chars: int = setting(
        600,
        parse=int_in(20, 5000),
        help="Longest text per LLM request (~45 s of speech; Orpheus degrades beyond).",
    )
    segment_pause_ms: int = setting(
        150,
        parse=int_in(0, 10_000),
        help="Silence between two segments of one answer.",
    )
    lookahead_segments: int = setting(
        1,
        parse=int_in(0, 8),
        help="Later segments whose LLM request starts while the current one still streams.",
    )
    normalize: frozenset[str] = setting(
        frozenset(NORMALIZE_CATEGORIES),
        parse=categories,
        default_text="all",
        help="Spoken form, in the voice's language: what is written out as words before the "
        "model reads it. all; none; a list of categories to keep; or only removals such as "
        f'"-urls,-dates" (the flag in the = form). Categories: {" ".join(NORMALIZE_CATEGORIES)}.',
    )
    normalize_urls: str = setting(
        "speak",
        parse=choice(*URL_MODES),
        help="Web and e-mail addresses: speak (the host name; e-mail in full) or drop.",
    )
    lexicon: str | None = setting(
        None,
        parse=optional_str,
        help="YAML file of whole-word replacements per language (see README); reloaded on "
        "SIGHUP, a broken file keeps the previous one.",
    )
    output_gain_db: float = setting(
        0.0,
        parse=float_in(-30, 20),
        help="Gain of the voice in dB, so Orpheus sits at the level of the house's other voices.",
    )
    output_limiter: bool = setting(
        True,
        parse=as_bool,
        kind=TOGGLE,
        help="Keep peaks under -1 dBFS (2 ms look-ahead) instead of hard clipping.",
    )


@dataclass(frozen=True)
class PlayoutSettings:
    """When held audio may go (the rule itself is playout/rule.py)."""

    TITLE: ClassVar[str] = "Playout: smooth speech from an LLM slower than real time"
    NOTE: ClassVar[str] = (
        "Below real time (fewer than ~82 audio tokens per second) audio played as it comes "
        "stutters. Adaptive playout holds it just long enough that it will not, and a later "
        "sentence the listener would run dry in at its start, so any gap falls between "
        "sentences; at or above real time nothing is held. The rule: "
        "wyoming_orpheus/playout/rule.py, explained in docs/architecture.md (Playout)."
    )

    playout: str = setting(
        "adaptive",
        parse=choice(*PLAYOUT_MODES),
        help="adaptive: hold the first audio just long enough that an LLM slower than real time "
        "plays without gaps (nothing is held at or above real time); immediate: every chunk "
        "goes out as it is decoded.",
    )
    playout_margin: float = setting(
        0.5,
        parse=float_in(0, 10),
        help="Seconds of audio held beyond the least wait (decode blocks, jitter).",
    )
    playout_max_hold: float = setting(
        15.0,
        parse=float_in(0, 25),
        help="Longest hold in seconds, well under the ~30 s after which an ESPHome satellite "
        "gives up on a silent stream; beyond it the audio goes and may have gaps.",
    )
    playout_sentences: bool = setting(
        True,
        parse=as_bool,
        kind=TOGGLE,
        help="Below real time (as measured), each sentence is its own LLM request, sent when a "
        "plan for the server's batch says, so later sentences generate while earlier ones "
        "play: speech starts several times sooner. Off, or at real time: one request per "
        "segment_max_chars (longer text per request).",
    )
    playout_keepalive: bool = setting(
        True,
        parse=as_bool,
        kind=TOGGLE,
        help="Wyoming: while speech is held, send silence (the first within 0.25 s, then at "
        "least every 0.5 s, up to the wait the rule expects and 5 s ahead), so a satellite "
        "hears the wait instead of a silent line (docs/home-assistant.md).",
    )
    playout_keepalive_http: bool = setting(
        False,
        parse=as_bool,
        kind=TOGGLE,
        help="The same for the HTTP door's streamed responses; off, a response (a file "
        "download) starts with speech.",
    )


@dataclass(frozen=True)
class DecoderSettings:
    """The SNAC model, the device, concurrency and the decode workers (null: the tier's)."""

    TITLE: ClassVar[str] = "SNAC decoder and hardware"
    NOTE: ClassVar[str] = ""

    snac_model: str = setting(
        "hubertsiuzdak/snac_24khz",
        parse=as_str,
        help="SNAC codec: a local directory (config.json + pytorch_model.bin) or a hub id.",
    )
    device: str = setting("auto", parse=choice(*DEVICES), help="Where SNAC decodes.")
    max_concurrent: int | None = setting(
        None,
        parse=int_in(1, 1024, optional=True),
        default_text=TIER,
        help="Syntheses at once; null = the hardware tier's (CPU: 2 per core; CUDA: 4/8/16 by "
        "GPU class; MPS: 4).",
    )
    queue_timeout: float = setting(
        10.0,
        parse=float_in(0, 3600),
        help='Seconds a request waits for a free synthesis slot, then a "busy" error.',
    )
    decode_batch_size: int | None = setting(
        None,
        parse=int_in(1, 256, optional=True),
        default_text=TIER,
        help="Decode windows per batch; null = the tier's (CPU 4 ... CUDA 32).",
    )
    decode_threads: int | None = setting(
        None,
        parse=int_in(1, 1024, optional=True),
        default_text=TIER,
        help="CPU threads per decode worker; null = the tier's (1 on CPU).",
    )
    decode_workers: int | None = setting(
        None,
        parse=int_in(1, 64, optional=True),
        default_text=TIER,
        help="Decode worker threads, each taking whole decode steps; null = the tier's (CPU: "
        "one per core; GPUs: 1). Keep workers x threads at most the number of cores.",
    )
    compile: bool | None = setting(
        None,
        parse=optional_bool,
        kind=TOGGLE,
        default_text="off",
        help="torch.compile the decoder; null = the tier's choice, off (it takes ~40 s at "
        "start on CPU).",
    )
    decode_mode: str = setting(
        "auto",
        parse=choice(*DECODE_MODES),
        help="auto = the tier's: stateful on CPU/MPS (per-layer caches, each sample decoded "
        "once), windowed on CUDA (exact context windows batched across streams); both equal a "
        "whole-utterance decode.",
    )
    warm_up: bool = setting(
        True,
        parse=as_bool,
        kind=TOGGLE,
        help="Decode one stream of every block size before serving, so the first request is as "
        "fast as later ones (~3 s on 2 CPU cores; off: faster start, a slower first request).",
    )
