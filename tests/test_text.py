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


# --- issue 31: hostile SSML and text that once held the event loop ---


@pytest.mark.parametrize(
    ("ssml", "why"),
    [
        ('<!DOCTYPE s [<!ENTITY a "aa">]><speak>&a;</speak>', "DOCTYPE, DTD or entity"),
        ('<!DOCTYPE s SYSTEM "file:///etc/passwd"><speak>x</speak>', "DOCTYPE, DTD or entity"),
        ("<speak>" + "<p>" * 5000 + "x" + "</p>" * 5000 + "</speak>", "nested deeper than 64"),
        ("<speak>&undefined;</speak>", "undefined entity"),
    ],
    ids=["entities", "external", "deep", "undefined"],
)
def test_hostile_ssml_is_bad_text_not_a_crash(ssml: str, why: str) -> None:
    with pytest.raises(TextError, match=why):
        ssml_to_parts(ssml)


def test_ssml_nested_within_the_bound_is_spoken() -> None:
    assert ssml_to_parts("<speak>" + "<p>" * 60 + "x" + "</p>" * 60 + "</speak>") == ["x"]


_SENTENCE = st.builds(
    lambda first, rest, end: f"{first}{rest}{end}",
    st.sampled_from(["The", "A", "Dr", "Mr", "It", "We", "Über", "一个"]),
    st.text(alphabet="abc de,'\"", max_size=40),
    st.sampled_from([".", "!", "?", "...", '."', "。", "", "\n\n"]),
)


@given(st.lists(_SENTENCE, max_size=12), st.integers(1, 50))
def test_the_splitter_matches_sentence_stream_in_any_chunking(
    sentences: list[str], chunk: int
) -> None:
    from sentence_stream import stream_to_sentences

    from wyoming_orpheus.text import SentenceSplitter, split_sentences

    text = " ".join(sentences)
    expected = [s.strip() for s in stream_to_sentences([text]) if s.strip()]
    assert split_sentences(text) == expected
    splitter = SentenceSplitter()
    streamed: list[str] = []
    for start in range(0, len(text), chunk):
        streamed += splitter.add(text[start : start + chunk])
    streamed += splitter.finish()
    assert [s.strip() for s in streamed if s.strip()] == expected


def test_a_run_with_no_sentence_end_is_cut_at_a_space_within_the_bound() -> None:
    from wyoming_orpheus.text.sentences import LONGEST_SENTENCE, split_sentences

    words = [f"word{index}" for index in range(5000)]
    sentences = split_sentences(" ".join(words))
    assert max(len(s) for s in sentences) <= LONGEST_SENTENCE + 80
    assert " ".join(sentences).split() == words  # every word once, none cut in two
    assert split_sentences("x" * 5000) == ["x" * 5000]  # no space at all: one piece


@given(st.integers(1, 40))
def test_a_long_run_streamed_in_chunks_keeps_every_word_whole(chunk: int) -> None:
    from wyoming_orpheus.text import SentenceSplitter

    words = [f"w{index}" for index in range(1500)]
    text = " ".join(words)
    splitter = SentenceSplitter(longest=200)
    out: list[str] = []
    for start in range(0, len(text), chunk):
        out += splitter.add(text[start : start + chunk])
    out += splitter.finish()
    assert " ".join(out).split() == words
    assert max(len(s) for s in out) <= 200 + 80
