"""Every exporter setting as a user sees it: variable names, default, meaning.

Why one place: ``runtime-insights exporter --help``, the settings table in README.md
(tests/test_readme.py compares it) and the check that refuses an unknown
``RUNTIME_INSIGHTS_*`` variable are all generated from the Settings model
(exporter/settings.py), so a new setting shows up everywhere at once and a typo never
goes unnoticed.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pydantic import AliasChoices
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from exporter.settings import Settings

PREFIX = "RUNTIME_INSIGHTS_"


@dataclass(frozen=True)
class SettingDoc:
    field: str
    variables: tuple[str, ...]
    """The full environment variable first, then any alias that is read too."""
    default: str
    meaning: str


def _variables(name: str, info: FieldInfo) -> tuple[str, ...]:
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        names = [c for c in alias.choices if isinstance(c, str)]
        return tuple(names) if names else (PREFIX + name.upper(),)
    if isinstance(alias, str):
        return (alias,)
    return (PREFIX + name.upper(),)


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        value = info.default_factory()  # type: ignore[call-arg]
    elif info.default is PydanticUndefined:
        return "required"
    else:
        value = info.default
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return "[]" if not value else ", ".join(map(str, value))
    return str(value)


def settings_docs() -> list[SettingDoc]:
    """Every setting, in the model's order (grouped by the part it configures)."""
    return [
        SettingDoc(name, _variables(name, info), _default(info), info.description or "")
        for name, info in Settings.model_fields.items()
    ]


def known_variables() -> set[str]:
    return {v.upper() for doc in settings_docs() for v in doc.variables}


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """One message per ``RUNTIME_INSIGHTS_*`` variable that no setting reads, naming the
    closest real one (the model's own check only covers ``--env-file``)."""
    known = known_variables()
    suffixes = sorted(v.removeprefix(PREFIX) for v in known if v.startswith(PREFIX))
    problems = []
    for key in sorted(environ):
        upper = key.upper()
        if not upper.startswith(PREFIX) or upper in known:
            continue
        close = difflib.get_close_matches(upper.removeprefix(PREFIX), suffixes, n=1, cutoff=0.5)
        hint = f"; did you mean {PREFIX}{close[0]}?" if close else ""
        problems.append(f"{key}: unknown setting{hint}")
    return problems


def help_text() -> str:
    """The settings part of ``runtime-insights exporter --help``."""
    lines = ["settings (environment variables, or lines of --env-file):", ""]
    for doc in settings_docs():
        names = " or ".join(doc.variables)
        lines.append(f"  {names}  (default: {doc.default})")
        lines.append(f"      {doc.meaning}")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_table(docs: Iterable[SettingDoc] | None = None) -> str:
    """The settings table of README.md, one row per setting."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for doc in settings_docs() if docs is None else docs:
        names = " or ".join(f"`{v}`" for v in doc.variables)
        default = "—" if doc.default == "unset" else f"`{_cell(doc.default)}`"
        rows.append(f"| {names} | {default} | {_cell(doc.meaning)} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":  # python -m exporter.settings_doc: README's table
    sys.stdout.write(markdown_table())
