"""Command line: the flags, and loading Settings from every source."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import __version__
from . import (
    ENV_PREFIX,
    LAYER_ORDER,
    RawLayer,
    Settings,
    Spec,
    build_settings,
    declared,
    env_layer,
    read_dotenv,
    read_yaml_file,
)
from .declare import APPEND, OFF, ON, OPTIONAL, SHELL_APPEND, TOGGLE
from .values import accepts


def build_parser() -> argparse.ArgumentParser:
    """Build the flags from the settings' declarations; every default is None, so given
    flags can be told apart from the rest."""
    parser = argparse.ArgumentParser(
        prog="wyoming-orpheus",
        description="Orpheus TTS for Home Assistant (Wyoming) and OpenAI speech clients.",
        argument_default=None,
    )
    parser.add_argument("--config", metavar="FILE", help="YAML settings file")
    for spec in declared():
        if spec.flag is not None:
            parser.add_argument(spec.flag, dest=spec.name, help=flag_help(spec), **_action(spec))
    parser.add_argument("--version", action="version", version=__version__)
    return parser


def _action(spec: Spec) -> dict[str, Any]:
    """argparse's arguments for a flag of this kind."""
    kind, metavar = spec.declared.kind, spec.declared.metavar
    if kind in (APPEND, SHELL_APPEND):
        return {"action": "append", "metavar": metavar}
    if kind == OPTIONAL:
        return {"nargs": "?", "const": "", "metavar": metavar}
    if kind == OFF:
        return {"action": "store_const", "const": False}
    if kind == ON:
        return {"action": "store_const", "const": True}
    if kind == TOGGLE:
        return {"action": argparse.BooleanOptionalAction}
    return {"metavar": metavar}


def flag_help(spec: Spec) -> str:
    """The flag's help: the declaration's text, what it takes, its default, its variable."""
    declared = spec.declared
    facts = [f for f in (accepts(declared.parse), _default_text(spec)) if f]
    env = ", ".join((ENV_PREFIX + spec.name.upper(), *declared.env))
    suffix = f" ({'; '.join(facts)})" if facts else ""
    text = f"Turns off: {declared.help}" if declared.kind == OFF else declared.help
    # argparse formats help with %: a literal % (the log format) must be doubled.
    return f"{text}{suffix} [env {env}]".replace("%", "%%")


def _default_text(spec: Spec) -> str | None:
    if spec.declared.default_text is not None:
        return f"default: {spec.declared.default_text}"
    value = spec.default
    if value is None or value == () or isinstance(value, (dict, bool)):
        return None  # none, empty, a table (see the config file), or said by the flag itself
    return f"default: {value}"


def flag_layer(args: argparse.Namespace) -> RawLayer:
    """Turn the flags that were given into a raw settings layer."""
    layer = RawLayer(LAYER_ORDER.index("flag"))
    for spec in declared():
        value: Any = getattr(args, spec.name, None)
        if value is None:
            continue
        if spec.declared.kind == SHELL_APPEND:
            value = " ".join(value)  # each flag's value is shell syntax: "--threads 8"
        layer.values[spec.name] = (value, f"flag {spec.flag}")
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
