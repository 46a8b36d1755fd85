"""Settings of the two doors, their limits and the process."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .choices import (
    LOG_FORMAT_DEFAULT,
    OPENAI_VOICES_DEFAULT,
)
from .declare import OFF, ON, OPTIONAL, setting
from .values import (
    as_bool,
    as_str,
    float_in,
    int_in,
    name_list,
    optional_str,
    voice_map,
    wyoming_uri,
)


@dataclass(frozen=True)
class WyomingSettings:
    """The Wyoming door: where it listens and what it advertises."""

    TITLE: ClassVar[str] = "Wyoming server (Home Assistant)"
    NOTE: ClassVar[str] = ""

    uri: str = setting(
        "tcp://0.0.0.0:10200",
        parse=wyoming_uri,
        help="Where the Wyoming server listens (tcp://HOST:PORT or unix://PATH).",
    )
    zeroconf: str | None = setting(
        None,
        parse=optional_str,
        kind=OPTIONAL,
        metavar="NAME",
        help='Advertise over zeroconf: null = off, "" (the flag alone) = orpheus-<hostname>, '
        "or a name.",
    )
    streaming: bool = setting(
        True,
        parse=as_bool,
        flag="--no-streaming",
        kind=OFF,
        help="Advertise streaming synthesis (Home Assistant then speaks an LLM answer from its "
        "first sentence).",
    )


@dataclass(frozen=True)
class HttpSettings:
    """The HTTP door: address, key, CORS, bodies, OpenAI voice names."""

    TITLE: ClassVar[str] = "OpenAI-compatible HTTP API"
    NOTE: ClassVar[str] = ""

    http_host: str = setting(
        "0.0.0.0",
        parse=as_str,
        env=("ORPHEUS_HOST",),
        help="Address of the OpenAI-compatible HTTP API.",
    )
    http_port: int = setting(
        5005,
        parse=int_in(1, 65535),
        env=("ORPHEUS_PORT",),
        help="Port of the OpenAI-compatible HTTP API.",
    )
    http_enabled: bool = setting(
        True, parse=as_bool, flag="--no-http", kind=OFF, help="Serve the HTTP API."
    )
    http_api_key: str | None = setting(
        None,
        parse=optional_str,
        help="When set, every HTTP route except /health, the page (/) and the docs needs the "
        'header "Authorization: Bearer <key>" (compared in constant time).',
    )
    http_cors_origins: tuple[str, ...] = setting(
        (),
        parse=name_list,
        help='Browser origins allowed to call the API from another origin (CORS), or ["*"]; '
        "comma-separated in the environment and the flag.",
    )
    http_max_body_bytes: int = setting(
        262144,
        parse=int_in(1024, 64 * 2**20),
        help="Largest request body in bytes; larger bodies are refused (413) unread.",
    )
    http_body_timeout: float = setting(
        10.0,
        parse=float_in(0.1, 3600),
        help="Seconds a client may take to send its request body; a slower one gets 408.",
    )
    openai_voices: dict[str, str] = setting(  # noqa: RUF009 - setting() returns a field()
        factory=lambda: dict(OPENAI_VOICES_DEFAULT),
        parse=voice_map,
        metavar="NAME=VOICE,...",
        help="OpenAI voice names -> the Orpheus voice that speaks for each (/v1/audio/speech "
        '"voice"); NAME=VOICE pairs in the environment and the flag: alloy=tara,echo=leo.',
    )


@dataclass(frozen=True)
class LimitSettings:
    """Bounds that keep one client from harming another: connections, timeouts."""

    TITLE: ClassVar[str] = "Limits against misbehaving clients (docs/reliability.md)"
    NOTE: ClassVar[str] = (
        "At a connection limit a new connection closes the one idle longest (nothing running "
        "or queued); only when every open connection has work in flight is the newcomer "
        "refused (busy). Both limits are lowered at start to what the open-file limit (ulimit "
        "-n) can hold."
    )

    wyoming_max_connections: int = setting(
        1000, parse=int_in(1, 100_000), help="Wyoming connections at once."
    )
    wyoming_first_event_timeout: float = setting(
        10.0,
        parse=float_in(0.1, 3600),
        help="Seconds a new Wyoming connection has to send its first complete event.",
    )
    wyoming_idle_timeout: float = setting(
        300.0,
        parse=float_in(1, 86400),
        help="Seconds a Wyoming connection may send nothing while none of its audio is made.",
    )
    http_max_connections: int = setting(
        1000,
        parse=int_in(1, 100_000),
        help='HTTP connections at once (503 "busy" when all have requests).',
    )
    http_header_timeout: float = setting(
        10.0,
        parse=float_in(0.1, 3600),
        help="Seconds for a request line and headers (slowloris), and an idle keep-alive "
        "connection's life.",
    )
    write_timeout: float = setting(
        30.0,
        parse=float_in(0.1, 3600),
        help="Seconds a client (Wyoming or HTTP) may read nothing before its synthesis ends and "
        "its slot is freed.",
    )


@dataclass(frozen=True)
class ProcessSettings:
    """The process: stopping, logging."""

    TITLE: ClassVar[str] = "Process"
    NOTE: ClassVar[str] = ""

    shutdown_grace: float = setting(
        10.0,
        parse=float_in(0, 3600),
        help="Seconds in-flight syntheses may finish after SIGTERM before they are cancelled.",
    )
    debug: bool = setting(False, parse=as_bool, kind=ON, help="Log at DEBUG level.")
    log_format: str = setting(LOG_FORMAT_DEFAULT, parse=as_str, help="Python logging format.")
