"""A request's text on its way to the model: cleaned, lexicon applied, normalized."""

from __future__ import annotations

import logging

from .cleaning import clean_text
from .lexicon import Lexicon, LexiconError
from .normalize import NormalizeOptions, normalize
from .segments import split_segments, split_sentence_requests

_LOGGER = logging.getLogger(__name__)


class TextPipeline:
    """What every text part goes through before segmentation, for the voice's language."""

    def __init__(self, options: NormalizeOptions, lexicon_path: str | None = None) -> None:
        self._options = options
        self._lexicon_path = lexicon_path
        self._lexicon = Lexicon.load(lexicon_path) if lexicon_path else Lexicon()

    def spoken(self, text: str, language: str) -> str:
        """Return the text the model receives for a voice of this language."""
        text = clean_text(text)
        text = self._lexicon.apply(text, language)
        return normalize(text, language, self._options)

    def segments(self, text: str, language: str, max_chars: int) -> list[str]:
        """Return the spoken form of a text part in segments of at most max_chars."""
        return split_segments(self.spoken(text, language), max_chars)

    def sentences(self, text: str, language: str, max_chars: int) -> list[str]:
        """Return the spoken form of a text part as one request per sentence (issue 29)."""
        return split_sentence_requests(self.spoken(text, language), max_chars)

    def reload_lexicon(self) -> bool:
        """Read the lexicon file again; on an error keep the current one and log why."""
        if not self._lexicon_path:
            return False
        try:
            self._lexicon = Lexicon.load(self._lexicon_path)
        except LexiconError as err:
            _LOGGER.error("Lexicon not reloaded, the previous one stays in use: %s", err)
            return False
        _LOGGER.info("Lexicon reloaded: %d entries from %s", len(self._lexicon), self._lexicon_path)
        return True
