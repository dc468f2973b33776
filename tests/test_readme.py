"""README.md is the users' reference: every setting and custom metric it must name is there.

Why: a setting added to the code but not to the table is a setting nobody can find.
"""

from __future__ import annotations

from exporter.http.metric_defs import BUILTIN, field_names
from exporter.settings import Settings
from exporter.settings_doc import markdown_table
from tests.support.paths import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()


def test_the_configuration_table_is_the_one_the_settings_generate() -> None:
    """Full variable names, defaults and meanings, as ``exporter --help`` prints them;
    regenerate with ``python -m exporter.settings_doc``."""
    section = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    assert markdown_table() in section, "README's settings table is not the generated one"
    assert all(f"`RUNTIME_INSIGHTS_{name.upper()}`" in section for name in Settings.model_fields)


def test_every_custom_metric_is_documented() -> None:
    section = README.split("**Custom metrics API**", 1)[1]
    assert all(f"`{metric.name}`" in section for metric in BUILTIN)


def test_every_field_a_definition_may_name_is_documented() -> None:
    section = README.split("### Metrics you define", 1)[1].split("\n## ", 1)[0]
    missing = [name for name in field_names() if f"`{name}`" not in section]
    assert not missing, f"definition fields missing from README: {missing}"


def test_the_first_screen_says_what_it_is_and_what_each_command_prints() -> None:
    intro, first_steps = README.split("\n## ", 2)[:2]
    assert "node agent" in intro
    assert first_steps.startswith("First steps")
    for command in ("make run", "make test", "make demo"):
        assert f"**`{command}`**" in first_steps or f"**`sudo {command}`**" in first_steps
    # what make run prints: every endpoint its banner names
    from runtime_insights.node import ENDPOINTS

    assert all(path in first_steps for path, _ in ENDPOINTS)
    assert "## What make demo shows" in README
