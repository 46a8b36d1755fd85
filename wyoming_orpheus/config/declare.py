"""One declaration per setting: its parser, default, help, flag and earlier names.

Every setting is declared once, as a field of its section's dataclass (or `UpstreamSettings`)
made by `setting()`; the loader, the command-line flags and the documented config file
(config/wyoming-orpheus.yaml, written by config/document.py) are all generated from these.
`setting()` is typed by its parser, so mypy checks each field's type against what its parser
returns (and a default against both).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar, overload

from .values import Parser

KEY = "wyoming_orpheus"
"""The dataclass field metadata key that holds a setting's declaration."""

VALUE, APPEND, SHELL_APPEND, OPTIONAL, OFF, ON, TOGGLE = (
    "value",
    "append",
    "shell-append",
    "optional",
    "off",
    "on",
    "toggle",
)
"""Flag kinds: --x V; --x V repeated; repeated, joined as shell words; --x [V]; --no-x (sets
false); --x (sets true); --x / --no-x."""


@dataclass(frozen=True)
class Declared:
    """What a setting is, beyond its name and default."""

    parse: Parser
    help: str
    """One or more sentences; the flag's help and the config file's comment."""
    section: str = ""
    """The section's title (filled in from the section's dataclass by `specs`)."""
    flag: str | None = ""
    """The flag; "" derives --the-name; None: no flag (a structure only YAML can carry)."""
    kind: str = VALUE
    metavar: str | None = None
    env: tuple[str, ...] = ()
    """Earlier environment names (the project this one replaces); ORPHEUS_<NAME> always works."""
    default_text: str | None = None
    """The default in words, where the value says little (None: the hardware tier's)."""
    note: str = ""
    """More for the config file only: examples, how a value is worked out."""
    in_env: bool = True
    """Whether ORPHEUS_<NAME> sets it (not for structures)."""


@dataclass(frozen=True)
class Spec:
    """A declared setting with its name and default."""

    name: str
    default: Any
    declared: Declared

    @property
    def flag(self) -> str | None:
        """Return the flag's name, or None for a setting only YAML sets."""
        flag = self.declared.flag
        return f"--{self.name.replace('_', '-')}" if flag == "" else flag


T = TypeVar("T")


class Section(Protocol):
    """A section's dataclass: its settings are its fields, its title and note its class's."""

    TITLE: ClassVar[str]
    NOTE: ClassVar[str]


@overload
def setting(default: T, *, parse: Callable[[Any], T], **declared: Any) -> T: ...
@overload
def setting(*, factory: Callable[[], T], parse: Callable[[Any], T], **declared: Any) -> T: ...
@overload
def setting(*, parse: Callable[[Any], T], **declared: Any) -> T: ...
def setting(
    default: Any = dataclasses.MISSING,
    *,
    parse: Callable[[Any], Any],
    factory: Callable[[], Any] | None = None,
    **declared: Any,
) -> Any:
    """Declare one settings field: its default (or factory), its parser and the rest."""
    metadata = {KEY: Declared(parse=parse, **declared)}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def specs(cls: type) -> list[Spec]:
    """Return the declared fields of a section's dataclass, in declaration order."""
    title: str = getattr(cls, "TITLE", "")
    found = []
    for field in dataclasses.fields(cls):
        if KEY not in field.metadata:
            continue
        if field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            default = None if field.default is dataclasses.MISSING else field.default
        declared = dataclasses.replace(field.metadata[KEY], section=title)
        found.append(Spec(field.name, default, declared))
    return found
