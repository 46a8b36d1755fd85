"""The Home Assistant add-on (docker/homeassistant-addon): options, schema, run script, s6 layout.

The Supervisor cannot run here; what can be checked is that every option the user can set
becomes a flag the product accepts with the value the user meant, that the schema's limits are
the product's, and that the files the Supervisor and s6-overlay read are where they expect.
"""

from __future__ import annotations

import functools
import importlib.machinery
import importlib.util
import json
import os
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from wyoming_orpheus import __version__
from wyoming_orpheus.config import LLM_APIS, ConfigError, Settings
from wyoming_orpheus.config.cli import load_settings
from wyoming_orpheus.voices import ALL_VOICES

ADDON = Path(__file__).resolve().parents[1] / "docker" / "homeassistant-addon"
RUN_SCRIPT = ADDON / "rootfs" / "usr" / "local" / "bin" / "wyoming-orpheus-addon"
S6 = ADDON / "rootfs" / "etc" / "s6-overlay" / "s6-rc.d"


def read_yaml(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ADDON / name).read_text(encoding="utf-8"))
    return data


@functools.cache
def run_script() -> ModuleType:
    """Import the add-on's run script (a file without .py, as the image installs it)."""
    loader = importlib.machinery.SourceFileLoader("wyoming_orpheus_addon", str(RUN_SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def settings_for(options: dict[str, Any], tmp_path: Path) -> Settings:
    return load_settings(run_script().flags(options), {}, tmp_path)


def schema_type(name: str) -> tuple[str, list[str]]:
    """Split a Supervisor schema type such as `float(-30,20)` or `list(a|b)`."""
    spec = read_yaml("config.yaml")["schema"][name]
    if isinstance(spec, list):
        return "list-of-" + spec[0], []
    match = re.fullmatch(r"(\w+)(?:\((.*)\))?\??", spec.strip())
    assert match, spec
    kind, args = match[1], match[2]
    if args is None:
        return kind, []
    return kind, args.split("|") if kind == "list" else args.split(",")


def test_the_schema_covers_every_option_and_the_run_script_maps_each() -> None:
    config = read_yaml("config.yaml")
    script = run_script()
    mapped = set(script.VALUE_FLAGS) | set(script.SWITCHES) | set(script.LIST_FLAGS)
    assert set(config["options"]) <= set(config["schema"])
    assert set(config["schema"]) == mapped
    assert set(read_yaml("translations/en.yaml")["configuration"]) == set(config["schema"])


def test_the_default_options_start_a_valid_server(tmp_path: Path) -> None:
    options = read_yaml("config.yaml")["options"]
    settings = settings_for(options, tmp_path)
    assert [u.url for u in settings.llm.upstreams] == options["llm_urls"]
    assert settings.wyoming.uri == "tcp://0.0.0.0:10200" and settings.decoder.device == "cpu"
    assert (
        settings.speech.voice == options["voice"] and settings.decoder.max_concurrent is None
    )  # the tier's
    assert settings.wyoming.zeroconf is None  # the Supervisor's discovery announces it instead
    assert settings.wyoming.streaming and settings.http.http_enabled and not settings.process.debug


def test_every_option_reaches_the_setting_it_names(tmp_path: Path) -> None:
    options = {
        "llm_urls": ["http://gpu-box:11434", "http://gpu-box-2:11434"],
        "llm_api": "ollama",
        "llm_model": "orpheus-q4",
        "llm_api_key": "llm-secret",
        "http_api_key": "http-secret",
        "voice": "leo",
        "streaming": False,
        "http_api": False,
        "normalize": "-urls,-dates",
        "output_gain_db": -6.5,
        "temperature": 0.7,
        "top_p": 0.8,
        "repetition_penalty": 1.3,
        "max_concurrent": 5,
        "debug": True,
    }
    assert set(options) == set(read_yaml("config.yaml")["schema"])
    settings = settings_for(options, tmp_path)
    assert [u.url for u in settings.llm.upstreams] == options["llm_urls"]
    for upstream in settings.llm.upstreams:
        assert (upstream.api, upstream.model, upstream.api_key) == (
            "ollama",
            "orpheus-q4",
            "llm-secret",
        )
    assert settings.http.http_api_key == "http-secret" and settings.speech.voice == "leo"
    assert (
        not settings.wyoming.streaming and not settings.http.http_enabled and settings.process.debug
    )
    assert "urls" not in settings.speech.normalize and "numbers" in settings.speech.normalize
    assert settings.speech.output_gain_db == -6.5 and settings.decoder.max_concurrent == 5
    assert (
        settings.sampling.temperature,
        settings.sampling.top_p,
        settings.sampling.repetition_penalty,
    ) == (0.7, 0.8, 1.3)


def test_optional_options_left_empty_are_not_passed(tmp_path: Path) -> None:
    options = {**read_yaml("config.yaml")["options"], "llm_api_key": "", "http_api_key": None}
    args = run_script().flags(options)
    assert not [arg for arg in args if arg.startswith(("--llm-api-key", "--http-api-key"))]
    settings = settings_for(options, tmp_path)
    assert settings.http.http_api_key is None and settings.llm.upstreams[0].api_key is None


@pytest.mark.parametrize("name", ["output_gain_db", "temperature", "top_p", "repetition_penalty"])
def test_number_limits_in_the_schema_are_the_products(name: str, tmp_path: Path) -> None:
    kind, (low, high) = schema_type(name)
    assert kind == "float"
    base = read_yaml("config.yaml")["options"]
    for inside in (float(low), float(high)):
        assert settings_for({**base, name: inside}, tmp_path).value(name) == inside
    for outside in (float(low) - 0.01, float(high) + 0.01):
        with pytest.raises(ConfigError, match=name):
            settings_for({**base, name: outside}, tmp_path)


def test_the_concurrency_limit_is_accepted_by_the_product(tmp_path: Path) -> None:
    kind, (low, high) = schema_type("max_concurrent")
    assert kind == "int"
    base = read_yaml("config.yaml")["options"]
    for value in (int(low), int(high)):
        assert (
            settings_for({**base, "max_concurrent": value}, tmp_path).decoder.max_concurrent
            == value
        )


def test_choice_lists_are_the_products_choices(tmp_path: Path) -> None:
    assert schema_type("voice") == ("list", [v.name for v in ALL_VOICES if v.language == "en"])
    kind, apis = schema_type("llm_api")
    assert kind == "list" and apis == list(LLM_APIS)
    base = read_yaml("config.yaml")["options"]
    for voice in schema_type("voice")[1]:
        assert settings_for({**base, "voice": voice}, tmp_path).speech.voice == voice


def test_an_unknown_option_or_a_missing_file_stops_with_a_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = run_script()
    with pytest.raises(ValueError, match="unknown add-on option.*speed"):
        script.flags({"llm_urls": ["http://x:8080/v1"], "speed": 1.2})
    monkeypatch.setattr(script, "OPTIONS_FILE", tmp_path / "missing.json")
    with pytest.raises(SystemExit, match="wyoming-orpheus add-on: .*missing.json"):
        script.main()


def test_main_runs_the_server_with_the_options_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = run_script()
    options_file = tmp_path / "options.json"
    options_file.write_text(json.dumps(read_yaml("config.yaml")["options"]), encoding="utf-8")
    monkeypatch.setattr(script, "OPTIONS_FILE", options_file)
    started: list[list[str]] = []
    monkeypatch.setattr(script.os, "execvp", lambda program, argv: started.append(argv))
    script.main()
    program, *args = started[0]
    assert program == "wyoming-orpheus"
    assert load_settings(args, {}, tmp_path).llm.upstreams[0].url.startswith("http://")


def test_versions_ports_and_base_images_agree() -> None:
    config, build = read_yaml("config.yaml"), read_yaml("build.yaml")
    assert config["version"] == build["args"]["WYOMING_ORPHEUS_VERSION"] == __version__
    dockerfile = (ADDON.parent / "Dockerfile").read_text(encoding="utf-8")
    torch = re.search(r"ARG TORCH_VERSION=(\S+)", dockerfile)
    assert torch and build["args"]["TORCH_VERSION"] == torch[1]
    assert set(build["build_from"]) == set(config["arch"])
    # Debian bases: PyTorch has no musl wheels for the Alpine ones.
    assert all("base-debian" in image for image in build["build_from"].values())
    fixed = run_script().FIXED_FLAGS
    ports = {
        fixed[fixed.index("--uri") + 1].rsplit(":", 1)[1],
        fixed[fixed.index("--http-port") + 1],
    }
    assert {p.split("/")[0] for p in config["ports"]} == ports
    assert config["discovery"] == ["wyoming"]


def test_the_s6_services_are_laid_out_as_s6_overlay_reads_them() -> None:
    enabled = {p.name for p in (S6 / "user" / "contents.d").iterdir()}
    assert enabled == {"wyoming-orpheus", "discovery"}
    for name in enabled:
        service = S6 / name
        kind = (service / "type").read_text(encoding="utf-8").strip()
        if kind == "longrun":
            script = service / "run"
        else:
            assert kind == "oneshot"
            script = Path(str(ADDON / "rootfs") + (service / "up").read_text().strip())
        assert script.is_file() and os.access(script, os.X_OK), script
        for dependency in (service / "dependencies.d").glob("*"):
            assert dependency.name in enabled
    discovery = (S6 / "discovery" / "run").read_text(encoding="utf-8")
    assert 'bashio::discovery "wyoming"' in discovery and "tcp://$(hostname):10200" in discovery
    assert os.access(RUN_SCRIPT, os.X_OK)
