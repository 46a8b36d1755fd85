"""Text cleaning, SSML and segment splitting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wyoming_orpheus.text import Pause, TextError, clean_text, split_segments, ssml_to_parts


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Hello <laugh> there", "Hello <laugh> there"),
        ("Oh <SIGH> well", "Oh <sigh> well"),
        ("<p>Hi</p> <br/>you", "Hi you"),
        ("<whisper>psst</whisper>", "psst"),
        ("**Bold** and _x_ `code`", "Bold and _x_ code"),
        ("# Title\n- item one\n- item two", "Title item one item two"),
        ("Party 🎉 time\u200b!", "Party time!"),
        ("a\x00b\tc", "ab c"),
    ],
)
def test_clean_text(raw: str, clean: str) -> None:
    assert clean_text(raw) == clean


def test_ssml_text_and_breaks() -> None:
    parts = ssml_to_parts(
        '<speak xmlns="http://www.w3.org/2001/10/synthesis">One.<break time="1.5s"/>'
        '<p>Two <emphasis>three</emphasis>.</p><break strength="strong"/>Four.</speak>'
    )
    # Text between two breaks is one part (one utterance), however it is marked up.
    assert parts == ["One.", Pause(1.5), "Two three.", Pause(0.6), "Four."]


def test_ssml_paragraphs_never_run_together_and_sub_and_say_as_are_read() -> None:
    parts = ssml_to_parts(
        "<speak><p>First</p><p>second <sub alias='World Wide Web'>WWW</sub></p>"
        "<s>Call <say-as interpret-as='characters'>HA</say-as> now</s></speak>"
    )
    assert [clean_text(p) for p in parts if isinstance(p, str)] == [
        "First second World Wide Web Call H A now"
    ]


def test_invalid_ssml_is_a_clear_error() -> None:
    with pytest.raises(TextError, match="invalid SSML"):
        ssml_to_parts("<speak>unclosed")


def test_segments_pack_sentences_up_to_the_limit() -> None:
    text = "First sentence here. Second one is here. Third is the last one."
    assert split_segments(text, 45) == [
        "First sentence here. Second one is here.",
        "Third is the last one.",
    ]
    assert split_segments(text, 1000) == [text]


def test_an_overlong_sentence_splits_at_clauses_then_spaces_never_in_a_tag() -> None:
    sentence = "word " * 30 + "<chuckle> and then, after a pause; more words follow here"
    segments = split_segments(sentence, 40)
    assert all(len(s) <= 40 for s in segments)
    assert " ".join(segments).split() == sentence.split()
    assert all(s.count("<") == s.count(">") for s in segments)


@given(st.lists(st.sampled_from([*"abc .,!?<>", "<laugh>", "Word ", ". Next"]), max_size=150))
def test_segments_never_exceed_the_limit_and_keep_every_word(pieces: list[str]) -> None:
    text = "".join(pieces)
    segments = split_segments(clean_text(text), 50)
    assert all(0 < len(s) <= 50 for s in segments)
    assert "".join("".join(segments).split()) == "".join(clean_text(text).split())
