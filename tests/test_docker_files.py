"""The Dockerfile and the systemd unit, checked by reading (the compose files: test_compose.py;
the image itself is built and run by script/image-test)."""

from __future__ import annotations

import configparser
import importlib.util
import re
import shlex
from pathlib import Path

from wyoming_orpheus.config.cli import load_settings

DOCKER = Path(__file__).resolve().parents[1] / "docker"
CONFIG = DOCKER.parent / "config"


def test_dockerfile_health_check_and_entry_point_exist() -> None:
    dockerfile = (DOCKER / "Dockerfile").read_text(encoding="utf-8")
    module = re.search(r'"-m", "([\w.]+)"', dockerfile).group(1)  # type: ignore[union-attr]
    assert importlib.util.find_spec(module) is not None
    assert 'ENTRYPOINT ["wyoming-orpheus"]' in dockerfile


def test_the_systemd_unit_starts_the_server_with_the_shipped_config(tmp_path: Path) -> None:
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.read(CONFIG / "wyoming-orpheus.service", encoding="utf-8")
    service = unit["Service"]
    program, *args = shlex.split(service["ExecStart"])
    assert program == "/opt/wyoming-orpheus/bin/wyoming-orpheus"
    # The config file it names is the one shipped in config/, installed there by the steps.
    args = [str(CONFIG / "wyoming-orpheus.yaml") if a.endswith("config.yaml") else a for a in args]
    settings = load_settings(args, {}, tmp_path)
    assert settings.wyoming.zeroconf == "" and settings.wyoming.uri == "tcp://0.0.0.0:10200"
    assert float(service["TimeoutStopSec"]) > settings.process.shutdown_grace
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"  # SIGHUP reloads the lexicon
    assert service["User"] != "root" and unit["Install"]["WantedBy"] == "multi-user.target"
