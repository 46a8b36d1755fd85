"""Times and dates as they are said in each language."""

from __future__ import annotations

from .languages import Words
from .numbers import cardinal, ordinal, year


def speak_time(hour: int, minute: int, words: Words, meridiem: str | None = None) -> str:
    """Return a clock time in words; meridiem is "a" or "p" for an English 12-hour time."""
    if meridiem and words.code != "en":
        hour = hour % 12 + (12 if meridiem == "p" else 0)  # said as a 24-hour time
        meridiem = None
    speak = _TIME.get(words.code, _time_korean)
    return speak(hour, minute, words, meridiem)


def _time_english(hour: int, minute: int, words: Words, meridiem: str | None) -> str:
    spoken_hour = cardinal(hour, words)
    if minute == 0:
        if meridiem or hour <= 12:
            text = f"{spoken_hour} o'clock" if not meridiem else spoken_hour
        else:
            text = f"{spoken_hour} hundred"
    elif minute < 10:
        text = f"{spoken_hour} oh {cardinal(minute, words)}"
    else:
        text = f"{spoken_hour} {cardinal(minute, words)}"
    return f"{text} {meridiem.upper()} M" if meridiem else text


def _time_german(hour: int, minute: int, words: Words, meridiem: str | None) -> str:
    spoken_hour = words.one if hour == 1 else cardinal(hour, words)
    if minute == 0:
        return f"{spoken_hour} Uhr"
    return f"{spoken_hour} Uhr {cardinal(minute, words)}"


def _time_french(hour: int, minute: int, words: Words, meridiem: str | None) -> str:
    spoken_hour = _feminine(cardinal(hour, words), "un", "une")
    unit = "heure" if hour <= 1 else "heures"
    if minute == 0:
        return f"{spoken_hour} {unit}"
    return f"{spoken_hour} {unit} {cardinal(minute, words)}"


def _time_spanish(hour: int, minute: int, words: Words, meridiem: str | None) -> str:
    spoken_hour = _feminine(cardinal(hour, words), "uno", "una")
    if minute == 0:
        return f"{spoken_hour} en punto"
    return f"{spoken_hour} y {cardinal(minute, words)}"


def _time_italian(hour: int, minute: int, words: Words, meridiem: str | None) -> str:
    spoken_hour = "una" if hour == 1 else cardinal(hour, words)  # "ventuno", but "l'una"
    if minute == 0:
        return f"{spoken_hour} in punto"
    return f"{spoken_hour} e {cardinal(minute, words)}"


def _time_korean(hour: int, minute: int, words: Words, meridiem: str | None) -> str:
    # Sino-Korean hours, as announcements read a 24-hour clock.
    if minute == 0:
        return f"{cardinal(hour, words)}시"
    return f"{cardinal(hour, words)}시 {cardinal(minute, words)}분"


def _feminine(spoken: str, masculine: str, feminine: str) -> str:
    """Hours are feminine in French, Spanish and Italian: "vingt et une heures"."""
    return spoken[: -len(masculine)] + feminine if spoken.endswith(masculine) else spoken


_TIME = {
    "en": _time_english,
    "de": _time_german,
    "fr": _time_french,
    "es": _time_spanish,
    "it": _time_italian,
}


def speak_date(day: int, month: int, year_value: int | None, words: Words, before: str) -> str:
    """Return a date in words; before is the word preceding it (German inflects after "am")."""
    month_name = words.months[month - 1]
    spoken_year = year(year_value, words) if year_value is not None else ""
    code = words.code
    if code == "en":
        text = f"{month_name} {ordinal(day, words)}"
        return f"{text}, {spoken_year}" if spoken_year else text
    if code == "de":
        text = f"{_german_day(day, words, before)} {month_name}"
    elif code == "ko":
        text = f"{month_name} {cardinal(day, words)}일"
        return f"{spoken_year} {text}" if spoken_year else text
    else:
        first = {"fr": "premier", "es": "primero", "it": "primo"}.get(code, "")
        spoken_day = first if day == 1 and first else cardinal(day, words)
        joiner = " de " if code == "es" else " "
        text = f"{spoken_day}{joiner}{month_name}"
        return f"{text}{joiner}{spoken_year}" if spoken_year else text
    return f"{text} {spoken_year}" if spoken_year else text


def _german_day(day: int, words: Words, before: str) -> str:
    """ "am dreiundzwanzigsten", "der dreiundzwanzigste", "dreiundzwanzigster" alone."""
    base = ordinal(day, words)
    word = before.lower()
    if word in ("am", "vom", "zum", "im", "beim", "dem", "den", "ab", "bis"):
        return base + "n"
    if word in ("der", "die", "das"):
        return base
    return base + "r"
