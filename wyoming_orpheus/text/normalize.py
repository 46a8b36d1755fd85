"""Spoken form: numbers, units, times, dates, money and the rest written out as words.

Runs between cleaning and segmentation, in the language of the voice, so the model reads
"21.5 °C" as "twenty-one point five degrees Celsius" instead of guessing. Emotion tags are
never touched; SSML markup never gets here (only the text it speaks does).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..config import NORMALIZE_CATEGORIES
from . import units
from .cleaning import outside_tags, tidy_punctuation
from .clock import speak_date, speak_time
from .languages import BY_CODE, Words, words_for
from .numbers import NUMBER, Number, money, ordinal, parse_number, speak_number, year


@dataclass(frozen=True)
class NormalizeOptions:
    """Which categories are written out, and what happens to web and e-mail addresses."""

    categories: frozenset[str] = frozenset(NORMALIZE_CATEGORIES)
    urls: str = "speak"
    """`speak`: the host name ("home-assistant dot io") and e-mail addresses; `drop`: removed."""


def normalize(text: str, language: str, options: NormalizeOptions) -> str:
    """Return the text as the voice of this language should say it."""
    words = words_for(language)
    rules = [rule for category, rule in _RULES if category in options.categories]
    if words is None:  # no number words here: only addresses may go
        rules = [_urls] if "urls" in options.categories and options.urls == "drop" else []

    def change(piece: str) -> str:
        for rule in rules:
            piece = rule(piece, words or _NO_WORDS, options)
        return piece

    text = outside_tags(text, change)
    if "punctuation" in options.categories:
        full_stop = "。" if language.startswith("zh") else "."
        # Without unit words, a unit symbol is better read by the model than dropped.
        text = tidy_punctuation(text, full_stop, keep_unit_symbols=words is None)
    return text


Rule = Callable[[str, Words, NormalizeOptions], str]
# A number with a boundary on each side: not inside a word, a version, an address or a
# time (with times off, "21:30" stays as written rather than "twenty-one:thirty").
_NUM_START = rf"(?<![\w.,:])(?:{NUMBER})"
_NUM = rf"{_NUM_START}(?![\w:]|[.,]\d)"
_SIGN = r"(?:(?<![\w)\]])[-−+])"


# --- web and e-mail addresses --------------------------------------------------------------

_URL_RE = re.compile(r"\b(?:https?://|www\.)[^\s<>\"']+", re.IGNORECASE)
_EMAIL_RE = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_URL_TRAIL = ".,;:!?)]}'\""


def _urls(text: str, words: Words, options: NormalizeOptions) -> str:
    def url(match: re.Match[str]) -> str:
        address = match.group(0).rstrip(_URL_TRAIL)
        trail = match.group(0)[len(address) :]
        if options.urls == "drop":
            return trail
        host = urlsplit(address if "://" in address else f"http://{address}").hostname or ""
        return _dotted(host.removeprefix("www."), words) + trail

    def email(match: re.Match[str]) -> str:
        if options.urls == "drop":
            return ""
        local, _, domain = match.group(0).partition("@")
        return f"{_dotted(local, words)} {words.at} {_dotted(domain, words)}"

    return _EMAIL_RE.sub(email, _URL_RE.sub(url, text))


def _dotted(name: str, words: Words) -> str:
    return f" {words.dot} ".join(part for part in name.split(".") if part)


# --- money -------------------------------------------------------------------------------

_CODES = {"$": "USD", "€": "EUR", "£": "GBP"}
_MONEY_BEFORE = re.compile(rf"(?P<sym>[$€£])(?P<num>{NUMBER})(?![\w:]|[.,]\d)")
_MONEY_AFTER = re.compile(rf"(?P<num>{_NUM})\s?(?P<sym>[$€£](?!\d)|\b(?:EUR|USD|GBP)\b)")


def _currency(text: str, words: Words, options: NormalizeOptions) -> str:
    def speak(match: re.Match[str]) -> str:
        code = _CODES.get(match.group("sym"), match.group("sym"))
        spoken = money(parse_number(match.group("num"), words), code, words)
        return spoken if spoken is not None else match.group(0)

    # "12,50 € 21:30": the symbol belongs to the amount before it, so that goes first.
    return _MONEY_BEFORE.sub(speak, _MONEY_AFTER.sub(speak, text))


# --- dates and times ---------------------------------------------------------------------

_ISO_DATE = re.compile(r"(?<![\d-])(\d{4})-(\d{1,2})-(\d{1,2})(T(?=\d{1,2}:\d\d))?(?![\d-])")
_DOTTED_DATE = re.compile(r"(?<![\d.])(\d{1,2})\.\s?(\d{1,2})\.\s?(\d{4})(?!\d)")
_SLASHED_DATE = re.compile(r"(?<![\d/])(\d{1,2})/(\d{1,2})/(\d{4})(?![\d/])")


def _dates(text: str, words: Words, options: NormalizeOptions) -> str:
    def iso(match: re.Match[str]) -> str:
        year_value, month, day = (int(g) for g in match.group(1, 2, 3))
        spoken = _date(day, month, year_value, words, match)
        return f"{spoken} " if match.group(4) and spoken != match.group(0) else spoken

    def dotted(match: re.Match[str]) -> str:
        day, month, year_value = (int(g) for g in match.group(1, 2, 3))
        return _date(day, month, year_value, words, match)

    def slashed(match: re.Match[str]) -> str:
        first, second, year_value = (int(g) for g in match.group(1, 2, 3))
        # US order in English unless the first number cannot be a month; day first elsewhere.
        month_first = words.code == "en" and first <= 12
        day, month = (second, first) if month_first else (first, second)
        return _date(day, month, year_value, words, match)

    text = _ISO_DATE.sub(iso, text)
    text = _DOTTED_DATE.sub(dotted, text)
    return _SLASHED_DATE.sub(slashed, text)


def _date(day: int, month: int, year_value: int, words: Words, match: re.Match[str]) -> str:
    if not (1 <= month <= 12 and 1 <= day <= 31 and words.months):
        return match.group(0)
    before = match.string[: match.start()].split()
    return speak_date(day, month, year_value, words, before[-1] if before else "")


_TIME = r"(?<![\d:.,])([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?"
_MERIDIEM = r"\s?(?P<mer>[AaPp])\.?\s?[Mm](?P<stop>\.?)(?!\w)"
_TIME_RE = re.compile(rf"{_TIME}(?![\d:])")
# English 12-hour times: 9:05 pm, 9 p.m., 9PM ("am" is a German word, so English only).
_TIME_EN_RE = re.compile(rf"{_TIME}(?:{_MERIDIEM})?(?![\d:])")
_HOUR_EN_RE = re.compile(rf"(?<![\d:.,])(1[0-2]|0?[1-9]){_MERIDIEM}")


def _times(text: str, words: Words, options: NormalizeOptions) -> str:
    def clock(match: re.Match[str]) -> str:
        hour, minute = int(match.group(1)), int(match.group(2))
        meridiem = match.groupdict().get("mer")
        if meridiem and not 1 <= hour <= 12:
            return match.group(0)
        spoken = speak_time(hour, minute, words, meridiem.lower() if meridiem else None)
        seconds = match.group(3)
        if seconds and int(seconds):
            spoken += f" {_with_unit(parse_number(seconds, words), 'second', words)}"
        return spoken + _kept_stop(match)

    def hour_only(match: re.Match[str]) -> str:
        meridiem = match.group("mer").lower()
        return speak_time(int(match.group(1)), 0, words, meridiem) + _kept_stop(match)

    if words.code == "en":
        return _HOUR_EN_RE.sub(hour_only, _TIME_EN_RE.sub(clock, text))
    return _TIME_RE.sub(clock, text)


def _kept_stop(match: re.Match[str]) -> str:
    """Give back the period of "p.m." when it also ended the sentence."""
    stop = match.groupdict().get("stop")
    rest = match.string[match.end() :]
    return "." if stop and (not rest.strip() or re.match(r"\s+[A-Z]", rest)) else ""


# --- quantities with units (temperatures, percentages, sensor units) -----------------------

_UNIT_ALTERNATIVES = "|".join(re.escape(s) for s in sorted(units.SYMBOLS, key=len, reverse=True))
_QUANTITY_RE = re.compile(
    rf"(?P<sign>{_SIGN}?)(?P<num>{_NUM_START})"
    rf"(?:\s?[-–]\s?(?P<sign2>[-−]?)(?P<num2>{NUMBER}))?"
    rf"(?P<space>\s?)(?P<unit>{_UNIT_ALTERNATIVES})(?![\w/²³])"
)


def _units(text: str, words: Words, options: NormalizeOptions) -> str:
    def quantity(match: re.Match[str]) -> str:
        symbol = match.group("unit")
        key = units.SYMBOLS[symbol]
        if key not in units.NAMES.get(words.code, {}) or (
            symbol in units.NEEDS_SPACE and not match.group("space")
        ):
            return match.group(0)
        first = parse_number(match.group("num"), words, _negative(match.group("sign")))
        if match.group("num2") is None:
            return _with_unit(first, key, words)
        second = parse_number(match.group("num2"), words, _negative(match.group("sign2")))
        names = units.NAMES[words.code][key].split("|")
        low, high = speak_number(first, words), speak_number(second, words)
        return f"{_range(low, high, words, match)} {names[1]}"

    return _QUANTITY_RE.sub(quantity, text)


def _with_unit(number: Number, key: str, words: Words) -> str:
    names = units.NAMES[words.code][key].split("|")
    if number.is_one:
        return names[2] if len(names) > 2 else f"{words.one} {names[0]}"
    name = names[0] if _singular(number, words) else names[1]
    return f"{speak_number(number, words)} {name}"


def _singular(number: Number, words: Words) -> bool:
    if words.code == "fr":  # French: singular below two ("1,5 degré")
        return not number.negative and number.value() < 2 and number.value() != 0
    return number.is_one


def _negative(sign: str | None) -> bool:
    return sign is not None and sign in ("-", "−")


def _range(low: str, high: str, words: Words, match: re.Match[str]) -> str:
    """ "three to five"; "between three and five" after "between"; "da tre a cinque"."""
    before = match.string[: match.start()].split()
    previous = before[-1].lower() if before else ""
    if words.between and previous == words.between[0]:
        return f"{low} {words.between[1]} {high}"
    prefix = words.range_prefix if previous != words.range_prefix else ""
    return f"{prefix} {low} {words.range_word} {high}".lstrip()


# --- ordinals, years, abbreviations --------------------------------------------------------

_ORDINAL_RE = {
    "en": re.compile(r"(?<![\w.,])(\d+)(st|nd|rd|th)(?!\w)", re.IGNORECASE),
    "fr": re.compile(r"(?<![\w.,])(\d+)(er|re|ère|e|ème|eme)(?!\w)"),
    "es": re.compile(r"(?<![\w.,])(\d+)\.?([ºª])"),
    "it": re.compile(r"(?<![\w.,])(\d+)\.?([ºª])"),
}
_FEMININE_FIRST = {"fr": ("premier", "première")}


def _ordinals(text: str, words: Words, options: NormalizeOptions) -> str:
    pattern = _ORDINAL_RE.get(words.code)
    if pattern is None:
        return text

    def speak(match: re.Match[str]) -> str:
        spoken = ordinal(int(match.group(1)), words)
        feminine = match.group(2) in ("re", "ère", "ª")
        if feminine and words.code == "fr":
            return spoken.replace("premier", "première")
        if feminine and spoken.endswith("o"):
            return spoken[:-1] + "a"
        return spoken

    return pattern.sub(speak, text)


def _alternatives(options: Iterable[str]) -> str:
    """A regex alternation, longest first (so "sig.ra" wins over "sig")."""
    return "|".join(re.escape(o) for o in sorted(options, key=len, reverse=True))


# Built once per language at import: these rules run on every sentence.
_YEAR_RE = {
    w.code: re.compile(
        rf"(?<!\w)({_alternatives(w.year_cues)})\s+(1[1-9]\d\d|20\d\d)(?![\w]|[.,]\d)",
        re.IGNORECASE,
    )
    for w in BY_CODE.values()
    if w.year_cues
}
_ABBREVIATION_RE = {
    w.code: re.compile(rf"(?<![\w.])({_alternatives(w.abbreviations)})\.(?=\s|$)", re.IGNORECASE)
    for w in BY_CODE.values()
    if w.abbreviations
}


def _years(text: str, words: Words, options: NormalizeOptions) -> str:
    pattern = _YEAR_RE.get(words.code)
    if pattern is None:
        return text
    return pattern.sub(lambda m: f"{m.group(1)} {year(int(m.group(2)), words)}", text)


def _abbreviations(text: str, words: Words, options: NormalizeOptions) -> str:
    pattern = _ABBREVIATION_RE.get(words.code)
    if pattern is None:
        return text

    def expand(match: re.Match[str]) -> str:
        key = match.group(1).lower()
        rest = match.string[match.end() :]
        before_name = re.match(r"\s+[A-Z\d]", rest) is not None
        title, _, otherwise = words.abbreviations[key].partition("|")
        if key in words.numbering:
            return title if re.match(r"\s+\d", rest) else match.group(0)
        if otherwise:  # "St." -> Saint before a name, Street after one
            return title if before_name else otherwise + _stop_if_end(rest)
        if key in words.titles:
            return title if before_name else match.group(0)
        return title + _stop_if_end(rest)

    return pattern.sub(expand, text)


def _stop_if_end(rest: str) -> str:
    """Keep the abbreviation's period when it also ended the sentence."""
    return "." if not rest.strip() or re.match(r"\s+[A-Z]", rest) else ""


