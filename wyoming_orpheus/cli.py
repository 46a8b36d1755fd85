"""Command line: the flags, and loading Settings from every source."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .config import (
    DEVICES,
    ENV_PREFIX,
    LAYER_ORDER,
    LLM_APIS,
    PROMPT_FORMATS,
    RawLayer,
    Settings,
    build_settings,
    env_layer,
    read_dotenv,
    read_yaml_file,
)

# (flag, setting, help) for flags that take one value.
_VALUE_FLAGS: tuple[tuple[str, str, str], ...] = (
    ("--uri", "uri", "Wyoming server address (default: tcp://0.0.0.0:10200)"),
    ("--http-host", "http_host", "OpenAI-compatible HTTP API address (default: 0.0.0.0)"),
    ("--http-port", "http_port", "OpenAI-compatible HTTP API port (default: 5005)"),
    ("--http-api-key", "http_api_key", "require 'Authorization: Bearer KEY' on the HTTP API"),
    (
        "--http-cors-origins",
        "http_cors_origins",
        "browser origins allowed to call the HTTP API, comma-separated (default: none)",
    ),
    ("--llm-api", "llm_api", f"LLM server dialect: {', '.join(LLM_APIS)} (default: openai)"),
    ("--llm-model", "llm_model", "model name sent to the LLM server (default: orpheus)"),
    ("--llm-api-key", "llm_api_key", "API key sent as 'Authorization: Bearer KEY'"),
    (
        "--llm-gguf",
        "llm_gguf",
        "managed mode: a .gguf path or hub id (owner/repo, owner/repo:Q4_K_M, "
        "owner/repo/file.gguf; default: lex-au/Orpheus-3b-FT-Q8_0.gguf)",
    ),
    (
        "--llama-server",
        "llama_server",
        "managed mode: the llama-server binary (default: PATH, then wyoming-orpheus[llama])",
    ),
    (
        "--llm-gpu-layers",
        "llm_gpu_layers",
        "managed mode: model layers on the GPU, a number or all (default: all when the "
        "llama-server build lists a GPU, else 0)",
    ),
    (
        "--llm-prompt-format",
        "llm_prompt_format",
        f"prompt layout: {', '.join(PROMPT_FORMATS)} (default: training)",
    ),
    (
        "--snac-model",
        "snac_model",
        "SNAC codec directory or hub id (default: hubertsiuzdak/snac_24khz)",
    ),
    ("--device", "device", f"where SNAC decodes: {', '.join(DEVICES)} (default: auto)"),
    ("--voice", "voice", "default voice (default: tara)"),
    (
        "--normalize",
        "normalize",
        "what to speak as words: all, none, a list (numbers,units,...) or removals in the "
        "= form, --normalize=-urls,-dates (default: all)",
    ),
    ("--normalize-urls", "normalize_urls", "web/e-mail addresses: speak or drop (default: speak)"),
    ("--lexicon", "lexicon", "YAML file of word replacements per language (reloaded on SIGHUP)"),
    ("--output-gain-db", "output_gain_db", "gain of the voice in dB, -30 to 20 (default: 0)"),
    ("--max-tokens", "max_tokens", "most tokens one LLM request may generate (default: 8192)"),
    ("--temperature", "temperature", "sampling temperature (default: 0.6)"),
    ("--top-p", "top_p", "nucleus sampling (default: 0.9)"),
    ("--repetition-penalty", "repetition_penalty", "repetition penalty (default: 1.1)"),
    ("--request-timeout", "request_timeout", "seconds one LLM request may take (default: 120)"),
    ("--max-concurrent", "max_concurrent", "syntheses at once (default: the hardware tier's)"),
    ("--queue-timeout", "queue_timeout", "seconds to wait for a synthesis slot (default: 10)"),
    ("--decode-batch-size", "decode_batch_size", "SNAC windows per batch (default: the tier's)"),
    ("--log-format", "log_format", "Python logging format"),
)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser; every default is None so given flags can be told apart."""
    parser = argparse.ArgumentParser(
        prog="wyoming-orpheus",
        description="Orpheus TTS for Home Assistant (Wyoming) and OpenAI speech clients.",
        argument_default=None,
    )
    parser.add_argument("--config", metavar="FILE", help="YAML settings file")
    for flag, dest, text in _VALUE_FLAGS:
        parser.add_argument(flag, dest=dest, help=text)
    parser.add_argument(
        "--zeroconf",
        nargs="?",
        const="",
        metavar="NAME",
        help="advertise over zeroconf (default name: orpheus-<hostname>)",
    )
    parser.add_argument(
        "--llm-url",
        dest="llm_urls",
        action="append",
        metavar="URL",
        help="Orpheus LLM server, e.g. http://host:8080/v1 (repeat for several); none: "
        "wyoming-orpheus runs its own llama-server (managed mode)",
    )
    parser.add_argument(
        "--llama-server-arg",
        dest="llama_server_args",
        action="append",
        metavar="OPTION",
        help="managed mode: pass an option to llama-server, in the = form "
        "(--llama-server-arg=--flash-attn); repeat for several",
    )
    parser.add_argument(
        "--no-http", dest="http_enabled", action="store_const", const=False, help="no HTTP API"
    )
    parser.add_argument(
        "--no-streaming",
        dest="streaming",
        action="store_const",
        const=False,
        help="do not advertise streaming synthesis to Wyoming clients",
    )
    parser.add_argument(
        "--compile",
        dest="compile",
        action=argparse.BooleanOptionalAction,
        help="torch.compile the SNAC decoder (default: the tier's choice)",
    )
    parser.add_argument("--debug", action="store_const", const=True, help="log DEBUG messages")
    parser.add_argument("--version", action="version", version=__version__)
    return parser


def flag_layer(args: argparse.Namespace) -> RawLayer:
    """Turn the flags that were given into a raw settings layer."""
    layer = RawLayer(LAYER_ORDER.index("flag"))
    flags = {dest: flag for flag, dest, _ in _VALUE_FLAGS}
    flags.update(
        zeroconf="--zeroconf",
        llm_urls="--llm-url",
        llama_server_args="--llama-server-arg",
        http_enabled="--no-http",
        streaming="--no-streaming",
        compile="--compile",
        debug="--debug",
    )
    for dest, flag in flags.items():
        value: Any = getattr(args, dest, None)
        if dest == "llama_server_args" and value is not None:
            value = " ".join(value)  # each flag's value is shell syntax: "--threads 8"
        if value is not None:
            layer.values[dest] = (value, f"flag {flag}")
    return layer


def load_settings(argv: Sequence[str] | None, environ: Mapping[str, str], cwd: Path) -> Settings:
    """Parse flags and read the config file, .env and environment into Settings."""
    args = build_parser().parse_args(argv)
    dotenv = read_dotenv(cwd / ".env")
    layers = [env_layer(dotenv, "dotenv"), env_layer(environ, "env"), flag_layer(args)]
    config_path = (
        args.config or environ.get(ENV_PREFIX + "CONFIG") or dotenv.get(ENV_PREFIX + "CONFIG")
    )
    if config_path:
        if not Path(config_path).is_absolute():
            config_path = str(cwd / config_path)
        layers.append(read_yaml_file(config_path))
    return build_settings(layers)
