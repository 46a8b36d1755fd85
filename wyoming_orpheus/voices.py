"""The voice catalog: names, languages, descriptions, and which upstream speaks each."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# NOTE: the only non-speech tags the English fine-tune was trained on (model card);
# any other <tag> is read aloud or ignored by the model, so the text cleaner drops it.
EMOTION_TAGS = ("laugh", "chuckle", "sigh", "cough", "sniffle", "groan", "yawn", "gasp")


CUSTOM_MODEL = "custom"
"""The `model` of a voice a config declares (a fine-tune's own speaker)."""


@dataclass(frozen=True)
class Voice:
    """One Orpheus voice."""

    name: str
    """The name the model was fine-tuned on; it starts the prompt."""
    language: str
    """BCP-47 code; Home Assistant needs at least one per voice."""
    gender: str
    description: str
    model: str
    """Which Orpheus fine-tune speaks it; each needs its own LLM server."""


def _english(name: str, gender: str, description: str) -> Voice:
    return Voice(name, "en", gender, description, "english")


# NOTE: listed in the model authors' order of realism (REFERENCE.md section 4).
_ENGLISH = (
    _english("tara", "female", "Female, conversational, clear"),
    _english("leah", "female", "Female, warm, gentle"),
    _english("jess", "female", "Female, energetic, youthful"),
    _english("leo", "male", "Male, authoritative, deep"),
    _english("dan", "male", "Male, friendly, casual"),
    _english("mia", "female", "Female, professional, articulate"),
    _english("zac", "male", "Male, enthusiastic, dynamic"),
    _english("zoe", "female", "Female, calm, soothing"),
)

_MULTILINGUAL = (
    Voice("pierre", "fr", "male", "French, male", "french"),
    Voice("amelie", "fr", "female", "French, female", "french"),
    Voice("marie", "fr", "female", "French, female", "french"),
    Voice("jana", "de", "female", "German, female", "german"),
    Voice("thomas", "de", "male", "German, male", "german"),
    Voice("max", "de", "male", "German, male", "german"),
    Voice("유나", "ko", "female", "Korean, female", "korean"),
    Voice("준서", "ko", "male", "Korean, male", "korean"),
    Voice("ऋतिका", "hi", "female", "Hindi, female", "hindi"),
    Voice("长乐", "zh", "female", "Mandarin, female", "mandarin"),
    Voice("白芷", "zh", "female", "Mandarin, female", "mandarin"),
    # Spanish and Italian share one fine-tune.
    Voice("javi", "es", "male", "Spanish, male", "spanish-italian"),
    Voice("sergio", "es", "male", "Spanish, male", "spanish-italian"),
    Voice("maria", "es", "female", "Spanish, female", "spanish-italian"),
    Voice("pietro", "it", "male", "Italian, male", "spanish-italian"),
    Voice("giulia", "it", "female", "Italian, female", "spanish-italian"),
    Voice("carlo", "it", "male", "Italian, male", "spanish-italian"),
)

ALL_VOICES: tuple[Voice, ...] = _ENGLISH + _MULTILINGUAL


def voices_for_binding(binding: Iterable[str], custom: Iterable[Voice] = ()) -> tuple[Voice, ...]:
    """Resolve an upstream's `voices` setting (names or language codes) to voices.

    No names and no custom voices means the English voices; an upstream that declares
    only custom voices (a fine-tune with its own speakers) offers only those.
    """
    wanted = tuple(binding)
    own = tuple(custom)
    if not wanted:
        return own or _ENGLISH
    result = []
    for voice in ALL_VOICES:
        if voice.name in wanted or voice.language in wanted:
            result.append(voice)
    return tuple(result) + own


def unknown_binding_entries(binding: Iterable[str]) -> list[str]:
    """Return the entries of a `voices` setting that name no voice and no language."""
    names = {voice.name for voice in ALL_VOICES}
    languages = {voice.language for voice in ALL_VOICES}
    return [item for item in binding if item not in names and item not in languages]


def builtin_name(name: str) -> bool:
    """Tell whether a name is one of the built-in voices (custom voices may not reuse it)."""
    return any(v.name.casefold() == name.casefold() for v in ALL_VOICES)


class VoiceCatalog:
    """The voices on offer: those some configured upstream is bound to or declares."""

    def __init__(self, offered_per_upstream: Iterable[Iterable[Voice]]) -> None:
        offered: dict[str, Voice] = {}
        for voices in offered_per_upstream:
            for voice in voices:
                offered.setdefault(voice.name.casefold(), voice)
        # Built-ins in catalog order (not binding order, so `describe` is stable),
        # then custom voices in the order the config declares them.
        builtin = tuple(v for v in ALL_VOICES if offered.get(v.name.casefold()) is v)
        custom = tuple(v for v in offered.values() if v.model == CUSTOM_MODEL)
        self._voices = builtin + custom
        self._by_name = {v.name.casefold(): v for v in self._voices}

    @property
    def voices(self) -> tuple[Voice, ...]:
        """Return the offered voices."""
        return self._voices

    def get(self, name: str) -> Voice | None:
        """Find an offered voice by name, ignoring case."""
        return self._by_name.get(name.strip().casefold())
