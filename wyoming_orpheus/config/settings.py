"""The typed settings: every field with its default and what it means (config/ documents them)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..voices import Voice

LLM_APIS = ("openai", "ollama")
PROMPT_FORMATS = ("training", "audio")
DEVICES = ("auto", "cpu", "cuda", "mps")
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
# The GGUF that managed mode runs when none is named (Orpheus 3B fine-tune, Q8_0).
LLM_GGUF_DEFAULT = "lex-au/Orpheus-3b-FT-Q8_0.gguf"
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


class ConfigError(Exception):
    """A setting has an invalid value; the message names the setting and its source."""


@dataclass(frozen=True)
class UpstreamSettings:
    """One Orpheus LLM server."""

    url: str
    """Base URL (`http://host:8080/v1`) or the full endpoint URL."""
    api: str = "openai"
    """Dialect: `openai` (/v1/completions, SSE) or `ollama` (/api/generate, NDJSON)."""
    model: str = "orpheus"
    """Model name sent in the request (llama-server ignores it; Ollama and LM Studio need it)."""
    api_key: str | None = None
    """Sent as `Authorization: Bearer <key>` when set."""
    prompt_format: str = "training"
    """`training`: the fine-tune's token layout; `audio`: `<|audio|>{voice}: {text}<|eot_id|>`."""
    voices: tuple[str, ...] = ()
    """Voice names or language codes this server speaks; empty means the English voices."""
    custom_voices: tuple[Voice, ...] = ()
    """Voices of a fine-tune that speaks its own names (given as mappings under `voices`)."""


