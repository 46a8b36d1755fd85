"""The typed settings: one frozen dataclass per section, composed into `Settings`.

Each setting is declared once, as a field of its section (config/doors.py, config/llm.py,
config/speech.py); each part of the server is handed only its own sections. The flat keys of
the config file, the flags and the ORPHEUS_* variables are unchanged: a key names one field of
one section, and `Settings.of` maps them. The loader (config/loading.py), the flags
(config/cli.py) and the documented config file (config/wyoming-orpheus.yaml, written by
config/document.py) are generated from these fields.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, get_type_hints

from .declare import APPEND, Declared, Section, Spec, specs

# Re-exported: every section is imported from here (or the package).
from .doors import HttpSettings, LimitSettings, ProcessSettings, WyomingSettings
from .llm import LlmSettings, ManagedSettings, RequestSettings, SamplingSettings, UpstreamSettings
from .speech import DecoderSettings, PlayoutSettings, SpeechSettings
from .values import name_list, url_list


class ConfigError(Exception):
    """A setting has an invalid value; the message names the setting and its source."""


@dataclass(frozen=True)
class Settings:
    """Every setting of the server, parsed and validated once at start, by section."""

    wyoming: WyomingSettings = field(default_factory=WyomingSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    llm: LlmSettings = field(default_factory=LlmSettings)
    managed: ManagedSettings = field(default_factory=ManagedSettings)
    requests: RequestSettings = field(default_factory=RequestSettings)
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    speech: SpeechSettings = field(default_factory=SpeechSettings)
    playout: PlayoutSettings = field(default_factory=PlayoutSettings)
    decoder: DecoderSettings = field(default_factory=DecoderSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    process: ProcessSettings = field(default_factory=ProcessSettings)

    @classmethod
    def of(cls, **values: Any) -> Settings:
        """Build settings from flat keys (`uri=..., max_tokens=...`), the rest defaults."""
        return cls().but(**values)

    def but(self, **values: Any) -> Settings:
        """Return a copy with the flat keys given changed (each key names one section field)."""
        changes: dict[str, dict[str, Any]] = {}
        for key, value in values.items():
            if key not in SECTION_OF:
                raise TypeError(f"no setting is called {key!r}")
            changes.setdefault(SECTION_OF[key], {})[key] = value
        sections = {
            name: dataclasses.replace(getattr(self, name), **fields)
            for name, fields in changes.items()
        }
        return dataclasses.replace(self, **sections)

    def value(self, key: str) -> Any:
        """Return one setting by its flat key (the loader's and the start warnings' view)."""
        return getattr(getattr(self, SECTION_OF[key]), key)


_SECTION_TYPES: dict[str, type[Section]] = get_type_hints(Settings)
SECTIONS: tuple[type[Section], ...] = tuple(_SECTION_TYPES.values())
"""The sections in the order the documented config file lists them."""
SECTION_OF = {spec.name: name for name, cls in _SECTION_TYPES.items() for spec in specs(cls)}
"""Each flat key -> the Settings field (the section) that holds it."""


def _shorthands() -> list[Spec]:
    """llm_urls and llm_<key>: one set of upstream settings for every URL given."""
    urls = Spec(
        "llm_urls",
        (),
        Declared(
            parse=url_list,
            section=LlmSettings.TITLE,
            flag="--llm-url",
            kind=APPEND,
            metavar="URL",
            env=("ORPHEUS_API_URL",),
            help="One or more LLM servers: a base URL (http://host:8080/v1) or the full endpoint "
            "URL (http://host:8080/v1/completions, http://host:11434/api/generate); "
            "comma-separated in the environment, the flag repeated.",
        ),
    )
    common = [
        Spec(f"llm_{s.name}", s.default, dataclasses.replace(s.declared, flag=""))
        for s in specs(UpstreamSettings)
        if s.name != "url"
    ]
    return [urls, *common]


def declared() -> list[Spec]:
    """Return every setting a source may set, grouped by section in the documented order."""
    every = [*_shorthands(), *(spec for cls in SECTIONS for spec in specs(cls))]
    titles = [cls.TITLE for cls in SECTIONS]  # the shorthands lead their section
    return sorted(every, key=lambda s: titles.index(s.declared.section))


UPSTREAM_KEYS = {s.name: s.declared.parse for s in specs(UpstreamSettings)}
"""The keys of one `upstreams` entry and their parsers (voices: split_voices, in the loader)."""
UPSTREAM_KEYS["voices"] = name_list
