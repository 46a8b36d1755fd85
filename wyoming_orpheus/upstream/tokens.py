"""Token text -> validated 7-code SNAC frames, parsed once per arrival (`Piece`)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from ..format import (
    AUDIO_TOKEN_BASE,
    CODES_PER_SLOT,
    END_OF_SPEECH,
    TOKEN_PREFIX,
    TOKENS_PER_FRAME,
    Frame,
    is_audio_token,
)

_LOGGER = logging.getLogger(__name__)

_TOKEN_RE = re.compile(re.escape(TOKEN_PREFIX) + r"(\d+)>")


def iter_token_numbers(text: str) -> Iterator[int]:
    """Yield N for every complete `<custom_token_N>` in text."""
    for match in _TOKEN_RE.finditer(text):
        yield int(match.group(1))


@dataclass
class FrameStats:
    """What the parser saw; dropped counts are visible in logs and metrics."""

    frames: int = 0
    invalid_tokens: int = 0
    """Tokens outside slot 0..6 (for example a code of 4096 in slot 6)."""
    dropped_tokens: int = 0
    """Valid tokens discarded while resynchronising after a slot mismatch."""
    end_of_speech: bool = False
    tokens: int = 0
    """Audio-range tokens seen (valid or not); a token split across arrivals counts once."""

    def add(self, other: FrameStats) -> None:
        """Add another parser's counts (a request's segments, a consumer's pieces)."""
        self.frames += other.frames
        self.invalid_tokens += other.invalid_tokens
        self.dropped_tokens += other.dropped_tokens
        self.end_of_speech = self.end_of_speech or other.end_of_speech
        self.tokens += other.tokens


@dataclass(frozen=True)
class Piece:
    """One arrival of an LLM's streamed text, parsed once: what every consumer reads.

    NOTE: issue 30: the pool's rate clock, its audio-start check, the playout meter and the
    frame parser each scanned the text again (three rate meters, and a token split across two
    arrivals was counted twice or not at all). The pool now parses each arrival once.
    """

    arrived: float
    """When it arrived (the pool's clock): what every rate is measured from."""
    frames: tuple[Frame, ...] = ()
    found: FrameStats = field(default_factory=FrameStats)
    """What parsing it found: its frames, audio tokens, dropped and invalid tokens."""

    @property
    def tokens(self) -> int:
        """Return the audio tokens this arrival completed."""
        return self.found.tokens

    def merged(self, later: Piece) -> Piece:
        """Return this piece and a later one as one (arrived when the later one did)."""
        found = replace(self.found)
        found.add(later.found)
        return Piece(later.arrived, self.frames + later.frames, found)


class FrameParser:
    """Turn streamed token text into frames, whatever the chunking.

    The slot of a token comes from its number, not from its position in the stream,
    so a broken frame is detected and only that frame is lost.
    """

    def __init__(self) -> None:
        self.stats = FrameStats()
        self._pending = ""  # text after the last complete token (a token may be split)
        self._partial: list[int] = []

    def feed(self, text: str) -> list[Frame]:
        """Parse one chunk (any number of tokens, possibly split) into complete frames."""
        text = self._pending + text
        frames: list[Frame] = []
        end = 0
        for match in _TOKEN_RE.finditer(text):
            end = match.end()
            frame = self._take(int(match.group(1)))
            if frame is not None:
                frames.append(frame)
        self._pending = _incomplete_tail(text[end:])
        return frames

    def parse(self, text: str, arrived: float) -> Piece:
        """Parse one arrival into a Piece: its frames and what else it held."""
        before = replace(self.stats)
        frames = self.feed(text)
        return Piece(arrived, tuple(frames), _since(before, self.stats))

    def close(self, arrived: float) -> Piece:
        """End the stream (`finish`); return what that dropped as a last, frameless Piece."""
        before = replace(self.stats)
        self.finish()
        return Piece(arrived, (), _since(before, self.stats))

    def finish(self) -> None:
        """End the stream: an incomplete last frame cannot be decoded and is dropped."""
        if self._partial:
            _LOGGER.debug("Dropping %d tokens of an incomplete last frame", len(self._partial))
            self.stats.dropped_tokens += len(self._partial)
            self._partial = []
        self._pending = ""

    def _take(self, number: int) -> Frame | None:
        if number >= AUDIO_TOKEN_BASE:
            self.stats.tokens += 1
        if not is_audio_token(number):
            if number >= AUDIO_TOKEN_BASE:
                self.stats.invalid_tokens += 1
                _LOGGER.debug("Rejecting out-of-range token <custom_token_%d>", number)
            elif number == END_OF_SPEECH:
                self.stats.end_of_speech = True
            return None

        slot, code = divmod(number - AUDIO_TOKEN_BASE, CODES_PER_SLOT)
        if slot != len(self._partial):
            self._resync(slot)
            if slot != 0:
                self.stats.dropped_tokens += 1
                return None
        self._partial.append(code)
        if len(self._partial) < TOKENS_PER_FRAME:
            return None
        frame: Frame = tuple(self._partial)  # type: ignore[assignment]
        self._partial = []
        self.stats.frames += 1
        return frame

    def _resync(self, slot: int) -> None:
        if self._partial:
            _LOGGER.debug(
                "Slot %d after %d tokens: dropping the broken frame", slot, len(self._partial)
            )
            self.stats.dropped_tokens += len(self._partial)
            self._partial = []


def _incomplete_tail(rest: str) -> str:
    """Keep a possibly split token at the end of a chunk; drop other text."""
    start = rest.rfind("<")
    if start < 0:
        return ""
    tail = rest[start:]
    if ">" in tail or not TOKEN_PREFIX.startswith(tail[: len(TOKEN_PREFIX)]):
        return ""
    # A run of digits that never ends would grow forever; a token number has at most 6.
    return tail if len(tail) <= len(TOKEN_PREFIX) + 7 else ""


def _since(before: FrameStats, now: FrameStats) -> FrameStats:
    """Return what a parser found between two copies of its stats."""
    return FrameStats(
        frames=now.frames - before.frames,
        invalid_tokens=now.invalid_tokens - before.invalid_tokens,
        dropped_tokens=now.dropped_tokens - before.dropped_tokens,
        end_of_speech=now.end_of_speech and not before.end_of_speech,
        tokens=now.tokens - before.tokens,
    )
