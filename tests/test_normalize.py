"""What the model receives: Home Assistant messages per language, through the real normalizer."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wyoming_orpheus.config import NORMALIZE_CATEGORIES
from wyoming_orpheus.text import NormalizeOptions, TextPipeline, normalize
from wyoming_orpheus.voices import EMOTION_TAGS

ALL = NormalizeOptions()

# (language, what Home Assistant or a client writes, what the model must receive)
MESSAGES = [
    # English: temperatures, units, percentages
    (
        "en",
        "It is 21.5 °C, humidity 45 %",
        "It is twenty-one point five degrees Celsius, humidity forty-five percent.",
    ),
    ("en", "It is -3 °C outside", "It is minus three degrees Celsius outside."),
    ("en", "Set to 70 °F", "Set to seventy degrees Fahrenheit."),
    ("en", "The sensor reads 300 K", "The sensor reads three hundred kelvin."),
    ("en", "Battery at 5 %", "Battery at five percent."),
    ("en", "Energy today 12.4 kWh", "Energy today twelve point four kilowatt hours."),
    ("en", "The lamp uses 1 W", "The lamp uses one watt."),
    (
        "en",
        "Grid 230 V, 16 A, 50 Hz",
        "Grid two hundred and thirty volts, sixteen amperes, fifty hertz.",
    ),
    (
        "en",
        "Light 350 lx, CO2 800 ppm",
        "Light three hundred and fifty lux, CO2 eight hundred parts per million.",
    ),
    ("en", "PM2.5 is 8 µg/m³", "PM2.5 is eight micrograms per cubic meter."),
    (
        "en",
        "Noise 42 dB, pressure 1013.2 hPa",
        "Noise forty-two decibels, pressure one thousand and thirteen point two hectopascals.",
    ),
    (
        "en",
        "Wind 12 km/h, gusts 4 m/s",
        "Wind twelve kilometers per hour, gusts four meters per second.",
    ),
    ("en", "Wind 7.5 mph", "Wind seven point five miles per hour."),
    (
        "en",
        "Rain 2 mm, snow 3.5 cm, visibility 10 km",
        "Rain two millimeters, snow three point five centimeters, visibility ten kilometers.",
    ),
    ("en", "Tank 40 L, dose 5 mL", "Tank forty liters, dose five milliliters."),
    (
        "en",
        "Parcel 250 g, suitcase 20 kg",
        "Parcel two hundred and fifty grams, suitcase twenty kilograms.",
    ),
    ("en", "Bathroom 65 %RH", "Bathroom sixty-five percent relative humidity."),
    ("en", "Pressure 1020 mbar", "Pressure one thousand and twenty millibars."),
    # numbers
    ("en", "We had 1,234 visitors", "We had one thousand, two hundred and thirty-four visitors."),
    ("en", "The score was +5", "The score was plus five."),
    ("en", "It takes 3-5 days", "It takes three to five days."),
    ("en", "Between 3-5 people", "Between three and five people."),
    ("en", "COVID-19 cases", "COVID-nineteen cases."),
    ("en", "Firmware 1.2.3 on 192.168.1.1", "Firmware 1.2.3 on 192.168.1.1."),
    # times and dates
    ("en", "The washer finished at 21:30", "The washer finished at twenty-one thirty."),
    ("en", "Alarm at 7:00", "Alarm at seven o'clock."),
    ("en", "Meet at 9:05 pm. Then go", "Meet at nine oh five P M. Then go."),
    ("en", "It starts at 9 am", "It starts at nine A M."),
    ("en", "On 2026-11-23 it rained", "On November twenty-third, twenty twenty-six it rained."),
    ("en", "Due 11/23/2026", "Due November twenty-third, twenty twenty-six."),
    ("en", "Built in 1999", "Built in nineteen ninety-nine."),
    ("en", "The 1st and the 23rd", "The first and the twenty-third."),
    # money, abbreviations, addresses, symbols, punctuation
    ("en", "It costs $500", "It costs five hundred dollars."),
    ("en", "It costs $5.99", "It costs five dollars, ninety-nine cents."),
    (
        "en",
        "Dr. Smith lives on Main St. in St. Louis",
        "Doctor Smith lives on Main Street in Saint Louis.",
    ),
    ("en", "No. 5 is here. I said no. Really", "number five is here. I said no. Really."),
    ("en", "Fruit, nuts, etc. Then more", "Fruit, nuts, et cetera. Then more."),
    (
        "en",
        "See https://www.home-assistant.io/docs. Or write to me@example.com",
        "See home-assistant dot io. Or write to me at example dot com.",
    ),
    ("en", "Salt & pepper", "Salt and pepper."),
    ("en", "Wow!!! Really?!?", "Wow! Really?"),
    ("en", "Wait.... what", "Wait... what."),
    ("en", "Here is the list:", "Here is the list."),
    ("en", "Well <laugh> that is 2 %", "Well <laugh> that is two percent."),
    ("en", "Hello <sigh>", "Hello. <sigh>"),
    # German: HA writes "." as the decimal point; German clients write ","
    (
        "de",
        "Es ist 21.5 °C, Luftfeuchtigkeit 45 %",
        "Es ist einundzwanzig Komma fünf Grad Celsius, Luftfeuchtigkeit fünfundvierzig Prozent.",
    ),
    ("de", "Es ist 20.8 Grad", "Es ist zwanzig Komma acht Grad."),
    ("de", "Verbrauch 12,5 kWh", "Verbrauch zwölf Komma fünf Kilowattstunden."),
    ("de", "Heute 1 kWh", "Heute eine Kilowattstunde."),
    (
        "de",
        "Die Waschmaschine war um 21:30 fertig",
        "Die Waschmaschine war um einundzwanzig Uhr dreißig fertig.",
    ),
    ("de", "Um 1:00 geht es los", "Um ein Uhr geht es los."),
    (
        "de",
        "Am 23.11.2026 regnet es",
        "Am dreiundzwanzigsten November zweitausendsechsundzwanzig regnet es.",
    ),
    ("de", "Seit 1999 hier", "Seit neunzehnhundertneunundneunzig hier."),
    ("de", "Das kostet 12,50 €", "Das kostet zwölf Euro und fünfzig Cent."),
    (
        "de",
        "Strecke 1.234.567 m",
        "Strecke eine Million zweihundertvierunddreißigtausendfünfhundertsiebenundsechzig Meter.",
    ),
    ("de", "Nr. 5 ist z. B. rot", "Nummer fünf ist zum Beispiel rot."),
    ("de", "Zwischen 3-5 Tagen", "Zwischen drei und fünf Tagen."),
    ("de", "Es ist -2 °C", "Es ist minus zwei Grad Celsius."),
    # French
    (
        "fr",
        "Il fait 21.5 °C et 1,5 °C",
        "Il fait vingt et un virgule cinq degrés Celsius et un virgule cinq degré Celsius.",
    ),
    ("fr", "Rendez-vous à 21:30", "Rendez-vous à vingt et une heures trente."),
    ("fr", "Le 1er mai 2026", "Le premier mai deux mille vingt-six."),
    ("fr", "Le 23/11/2026", "Le vingt-trois novembre deux mille vingt-six."),
    ("fr", "Prix 12,50 €", "Prix douze euros et cinquante centimes."),
    ("fr", "Batterie à 5 %", "Batterie à cinq pour cent."),
    ("fr", "M. Dupont arrive", "Monsieur Dupont arrive."),
    # Spanish
    ("es", "Hace 21.5 °C", "Hace veintiuno coma cinco grados Celsius."),
    ("es", "A las 21:30", "A las veintiuna y treinta."),
    ("es", "El 23/11/2026", "El veintitrés de noviembre de dos mil veintiséis."),
    ("es", "Cuesta $500", "Cuesta quinientos dólares."),
    ("es", "El 1º y la 2ª", "El primero y la segunda."),
    ("es", "Batería al 5 %", "Batería al cinco por ciento."),
    # Italian
    ("it", "Ci sono 21.5 °C", "Ci sono ventuno virgola cinque gradi Celsius."),
    ("it", "Alle 21:30", "Alle ventuno e trenta."),
    ("it", "Tra 3-5 giorni", "Tra tre e cinque giorni."),
    ("it", "Il 1º maggio", "Il primo maggio."),
    ("it", "Costa 12,50 €", "Costa dodici euro e cinquanta centesimi."),
    ("it", "Consumo 3 kWh", "Consumo tre chilowattora."),
    # Korean: Sino-Korean numbers, units in Hangul
    ("ko", "온도는 21.5 °C 입니다", "온도는 이십일 점 오 도 입니다."),
    ("ko", "배터리 5 %", "배터리 오 퍼센트."),
    ("ko", "21:30에 끝났습니다", "이십일시 삼십분에 끝났습니다."),
    ("ko", "2026-11-23", "이천이십육년 십일월 이십삼일."),
    # Hindi and Mandarin: num2words has no number words; digits and unit symbols stay
    ("hi", "तापमान 21.5 °C है!!!", "तापमान 21.5 °C है!"),
    ("zh", "温度是21.5 °C", "温度是21.5 °C。"),
]


@pytest.mark.parametrize(("language", "written", "spoken"), MESSAGES)
def test_home_assistant_messages(language: str, written: str, spoken: str) -> None:
    assert normalize(written, language, ALL) == spoken


def test_the_degree_sign_reaches_the_normalizer_through_the_pipeline() -> None:
    # Before #12 the cleaner dropped "°" as an emoji-like symbol: "21.5 C".
    text = TextPipeline(ALL).spoken("**Living room**: 21.5 °C 🌡️", "en")
    assert text == "Living room: twenty-one point five degrees Celsius."


def test_categories_turn_off_one_by_one() -> None:
    text = "At 21:30 it was 21.5 °C on 2026-11-23, cost $5 (see www.example.com)!!!"
    without_times = NormalizeOptions(frozenset(NORMALIZE_CATEGORIES) - {"times"})
    assert "21:30" in normalize(text, "en", without_times)
    assert "twenty-one point five degrees" in normalize(text, "en", without_times)
    without_units = NormalizeOptions(frozenset(NORMALIZE_CATEGORIES) - {"units"})
    assert "twenty-one point five °C" not in normalize(text, "en", without_units)
    assert "°" not in normalize(text, "en", without_units)  # punctuation still drops it
    nothing = NormalizeOptions(frozenset())
    assert normalize(text, "en", nothing) == text


def test_addresses_are_spoken_or_dropped() -> None:
    text = "Docs at https://www.home-assistant.io/docs/ and help@example.org."
    assert (
        normalize(text, "en", ALL) == "Docs at home-assistant dot io and help at example dot org."
    )
    dropped = NormalizeOptions(urls="drop")
    assert normalize(text, "en", dropped) == "Docs at and."
    assert normalize("Siehe www.example.de jetzt", "de", ALL) == "Siehe example Punkt de jetzt."


# --- properties ------------------------------------------------------------------------

_LANGUAGES = st.sampled_from(["en", "de", "fr", "es", "it", "ko", "hi", "zh"])
# Words no table knows (never an abbreviation, unit or cue), so each must survive as is.
_PLAIN_WORDS = st.text(alphabet="bcdfghjkpqvwxz", min_size=5, max_size=9)
_PIECES = st.one_of(
    _PLAIN_WORDS,
    st.sampled_from([f"<{tag}>" for tag in EMOTION_TAGS]),
    st.sampled_from(
        [
            "21.5 °C",
            "45 %",
            "12,4 kWh",
            "21:30",
            "9:05 pm",
            "2026-11-23",
            "23.11.2026",
            "$5.99",
            "12,50 €",
            "3-5",
            "-3",
            "1st",
            "Dr.",
            "etc.",
            "!!!",
            "?!",
            "...",
            "&",
            "www.example.com",
            "a@b.de",
            "1,234",
            "1.234.567",
            "0815",
            "+5",
            "10K",
            "°",
        ]
    ),
    st.integers(-(10**20), 10**20).map(str),
    st.decimals(-(10**6), 10**6, places=3, allow_nan=False, allow_infinity=False).map(str),
)
_TEXTS = st.lists(_PIECES, min_size=1, max_size=12).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(_TEXTS, _LANGUAGES)
def test_normalizing_is_idempotent(text: str, language: str) -> None:
    once = normalize(text, language, ALL)
    assert normalize(once, language, ALL) == once


@settings(max_examples=300, deadline=None)
@given(_TEXTS, _LANGUAGES)
def test_emotion_tags_and_plain_words_survive_in_order(text: str, language: str) -> None:
    out = normalize(text, language, ALL)
    kept = [t for t in text.split() if re.fullmatch(r"<\w+>|[bcdfghjkpqvwxz]{5,9}", t)]
    found = [t for t in re.findall(r"<\w+>|[bcdfghjkpqvwxz]{5,9}", out) if t in kept]
    assert found == kept


@settings(max_examples=300, deadline=None)
@given(_TEXTS)
def test_no_digit_is_left_in_a_language_with_number_words(text: str) -> None:
    # Digits may stay only inside names and addresses ("PM2.5", "1.2.3"): none of those here.
    out = normalize(text.replace("10K", "10 K"), "en", ALL)
    assert not re.search(r"\d", out), out
