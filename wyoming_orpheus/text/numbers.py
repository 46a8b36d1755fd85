"""Numbers as words, with num2words: cardinals, decimals, ordinals, years, money."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from num2words import CONVERTER_CLASSES, num2words

from .languages import Words

# A number as people and Home Assistant write it: 1234, 1,234, 1.234.567, 12.5, 12,5, 1 234.
NUMBER = r"\d{1,3}(?:[,.'\u00a0\u202f]\d{3})+(?:[.,]\d+)?|\d+(?:[.,]\d+)?"
_GROUP_MARKS = "'\u00a0\u202f"
# num2words handles integers far larger than this; beyond it, digits are read one by one
# (serial numbers, not quantities).
_MAX_DIGITS = 15


@dataclass(frozen=True)
class Number:
    """A written number taken apart: sign, whole digits and fraction digits."""

    negative: bool
    whole: str
    fraction: str

    @property
    def is_one(self) -> bool:
        return not self.negative and not self.fraction and self.whole.lstrip("0") == "1"

    def value(self) -> Decimal:
        sign = "-" if self.negative else ""
        return Decimal(f"{sign}{self.whole}.{self.fraction or '0'}")


def parse_number(text: str, words: Words, negative: bool = False) -> Number:
    """Read the separators in a written number the way its language writes them.

    Home Assistant always writes "." as the decimal point; other clients may write the
    language's own mark ("12,5" in German). So: two kinds of mark -> the last one is the
    decimal; one "." -> decimal, unless it groups thousands more than once (1.234.567);
    one "," -> thousands in English when three digits follow, else the decimal mark.
    """
    marks = [ch for ch in text if not ch.isdigit()]
    if not marks:
        return Number(negative, text, "")
    if len(set(marks)) > 1:
        cut = max(text.rfind("."), text.rfind(","))
        if text[cut] in _GROUP_MARKS:
            return Number(negative, _digits(text), "")
        return Number(negative, _digits(text[:cut]), text[cut + 1 :])
    mark = marks[0]
    if mark in _GROUP_MARKS or len(marks) > 1:
        return Number(negative, _digits(text), "")
    whole, _, fraction = text.partition(mark)
    if mark == "," and words.comma_groups_thousands and len(fraction) == 3:
        return Number(negative, whole + fraction, "")
    return Number(negative, whole, fraction)


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def cardinal(value: int, words: Words) -> str:
    """Return an integer in words."""
    if len(str(abs(value))) > _MAX_DIGITS:
        return digit_by_digit(str(abs(value)), words)
    return str(num2words(value, lang=words.code))


def digit_by_digit(digits: str, words: Words) -> str:
    """Read digits one at a time (fractions, serial numbers)."""
    return " ".join(str(num2words(int(d), lang=words.code)) for d in digits)


def speak_number(number: Number, words: Words) -> str:
    """Return a number in words: "minus twelve point five"."""
    whole = number.whole.lstrip("0") or "0"
    if len(number.whole) > 1 and number.whole.startswith("0") and not number.fraction:
        spoken = digit_by_digit(number.whole, words)  # 007, 0815: a code, not a quantity
    else:
        spoken = cardinal(int(whole), words)
    if number.fraction:
        spoken = f"{spoken} {words.decimal} {digit_by_digit(number.fraction, words)}"
    if number.negative:
        spoken = f"{words.minus} {spoken}"
    return spoken


def ordinal(value: int, words: Words) -> str:
    """Return an ordinal in words: "twenty-third"."""
    return str(num2words(value, lang=words.code, to="ordinal"))


def year(value: int, words: Words) -> str:
    """Return a year the way it is said: "nineteen ninety-nine", "neunzehnhundertneunundneunzig"."""
    return str(num2words(value, lang=words.code, to="year"))


def money(number: Number, code: str, words: Words) -> str | None:
    """Return an amount of money in words, or None if num2words lacks the currency here."""
    converter = CONVERTER_CLASSES[words.code]
    forms = getattr(converter, "CURRENCY_FORMS", {}).get(code)
    if not forms or number.negative:
        return None
    if len(number.fraction) > 2:  # not cents: a price per unit, read as a decimal
        return f"{speak_number(number, words)} {_name(converter, 2, forms)}"
    cents = number.fraction.ljust(2, "0") if number.fraction else ""
    if cents and int(cents):
        value = Decimal(f"{number.whole}.{cents}")
        return str(num2words(value, lang=words.code, to="currency", currency=code))
    whole = int(number.whole)
    count = words.one if whole == 1 else cardinal(whole, words)
    return f"{count} {_name(converter, whole, forms)}"


def _name(converter: object, count: int, forms: object) -> str:
    """Return the currency's name for count (num2words keeps some as plain strings)."""
    main = forms[0] if isinstance(forms, tuple) else forms
    if isinstance(main, str):
        return main
    return str(converter.pluralize(count, main))  # type: ignore[attr-defined]
