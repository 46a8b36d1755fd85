"""Text on its way to the model: cleaning, SSML, lexicon, spoken-form normalization, segments."""

from .cleaning import clean_text
from .lexicon import Lexicon, LexiconError
from .normalize import NormalizeOptions, normalize
from .parts import Part, Pause, TextError
from .pipeline import TextPipeline
from .segments import split_segments
from .sentences import SentenceSplitter, split_sentences
from .ssml import ssml_to_parts

__all__ = [
    "Lexicon",
    "LexiconError",
    "NormalizeOptions",
    "Part",
    "Pause",
    "SentenceSplitter",
    "TextError",
    "TextPipeline",
    "clean_text",
    "normalize",
    "split_segments",
    "split_sentences",
    "ssml_to_parts",
]