# --- plain numbers and symbols -------------------------------------------------------------

_RANGE_RE = re.compile(rf"(?<![\w.,])({NUMBER})(?:[-–]|\s–\s)({NUMBER})(?![\w]|[.,]\d)")
_NUMBER_RE = re.compile(rf"(?P<sign>{_SIGN}?)(?P<num>{_NUM})")


def _numbers(text: str, words: Words, options: NormalizeOptions) -> str:
    def span(match: re.Match[str]) -> str:
        low, high = (speak_number(parse_number(g, words), words) for g in match.group(1, 2))
        return _range(low, high, words, match)

    def number(match: re.Match[str]) -> str:
        sign = match.group("sign")
        spoken = speak_number(parse_number(match.group("num"), words, _negative(sign)), words)
        return f"{words.plus} {spoken}" if sign == "+" else spoken

    return _NUMBER_RE.sub(number, _RANGE_RE.sub(span, text))


def _symbols(text: str, words: Words, options: NormalizeOptions) -> str:
    text = re.sub(r"\s*&\s*", f" {words.and_word} ", text)
    return re.sub(r"(?<=\s)\+(?=\s)", words.plus, text)


_RULES: tuple[tuple[str, Rule], ...] = (
    ("urls", _urls),
    ("dates", _dates),
    ("currency", _currency),
    ("times", _times),
    ("units", _units),
    ("ordinals", _ordinals),
    ("dates", _years),
    ("abbreviations", _abbreviations),
    ("numbers", _numbers),
    ("symbols", _symbols),
)
_NO_WORDS = Words(code="", decimal="", comma_groups_thousands=True, one="", minus="", range_word="")
