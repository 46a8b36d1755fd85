"""The words the normalizer needs per language, beyond what num2words knows."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Words:
    """One language's spoken forms: separators, connectors, months, abbreviations."""

    code: str
    decimal: str
    """Read between the digits of a decimal: "point", "Komma"."""
    comma_groups_thousands: bool
    """True where "," groups thousands (English); elsewhere "," is the decimal mark."""
    one: str
    """The word for 1 before a unit ("ein Watt", not "eins Watt")."""
    minus: str
    range_word: str
    range_prefix: str = ""
    between: tuple[str, str] | None = None
    """("between", "and"): a range after "between" is "between three and five"."""
    and_word: str = "and"
    plus: str = "plus"
    dot: str = "dot"
    at: str = "at"
    months: tuple[str, ...] = ()
    abbreviations: dict[str, str] = field(default_factory=dict)
    """Lower-case abbreviation (without its period) -> words."""
    titles: frozenset[str] = frozenset()
    """Abbreviations that stand before a name; expanded only there ("Dr. Smith")."""
    numbering: frozenset[str] = frozenset()
    """Abbreviations expanded only before a number ("No. 5"; "no." alone is a word)."""
    year_cues: frozenset[str] = frozenset()
    """Words after which a bare four-digit number is a year."""
    full_stop: str = "."


def _months(names: str) -> tuple[str, ...]:
    return tuple(names.split())


ENGLISH = Words(
    code="en",
    minus="minus",
    between=("between", "and"),
    decimal="point",
    comma_groups_thousands=True,
    one="one",
    range_word="to",
    months=_months(
        "January February March April May June July August September October November December"
    ),
    abbreviations={
        "mr": "Mister",
        "mrs": "Missus",
        "ms": "Miz",
        "dr": "Doctor|Drive",
        "prof": "Professor",
        "st": "Saint|Street",
        "jr": "Junior",
        "sr": "Senior",
        "etc": "et cetera",
        "e.g": "for example",
        "i.e": "that is",
        "vs": "versus",
        "approx": "approximately",
        "no": "number",
        "ave": "Avenue",
        "rd": "Road",
    },
    titles=frozenset({"mr", "mrs", "ms", "prof"}),
    numbering=frozenset({"no"}),
    year_cues=frozenset({"in", "since", "from", "until", "by", "year", "of", "before", "after"}),
)

GERMAN = Words(
    code="de",
    minus="minus",
    between=("zwischen", "und"),
    decimal="Komma",
    comma_groups_thousands=False,
    one="ein",
    range_word="bis",
    and_word="und",
    dot="Punkt",
    at="at",
    months=_months(
        "Januar Februar März April Mai Juni Juli August September Oktober November Dezember"
    ),
    abbreviations={
        "z.b": "zum Beispiel",
        "z. b": "zum Beispiel",
        "usw": "und so weiter",
        "bzw": "beziehungsweise",
        "ca": "circa",
        "nr": "Nummer",
        "dr": "Doktor",
        "prof": "Professor",
        "hr": "Herr",
        "fr": "Frau",
        "str": "Straße",
        "evtl": "eventuell",
        "ggf": "gegebenenfalls",
        "d.h": "das heißt",
        "inkl": "inklusive",
        "max": "maximal",
        "min": "mindestens",
    },
    titles=frozenset({"dr", "prof", "hr", "fr"}),
    numbering=frozenset({"nr"}),
    year_cues=frozenset({"im", "seit", "bis", "jahr", "jahre", "von", "ab", "vor", "nach"}),
)

FRENCH = Words(
    code="fr",
    minus="moins",
    between=("entre", "et"),
    decimal="virgule",
    comma_groups_thousands=False,
    one="un",
    range_word="à",
    and_word="et",
    dot="point",
    at="arobase",
    months=_months(
        "janvier février mars avril mai juin juillet août septembre octobre novembre décembre"
    ),
    abbreviations={
        "m": "Monsieur",
        "mme": "Madame",
        "mlle": "Mademoiselle",
        "dr": "Docteur",
        "etc": "et cetera",
        "env": "environ",
    },
    titles=frozenset({"m", "mme", "mlle", "dr"}),
    year_cues=frozenset({"en", "depuis", "année", "jusqu'en", "avant", "après"}),
)

SPANISH = Words(
    code="es",
    minus="menos",
    between=("entre", "y"),
    decimal="coma",
    comma_groups_thousands=False,
    one="un",
    range_word="a",
    and_word="y",
    dot="punto",
    at="arroba",
    months=_months(
        "enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre diciembre"
    ),
    abbreviations={
        "sr": "señor",
        "sra": "señora",
        "srta": "señorita",
        "dr": "doctor",
        "dra": "doctora",
        "etc": "etcétera",
        "aprox": "aproximadamente",
        "núm": "número",
    },
    titles=frozenset({"sr", "sra", "srta", "dr", "dra"}),
    numbering=frozenset({"núm"}),
    year_cues=frozenset({"en", "desde", "año", "hasta", "antes", "después"}),
)

ITALIAN = Words(
    code="it",
    minus="meno",
    between=("tra", "e"),
    decimal="virgola",
    comma_groups_thousands=False,
    one="un",
    range_word="a",
    range_prefix="da",
    and_word="e",
    dot="punto",
    at="chiocciola",
    months=_months(
        "gennaio febbraio marzo aprile maggio giugno"
        " luglio agosto settembre ottobre novembre dicembre"
    ),
    abbreviations={
        "sig": "signor",
        "sig.ra": "signora",
        "dott": "dottor",
        "prof": "professor",
        "ecc": "eccetera",
        "ca": "circa",
    },
    titles=frozenset({"sig", "sig.ra", "dott", "prof"}),
    year_cues=frozenset({"nel", "dal", "anno", "fino", "prima", "dopo"}),
)

KOREAN = Words(
    code="ko",
    minus="마이너스",
    decimal="점",
    comma_groups_thousands=True,
    one="일",
    range_word="에서",
    and_word="그리고",
    plus="플러스",
    dot="점",
    at="골뱅이",
    months=_months("일월 이월 삼월 사월 오월 유월 칠월 팔월 구월 시월 십일월 십이월"),
)

# Languages num2words does not speak: Hindi and Mandarin numbers stay digits (the model
# reads them as it learned to); punctuation, the lexicon and URL handling still apply.
BY_CODE: dict[str, Words] = {w.code: w for w in (ENGLISH, GERMAN, FRENCH, SPANISH, ITALIAN, KOREAN)}


def words_for(language: str) -> Words | None:
    """Return the words for a BCP-47 tag ("de-CH" -> German), or None if not supported."""
    return BY_CODE.get(language.split("-")[0].split("_")[0].lower())
