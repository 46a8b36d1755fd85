"""Token text -> frames: the reference parsers' bugs must not exist here."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from tests.stand_ins.llm_server import frame_tokens
from wyoming_orpheus.upstream.tokens import FrameParser


def tokens_for(frames: list[tuple[int, ...]]) -> list[str]:
    return frame_tokens(frames)


def parse_all(chunks: list[str]) -> tuple[list[tuple[int, ...]], FrameParser]:
    parser = FrameParser()
    frames = [frame for chunk in chunks for frame in parser.feed(chunk)]
    parser.finish()
    return frames, parser


def test_code_zero_is_kept_and_does_not_desync() -> None:
    frames = [(0, 0, 0, 0, 0, 0, 0), (1, 2, 3, 4, 5, 6, 7), (0, 4095, 0, 4095, 0, 4095, 0)]
    parsed, parser = parse_all(tokens_for(frames))
    assert parsed == frames
    assert parser.stats.dropped_tokens == 0


def test_code_4096_in_the_last_slot_is_rejected_not_passed_on() -> None:
    good = [(5, 5, 5, 5, 5, 5, 5)]
    # slot 6 with code 4096 is token 10 + 6*4096 + 4096: outside every slot.
    broken = [*tokens_for([(1, 1, 1, 1, 1, 1, 1)])[:6], "<custom_token_28682>"]
    parsed, parser = parse_all(broken + tokens_for(good))
    assert parsed == good
    assert parser.stats.invalid_tokens == 1
    assert parser.stats.dropped_tokens == 6
    assert all(0 <= code < 4096 for frame in parsed for code in frame)


def test_every_token_of_a_coalesced_chunk_is_parsed() -> None:
    frames = [(9, 8, 7, 6, 5, 4, 3), (3, 4, 5, 6, 7, 8, 9)]
    parsed, _ = parse_all(["".join(tokens_for(frames))])
    assert parsed == frames


def test_a_token_split_across_chunks_is_parsed() -> None:
    text = "".join(tokens_for([(100, 200, 300, 400, 500, 600, 700)]))
    parsed, _ = parse_all([text[:5], text[5:23], text[23:24], text[24:]])
    assert parsed == [(100, 200, 300, 400, 500, 600, 700)]


def test_a_misaligned_run_loses_only_the_broken_frame() -> None:
    first, second, third = (1,) * 7, (2,) * 7, (3,) * 7
    tokens = tokens_for([first]) + tokens_for([second])[:4] + tokens_for([third])
    parsed, parser = parse_all(tokens)
    assert parsed == [first, third]
    assert parser.stats.dropped_tokens == 4


def test_garbage_text_and_control_tokens_are_ignored() -> None:
    frame = (11, 22, 33, 44, 55, 66, 77)
    chunks = ["<custom_token_1>", "hello <|eot_id|>", *tokens_for([frame]), "<custom_token_2>"]
    parsed, parser = parse_all(chunks)
    assert parsed == [frame]
    assert parser.stats.end_of_speech


def test_an_incomplete_last_frame_is_dropped_and_counted() -> None:
    parsed, parser = parse_all(tokens_for([(1,) * 7, (2,) * 7])[:10])
    assert parsed == [(1,) * 7]
    assert parser.stats.dropped_tokens == 3


frames_strategy = st.lists(st.tuples(*[st.integers(0, 4095)] * 7), min_size=0, max_size=12)


@given(frames=frames_strategy, cuts=st.lists(st.integers(0, 10_000), max_size=20))
def test_any_chunking_gives_the_same_frames(frames: list[tuple[int, ...]], cuts: list[int]) -> None:
    text = "".join(tokens_for(frames))
    points = sorted({c % (len(text) + 1) for c in cuts})
    chunks = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
    parsed, parser = parse_all(chunks)
    assert parsed == frames
    assert parser.stats.dropped_tokens == 0


@given(frames=frames_strategy, noise=st.lists(st.integers(0, 200_000), max_size=10))
def test_inserted_bad_tokens_never_yield_invalid_codes(
    frames: list[tuple[int, ...]], noise: list[int]
) -> None:
    tokens = tokens_for(frames)
    for position, number in enumerate(noise):
        tokens.insert((position * 5) % (len(tokens) + 1), f"<custom_token_{number}>")
    parsed, _ = parse_all(tokens)
    assert all(len(f) == 7 and all(0 <= c < 4096 for c in f) for f in parsed)
    # Every parsed frame is one the model really sent or a valid regrouping of sent tokens.
    assert len(parsed) <= len(frames) + len(noise) // 7 + 1


@given(cuts=st.lists(st.integers(0, 200), max_size=12))
def test_each_arrival_is_parsed_once_and_a_split_token_counts_once(cuts: list[int]) -> None:
    # Issue 30: the rate meters counted `<custom_token_` per arrival, so a token split across
    # two arrivals counted in neither or (with a split prefix) twice.
    frames = [(1, 2, 3, 4, 5, 6, 7), (7, 6, 5, 4, 3, 2, 1), (9, 9, 9, 9, 9, 9, 9)]
    text = "".join(tokens_for(frames))
    bounds = sorted({0, len(text), *(c % (len(text) + 1) for c in cuts)})
    parser = FrameParser()
    pieces = [parser.parse(text[a:b], arrived=float(a)) for a, b in itertools.pairwise(bounds)]
    assert [frame for piece in pieces for frame in piece.frames] == frames
    assert sum(piece.tokens for piece in pieces) == 21
    merged = pieces[0]
    for piece in pieces[1:]:
        merged = merged.merged(piece)
    assert merged.frames == tuple(frames) and merged.tokens == 21
    assert merged.arrived == pieces[-1].arrived


def test_a_last_incomplete_frame_is_reported_when_the_stream_closes() -> None:
    parser = FrameParser()
    piece = parser.parse("".join(tokens_for([(1,) * 7]) + tokens_for([(2,) * 7])[:3]), 1.0)
    assert len(piece.frames) == 1 and piece.tokens == 10
    last = parser.close(2.0)
    assert last.frames == () and last.found.dropped_tokens == 3
