"""The pronunciation lexicon: whole words per language, case rules, tags untouched, reload."""

from __future__ import annotations

from pathlib import Path

import pytest

from wyoming_orpheus.text import Lexicon, LexiconError, NormalizeOptions, TextPipeline

LEXICON = """\
all:
  HA: Home Assistant
  zigbee: zig bee
en:
  Wi-Fi: why fye
de:
  HA: Hausautomation
  WLAN: weh lahn
"""


@pytest.fixture
def lexicon_file(tmp_path: Path) -> Path:
    path = tmp_path / "lexicon.yaml"
    path.write_text(LEXICON, encoding="utf-8")
    return path


def test_whole_words_per_language_with_every_language_as_the_fallback(lexicon_file: Path) -> None:
    lexicon = Lexicon.load(str(lexicon_file))
    assert lexicon.apply("HA turned the Zigbee lamp on (HAL stays)", "en") == (
        "Home Assistant turned the zig bee lamp on (HAL stays)"
    )
    assert lexicon.apply("HA und WLAN, Wi-Fi", "de-AT") == "Hausautomation und weh lahn, Wi-Fi"
    assert lexicon.apply("Wi-Fi is up", "en") == "why fye is up"


def test_upper_case_entries_match_exactly_lower_case_ones_any_case(lexicon_file: Path) -> None:
    lexicon = Lexicon.load(str(lexicon_file))
    assert lexicon.apply("ha! Ha. HA. ZIGBEE zigbee", "en") == (
        "ha! Ha. Home Assistant. zig bee zig bee"
    )


def test_emotion_tags_are_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "l.yaml"
    path.write_text("all:\n  laugh: giggle\n", encoding="utf-8")
    assert Lexicon.load(str(path)).apply("laugh <laugh> laugh", "en") == "giggle <laugh> giggle"


def test_the_lexicon_runs_before_normalization(lexicon_file: Path) -> None:
    pipeline = TextPipeline(NormalizeOptions(), str(lexicon_file))
    assert pipeline.spoken("HA says 21 °C", "en") == (
        "Home Assistant says twenty-one degrees Celsius."
    )


def test_the_shipped_example_lexicon_loads() -> None:
    path = Path(__file__).resolve().parents[1] / "config" / "lexicon.yaml"
    lexicon = Lexicon.load(str(path))
    assert lexicon.apply("HA found a Zigbee lamp", "en") == ("Home Assistant found a zig bee lamp")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a list\n", "must map languages"),
        ("en: [one, two]\n", "'en' must map words"),
        ("en:\n  word: [x]\n", "en, word: must be text"),
        ("en: {word: [unclosed\n", "not valid YAML"),
    ],
)
def test_a_bad_lexicon_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LexiconError, match=message):
        Lexicon.load(str(path))
    with pytest.raises(LexiconError, match="cannot read lexicon"):
        Lexicon.load(str(tmp_path / "missing.yaml"))


def test_reload_takes_the_new_file_and_keeps_the_old_one_when_broken(
    lexicon_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline = TextPipeline(NormalizeOptions(frozenset()), str(lexicon_file))
    lexicon_file.write_text("all:\n  HA: House Automation\n", encoding="utf-8")
    assert pipeline.reload_lexicon()
    assert pipeline.spoken("HA is on", "en") == "House Automation is on"
    lexicon_file.write_text("all: [broken\n", encoding="utf-8")
    assert not pipeline.reload_lexicon()
    assert "previous one stays in use" in caplog.text
    assert pipeline.spoken("HA is on", "en") == "House Automation is on"
