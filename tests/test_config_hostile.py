"""Hostile or broken settings files: clear one-line errors, never a traceback (issue 31)."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from wyoming_orpheus.__main__ import main
from wyoming_orpheus.config import ConfigError, ignored_settings
from wyoming_orpheus.config.cli import load_settings
from wyoming_orpheus.config.loading import MAX_FILE_BYTES

ALIAS_BOMB = "a: &a [1,1,1,1,1,1,1,1,1]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(9)
)


def bomb_under_speed() -> str:
    """Ten levels of nine aliases (9**10 values) under `speed:`, as the hostile user wrote."""
    lines = ALIAS_BOMB.splitlines()
    nested = "\n".join("  " + line for line in lines)
    return f"speed:\n{nested}\n"


def load_file(tmp_path: Path, data: bytes, name: str = "c.yaml") -> None:
    path = tmp_path / name
    path.write_bytes(data)
    load_settings(["--config", str(path)], {}, tmp_path)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (bomb_under_speed().encode(), r"line 3, column 10: aliases \(\*name\) are not allowed"),
        (b"voice: &v tara\nspeed: *v\n", r"line 2, column 8: aliases \(\*name\) are not"),
        (b"speed: " + b"[" * 5000 + b"]" * 5000 + b"\n", "nested deeper than 32 levels"),
        (b"speed: " + b"{a: " * 3000 + b"1" + b"}" * 3000 + b"\n", "nested deeper than 32"),
        (b"voice: tara\nspeed: \xff\xfe\n", r"c\.yaml, line 2: not valid UTF-8"),
        (b"speed: [" + b"1, " * 50_000 + b"1]\n", r"speed=\[1, 1, 1, 1, 1, 1, \.\.\.\] .* number"),
        (b"voice: " + b"x" * 20_000 + b"\n", "at most 10000"),
        (b"a: 1\n" * (MAX_FILE_BYTES // 5 + 1), f"larger than {MAX_FILE_BYTES} bytes"),
    ],
    ids=["alias-bomb", "one-alias", "deep-list", "deep-map", "utf8", "list", "long", "big"],
)
def test_each_hostile_config_file_gets_a_clear_error_naming_where(
    tmp_path: Path, data: bytes, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        load_file(tmp_path, data)
    assert len(str(info.value)) < 600  # an excerpt of the value, never the whole of it


def test_an_alias_bomb_is_refused_within_a_small_memory_limit(tmp_path: Path) -> None:
    # NOTE: before issue 31 this exhausted a 3 GB limit; now it is refused while composing.
    path = tmp_path / "bomb.yaml"
    path.write_text(bomb_under_speed())
    code = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30));"
        "from wyoming_orpheus.__main__ import main; sys.exit(main(sys.argv[1:]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1 and "aliases" in lines[0]


def test_a_config_that_is_a_device_is_read_no_further_than_the_bound(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"/dev/zero is larger than {MAX_FILE_BYTES} bytes"):
        load_settings([], {"ORPHEUS_CONFIG": "/dev/zero"}, tmp_path)


def test_a_dotenv_of_invalid_utf8_names_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(b"ORPHEUS_VOICE=tara\n# ok\nORPHEUS_SPEED=\xc3\x28\n")
    with pytest.raises(ConfigError, match=r"\.env file .*\.env, line 3: not valid UTF-8"):
        load_settings([], {}, tmp_path)


@pytest.mark.parametrize(
    ("data", "name"),
    [(b"\xff\xfe", "c.yaml"), (b"[" * 5000, "c.yaml"), (b"x: &a 1\ny: *a\n", "c.yaml")],
)
def test_the_command_exits_2_with_one_line_not_a_traceback(
    tmp_path: Path, data: bytes, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / name).write_bytes(data)
    assert main(["--config", str(tmp_path / name)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("wyoming-orpheus: error: config file")


def test_settings_that_cannot_act_are_warned_about_at_start(tmp_path: Path) -> None:
    named = load_settings(
        ["--llm-url", "http://127.0.0.1:1/v1", "--llm-gguf", "/models/x.gguf"], {}, tmp_path
    )
    assert any("managed mode's settings (llm_gguf)" in said for said in ignored_settings(named))
    unix = load_settings(["--uri", "unix:///tmp/x.sock", "--zeroconf"], {}, tmp_path)
    assert any("nothing is advertised" in said for said in ignored_settings(unix))
    assert ignored_settings(load_settings(["--llm-gguf", "/m/x.gguf"], {}, tmp_path)) == []
    assert ignored_settings(load_settings(["--zeroconf"], {}, tmp_path)) == []


def test_the_warning_reaches_the_log_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def serve(settings: object) -> None:  # stop right after the warnings
        return None

    monkeypatch.setattr("wyoming_orpheus.__main__.serve", serve)
    with caplog.at_level(logging.WARNING):
        code = main(["--llm-url", "http://127.0.0.1:1/v1", "--llama-server", "/x/llama-server"])
    assert code == 0
    assert "Ignored: managed mode's settings (llama_server): managed mode runs only" in caplog.text


def test_a_configured_llama_server_that_cannot_run_says_why(tmp_path: Path) -> None:
    from wyoming_orpheus.managed.binary import find_binary

    plain = tmp_path / "llama-server"
    plain.write_text("#!/bin/sh\n")  # no executable bit
    with pytest.raises(ConfigError, match=r"exists but is not executable \(chmod \+x"):
        find_binary(str(plain))
    with pytest.raises(ConfigError, match="is a folder, not the llama-server program"):
        find_binary(str(tmp_path))
    with pytest.raises(ConfigError, match="does not exist"):
        find_binary(str(tmp_path / "missing" / "llama-server"))
    with pytest.raises(ConfigError, match="is not on PATH"):
        find_binary("no-such-llama-server")
    plain.chmod(0o755)
    assert find_binary(str(plain)) == plain
