"""Read compose files the way `docker compose config` does, for the tests (no Docker engine here).

What Compose does before it runs anything, and what the checks need of it: variable
interpolation (`${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `$$`), `extends`
from another file, and merging several `-f` files in order (mappings merged key by key,
`command`/`entrypoint`/`healthcheck.test` replaced, other lists appended without repeats).
"""

from __future__ import annotations

import copy
import importlib.resources
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_]\w*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_]\w*))"
)
# Values that replace instead of merging when a later file or an extending service sets them.
_REPLACED = {"command", "entrypoint", "test"}


class InterpolationError(ValueError):
    """A required variable is unset (Compose stops with the `:?` message)."""


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Substitute variables in every string of a loaded compose document."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if isinstance(value, str):
        return _VARIABLE.sub(lambda match: _substitute(match, env), value)
    return value


def _substitute(match: re.Match[str], env: Mapping[str, str]) -> str:
    if match["escaped"]:
        return "$"
    name = match["braced"] or match["bare"]
    op, arg = match["op"], match["arg"]
    present = name in env and (env[name] != "" or not (op or "").startswith(":"))
    if present:
        return env[name]
    if op in (":-", "-"):
        return arg
    if op in (":?", "?"):
        raise InterpolationError(f"required variable {name} is missing a value: {arg}")
    return ""


def merge(base: Any, override: Any, key: str = "") -> Any:
    """Merge an override onto a base the way Compose merges files and `extends`."""
    if isinstance(base, dict) and isinstance(override, dict):
        result = dict(base)
        for name, value in override.items():
            if name in result and name not in _REPLACED:
                result[name] = merge(result[name], value, name)
            else:
                result[name] = copy.deepcopy(value)
        return result
    if isinstance(base, list) and isinstance(override, list) and key not in _REPLACED:
        return base + [item for item in override if item not in base]
    return copy.deepcopy(override)


def read_file(path: Path, env: Mapping[str, str]) -> dict[str, Any]:
    """Read one compose file as written, interpolated."""
    document: dict[str, Any] = interpolate(yaml.safe_load(path.read_text(encoding="utf-8")), env)
    return document


def load_file(path: Path, env: Mapping[str, str]) -> dict[str, Any]:
    """Load one compose file: interpolated, with `extends` resolved."""
    document = read_file(path, env)
    for name, service in document.get("services", {}).items():
        extends = service.pop("extends", None)
        if extends is not None:
            source = load_file(path.parent / extends["file"], env)
            base = source["services"][extends["service"]]
            # Compose never carries depends_on across extends: dependencies stay visible.
            base.pop("depends_on", None)
            document["services"][name] = merge(base, service)
    return document


def load_model(paths: list[Path], env: Mapping[str, str]) -> dict[str, Any]:
    """Load and merge compose files given as `-f a -f b` (later files override)."""
    model: dict[str, Any] = {}
    for path in paths:
        model = merge(model, load_file(path, env))
    return model


def schema_errors(document: Mapping[str, Any]) -> list[str]:
    """Check a compose document against the Compose specification's JSON schema."""
    # check-jsonschema ships the schema published by the compose-spec project (its licence
    # sits next to it in that package).
    schema_file = importlib.resources.files("check_jsonschema.builtin_schemas.vendor").joinpath(
        "compose-spec.json"
    )
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def variables(path: Path) -> set[str]:
    """Return the names of the variables a compose file reads."""
    lines = path.read_text(encoding="utf-8").splitlines()
    text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    return {m["braced"] or m["bare"] for m in _VARIABLE.finditer(text) if not m["escaped"]}
