"""The documented config file and README's flag table, written from the declarations.

`python -m wyoming_orpheus.config.document` rewrites config/wyoming-orpheus.yaml and the
table between README's settings markers; tests/test_config.py checks both are what it writes.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import yaml

from .choices import NORMALIZE_CATEGORIES
from .declare import OFF, Spec
from .settings import SECTIONS, declared
from .values import accepts

WIDTH = 96
HEADER = """\
# wyoming-orpheus settings. Written by `python -m wyoming_orpheus.config.document` from the
# declarations in wyoming_orpheus/config/ (doors.py, llm.py, speech.py): edit those.
#
# Precedence, lowest first: built-in defaults < this file (--config FILE or ORPHEUS_CONFIG)
# < a .env file in the working directory < the environment < command-line flags.
# Every key can also be set in the environment as ORPHEUS_<KEY>, e.g. ORPHEUS_HTTP_PORT=5006,
# and as a flag, --<key> with dashes (wyoming-orpheus --help lists them).
# Unknown keys and invalid values stop the server at start with a line naming the key.
# The values below are the defaults.
"""


def render() -> str:
    """Return the whole documented config file."""
    specs = declared()
    parts = [HEADER]
    for section in SECTIONS:
        parts.append(f"\n# --- {section.TITLE} ".ljust(WIDTH, "-") + "\n")
        if section.NOTE:
            parts.append(_comment(section.NOTE))
        for spec in (s for s in specs if s.declared.section == section.TITLE):
            parts.append(_entry(spec))
    return "".join(parts)


def _entry(spec: Spec) -> str:
    declared = spec.declared
    facts = [accepts(declared.parse)]
    facts.append(f"earlier name: {', '.join(declared.env)}" if declared.env else None)
    said = [fact for fact in facts if fact]
    text = declared.help + (f" ({'; '.join(said)})" if said else "")
    lines = _comment(text)
    if spec.flag is None and not declared.in_env:  # a structure: shown as a commented example
        return "\n" + lines + "".join(f"# {line}\n" for line in declared.note.splitlines())
    if declared.note:
        lines += "".join(f"# {line}\n" for line in declared.note.splitlines())
    return "\n" + lines + _value(spec.name, spec.default)


def _value(name: str, default: Any) -> str:
    if default == frozenset(NORMALIZE_CATEGORIES):
        default = "all"
    elif isinstance(default, (tuple, frozenset)):
        default = sorted(default) if isinstance(default, frozenset) else list(default)
    return yaml.safe_dump({name: default}, default_flow_style=False, sort_keys=False, width=WIDTH)


def _comment(text: str) -> str:
    return "".join(f"# {line}\n" for line in textwrap.wrap(text, WIDTH - 2))


TABLE_BEGIN = "<!-- settings table: python -m wyoming_orpheus.config.document -->"
TABLE_END = "<!-- end of settings table -->"


def flag_table() -> str:
    """Return README's table: every flag, its default and the first sentence of its help."""
    rows = ["| flag | default | |", "|---|---|---|"]
    for spec in declared():
        if spec.flag is None:
            continue
        # The first sentence: a full stop after a non-dot, then a capital ("4 ... CUDA" stays).
        first = re.split(r"(?<=[^.]\.)\s+(?=[A-Z])", spec.declared.help, maxsplit=1)[0]
        first = first.rstrip(".")
        cell = first.replace("|", "\\|").replace("<", "&lt;")  # GFM: \| inside a table
        rows.append(f"| `{spec.flag}` | {_shown_default(spec)} | {cell} |")
    return "\n".join(rows) + "\n"


def _shown_default(spec: Spec) -> str:
    if spec.declared.default_text is not None:
        return spec.declared.default_text
    value = spec.default
    if spec.declared.kind == OFF:
        return "on; the flag turns it off"
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None or value == ():
        return "none"
    if isinstance(value, dict):
        return "see the config file"
    if value == frozenset(NORMALIZE_CATEGORIES):
        return "all"
    return f"`{value}`"


def with_table(readme: str) -> str:
    """Return README's text with its settings table written anew."""
    start = readme.index(TABLE_BEGIN) + len(TABLE_BEGIN)
    end = readme.index(TABLE_END)
    return readme[:start] + "\n" + flag_table() + readme[end:]


def main() -> None:
    """Rewrite the config file and README's table (run from the repository's root)."""
    Path("config/wyoming-orpheus.yaml").write_text(render(), encoding="utf-8")
    readme = Path("README.md")
    readme.write_text(with_table(readme.read_text(encoding="utf-8")), encoding="utf-8")


if __name__ == "__main__":
    main()
