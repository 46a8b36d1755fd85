"""Every example in the docs and in config/ goes through the real loaders, so none goes stale.

YAML blocks are settings files (the config loader), lexicons (the lexicon loader) or Home
Assistant actions (their voice must exist); shell blocks that run wyoming-orpheus are parsed by
its own flag parser, llama-server command lines are checked against the real llama-server, and
every file of the repository a command names must exist.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from tests.stand_ins.llama_server import options as llama_server_options
from wyoming_orpheus.config.cli import load_settings
from wyoming_orpheus.text.lexicon import Lexicon
from wyoming_orpheus.voices import ALL_VOICES

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = [
    REPO / "README.md",
    *sorted((REPO / "docs").glob("*.md")),
    REPO / "docker" / "homeassistant-addon" / "DOCS.md",
]
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
_LANGUAGE_KEY = re.compile(r"all|[a-z]{2}(-[A-Za-z]{2})?")


def blocks(kind: str) -> list[tuple[str, str]]:
    """(where, text) of every fenced block of one kind in the documents."""
    found = []
    for path in DOCUMENTS:
        text = path.read_text(encoding="utf-8")
        for number, match in enumerate(_FENCE.finditer(text), start=1):
            if match[1] == kind:
                found.append((f"{path.relative_to(REPO)} block {number}", match[2]))
    return found


def commands(text: str) -> list[list[str]]:
    """The command lines of a shell block, continuations joined, environment prefixes dropped."""
    result = []
    for line in text.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
            words.pop(0)
        if words and words[0] == "sudo":
            words.pop(0)
        if words:
            result.append(words)
    return result


def is_lexicon(data: object) -> bool:
    return (
        isinstance(data, dict)
        and all(isinstance(k, str) and _LANGUAGE_KEY.fullmatch(k) for k in data)
        and all(isinstance(v, dict) for v in data.values())
    )


def test_the_documents_have_examples_to_check() -> None:
    # The scan itself must find what is there, or every other test here passes on nothing.
    assert len(blocks("yaml")) >= 5 and len(blocks("sh")) >= 20


@pytest.mark.parametrize(("where", "text"), blocks("yaml"))
def test_yaml_examples_load(where: str, text: str, tmp_path: Path) -> None:
    data = yaml.safe_load(text)
    path = tmp_path / "example.yaml"
    path.write_text(text, encoding="utf-8")
    if is_lexicon(data):
        assert len(Lexicon.load(str(path))) > 0, where
    elif "action" in data:
        assert data["action"] == "tts.speak", where
        assert data["data"]["options"]["voice"] in {v.name for v in ALL_VOICES}, where
    else:
        load_settings(["--config", str(path)], {}, tmp_path)


@pytest.mark.parametrize(("where", "text"), blocks("sh"))
def test_shell_examples_run_real_options_and_files(where: str, text: str, tmp_path: Path) -> None:
    for words in commands(text):
        program = words[0]
        # Files of this repository that a command names (a Modelfile, a config, a Dockerfile).
        named = [w for w in words if w.startswith(("docker/", "config/"))]
        assert all((REPO / w).exists() for w in named), f"{where}: {named}"
        if program in ("wyoming-orpheus", "script/run"):
            load_settings(words[1:], {}, tmp_path)
        elif program == "docker" and words[1] == "run":
            image = next(i for i, w in enumerate(words) if w.startswith("wyoming-orpheus:"))
            load_settings(words[image + 1 :], {}, tmp_path)
        elif program == "docker" and words[1] == "compose":
            files = [words[i + 1] for i, w in enumerate(words) if w == "-f"]
            assert files and all((REPO / f).is_file() for f in files), where
        elif program == "llama-server":
            assert set(o for o in words[1:] if o.startswith("-")) <= llama_server_options(), where


@pytest.mark.parametrize(
    "path",
    sorted((REPO / "config").rglob("*.yaml")),
    ids=lambda p: str(p.relative_to(REPO)),
)
def test_every_file_in_config_loads(path: Path, tmp_path: Path) -> None:
    if is_lexicon(yaml.safe_load(path.read_text(encoding="utf-8"))):
        assert len(Lexicon.load(str(path))) > 0
    else:
        load_settings(["--config", str(path)], {}, tmp_path)


def test_troubleshooting_explains_every_error_code_the_server_sends() -> None:
    source = "\n".join(
        path.read_text(encoding="utf-8") for path in (REPO / "wyoming_orpheus").rglob("*.py")
    )
    # Codes are set as `code = "..."`, `code="..."` or paired with their exception class;
    # two-letter matches are language codes. aiohttp's own refusals become codes from their
    # reason (errors.py): the two a client can meet are listed by hand.
    found = set(re.findall(r'code ?= ?"([a-z-]{3,})"', source))
    found |= set(re.findall(r'\(\w+Error, "([a-z-]+)"\)', source))
    found |= {"internal-error", "not-found", "method-not-allowed"}
    assert {"busy", "no-audio", "bad-request", "body-timeout"} <= found  # the scan works
    guide = (REPO / "docs" / "troubleshooting.md").read_text(encoding="utf-8")
    missing = sorted(code for code in found if f"`{code}`" not in guide)
    assert missing == [], f"docs/troubleshooting.md does not explain {missing}"