@dataclass(frozen=True)
class Settings:
    """Every setting of the server, parsed and validated once at start."""

    uri: str = "tcp://0.0.0.0:10200"
    """Where the Wyoming server listens."""
    zeroconf: str | None = None
    """Zeroconf instance name; None disables discovery, "" picks `orpheus-<hostname>`."""
    http_host: str = "0.0.0.0"
    """Address of the OpenAI-compatible HTTP API."""
    http_port: int = 5005
    """Port of the OpenAI-compatible HTTP API."""
    http_enabled: bool = True
    """Serve the HTTP API at all."""
    http_api_key: str | None = None
    """When set, HTTP requests need `Authorization: Bearer <key>` (not /health, the page)."""
    http_cors_origins: tuple[str, ...] = ()
    """Browser origins allowed to call the HTTP API (`*` for any); none by default."""
    http_max_body_bytes: int = 262144
    """Largest HTTP request body; larger ones are refused before being read."""
    http_body_timeout: float = 10.0
    """Seconds an HTTP client may take to send its request body; slower ones get 408."""
    openai_voices: dict[str, str] = field(default_factory=lambda: dict(OPENAI_VOICES_DEFAULT))
    """OpenAI voice names (alloy, echo, ...) -> the Orpheus voice that speaks for each."""
    upstreams: tuple[UpstreamSettings, ...] = ()
    """The Orpheus LLM servers; none named means managed mode (a llama-server of our own)."""
    llm_gguf: str = LLM_GGUF_DEFAULT
    """Managed mode: a local .gguf, or a hub id (`owner/repo`, `owner/repo:Q4_K_M`,
    `owner/repo/file.gguf`)."""
    llama_server: str | None = None
    """Managed mode: the llama-server binary; None finds it on PATH, then in `[llama]`."""
    llm_gpu_layers: int | None = None
    """Managed mode: layers llama-server puts on the GPU; None: all on CUDA/Metal, 0 on CPU."""
    llama_server_args: tuple[str, ...] = ()
    """Managed mode: more llama-server options, checked against its --help at start."""
    connect_timeout: float = 5.0
    """Seconds to open a connection to an LLM server."""
    first_token_timeout: float = 30.0
    """Seconds from sending a request to the first streamed token."""
    stall_timeout: float = 10.0
    """Seconds allowed between two streamed tokens."""
    request_timeout: float = 120.0
    """Seconds one LLM request may take in all."""
    upstream_cooldown: float = 30.0
    """Seconds a failed LLM server is skipped while others are healthy."""
    max_tokens: int = 8192
    """Upper bound of the tokens one request may generate (~100 s of speech)."""
    temperature: float = 0.6
    """Sampling temperature."""
    top_p: float = 0.9
    """Nucleus sampling."""
    repetition_penalty: float = 1.1
    """Orpheus needs >= 1.1 for stable speech."""
    snac_model: str = "hubertsiuzdak/snac_24khz"
    """SNAC codec: a local directory (config.json + pytorch_model.bin) or a hub id."""
    device: str = "auto"
    """Where SNAC decodes: auto, cpu, cuda or mps."""
    voice: str = "tara"
    """Voice used when a request names none."""
    streaming: bool = True
    """Advertise streaming synthesis (synthesize-start/-chunk/-stop) to Wyoming clients."""
    max_text_chars: int = 10000
    """Longest text one request may carry."""
    segment_max_chars: int = 600
    """Longest text per LLM request (~45 s of speech; Orpheus degrades beyond)."""
    segment_pause_ms: int = 150
    """Silence between two segments of one answer."""
    lookahead_segments: int = 1
    """Segments whose LLM request starts while the current one still streams."""
    speed: float = 1.0
    """Default tempo factor (0.5-2.0), pitch unchanged."""
    normalize: frozenset[str] = frozenset(NORMALIZE_CATEGORIES)
    """What the normalizer writes out as words (all; none; a list; or all but `-urls,-dates`)."""
    normalize_urls: str = "speak"
    """Web and e-mail addresses: `speak` (host name, whole e-mail address) or `drop`."""
    lexicon: str | None = None
    """YAML file of whole-word replacements per language; reloaded on SIGHUP."""
    output_gain_db: float = 0.0
    """Gain applied to the voice (-30 to +20 dB), to sit at the level of other voices."""
    output_limiter: bool = True
    """Keep peaks under -1 dBFS with a look-ahead limiter instead of hard clipping."""
    max_concurrent: int | None = None
    """Syntheses at once; None takes the hardware tier's limit."""
    queue_timeout: float = 10.0
    """Seconds a request waits for a free synthesis slot before a busy error."""
    decode_batch_size: int | None = None
    """Decode windows per batch; None takes the hardware tier's value."""
    decode_threads: int | None = None
    """CPU threads per decode worker; None takes the hardware tier's value."""
    decode_workers: int | None = None
    """Decode worker threads, each running whole decode steps; None takes the tier's value."""
    compile: bool | None = None
    """torch.compile the decoder; None takes the hardware tier's choice."""
    decode_mode: str = "auto"
    """auto (the tier's), windowed (batched context windows) or stateful (per-layer caches)."""
    warm_up: bool = True
    """Decode every block size once before serving: the first request is as fast as later ones."""
    wyoming_max_connections: int = 1000
    """Wyoming connections at once; a new one closes the one idle longest, and only when every
    open connection has a synthesis in flight is it answered with a busy error."""
    wyoming_first_event_timeout: float = 10.0
    """Seconds a new Wyoming connection has to send its first complete event before it closes."""
    wyoming_idle_timeout: float = 300.0
    """Seconds a Wyoming connection may send nothing (while no synthesis runs) before it closes."""
    http_max_connections: int = 1000
    """HTTP connections at once; a new one closes the one idle longest, and only when every
    open connection has a request in flight is it answered with 503 busy."""
    http_header_timeout: float = 10.0
    """Seconds an HTTP client has for its request line and headers, and an idle keep-alive
    connection stays open."""
    write_timeout: float = 30.0
    """Seconds a client may read nothing before its synthesis ends and its slot is freed."""
    shutdown_grace: float = 10.0
    """Seconds in-flight syntheses may finish after SIGTERM before they are cancelled."""
    debug: bool = False
    """Log at DEBUG level."""
    log_format: str = LOG_FORMAT_DEFAULT
    """Python logging format."""
