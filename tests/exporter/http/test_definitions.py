"""Metric definitions: what a file may say, and a bad one named at start (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.http.definitions import DefinitionError, parse_definitions
from runtime_insights.cli import main


def test_a_definition_becomes_a_metric() -> None:
    [metric] = parse_definitions(
        """
metrics:
  - name: quarkus_rss
    description: working set of the Quarkus containers
    field: container.memory.workingSetBytes
    aggregation: max
    labelSelector: "tier in (backend),!canary"
    fingerprintKind: [Java, GraalVM]
    containers: [main]
"""
    )
    assert (metric.name, metric.field, metric.aggregation) == (
        "quarkus_rss",
        "container.memory.workingSetBytes",
        "max",
    )
    assert metric.kinds == {"Java", "GraalVM"} and metric.containers == {"main"}
    assert metric.pods.matches({"tier": "backend"}) and not metric.pods.matches(
        {"tier": "backend", "canary": "1"}
    )
    assert parse_definitions("") == [] and parse_definitions('{"metrics": []}') == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("metrics:\n  - name: a_b\n    aggregation: sum", r"metric #1 \(a_b\): field is required"),
        (
            "metrics:\n  - {name: ok, aggregation: count}\n  - {name: x, field: pod.cpu.bogus, "
            "aggregation: sum}",
            r"metric #2 \(x\): field 'pod.cpu.bogus' is not one of",
        ),
        ("metrics:\n  - {name: y, aggregation: median}", r"metric #1 \(y\): aggregation"),
        ("metrics:\n  - {name: Bad-Name, aggregation: count}", r"metric #1 \(Bad-Name\): name"),
        ("metrics:\n  - {name: cpu_usage_rate, aggregation: count}", "already taken"),
        (
            "metrics:\n  - {name: z, aggregation: count, labelSelector: 'a in ('}",
            r"metric #1 \(z\): labelSelector",
        ),
        ("metrics:\n  - {name: w, aggregation: count, colour: red}", r"metric #1 \(w\): colour"),
        ("metrics: {a: 1}", "must be a list"),
        ("[1, 2]", "one key"),
        ("metrics: [", "not valid YAML"),
    ],
)
def test_bad_definitions_are_named(text: str, message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        parse_definitions(text)


def test_the_exporter_refuses_to_start_with_a_bad_definition(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RUNTIME_INSIGHTS_KUBE_ENABLED", "false")
    bad = tmp_path / "metrics.yaml"
    bad.write_text(
        "metrics:\n  - {name: fine, aggregation: count}\n"
        "  - {name: broken, field: container.cpu.usageRate, aggregation: sum}\n"
    )
    assert main(["exporter", "--metric-definitions", str(bad), "--port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("runtime-insights exporter: RUNTIME_INSIGHTS_METRIC_DEFINITIONS_FILE")
    assert "metric #2 (broken): field 'container.cpu.usageRate'" in err
    assert len(err.splitlines()) == 1
    assert main(["exporter", "--metric-definitions", str(tmp_path / "none.yaml")]) == 2
    assert "cannot read it" in capsys.readouterr().err


def test_a_bad_flag_value_is_named_by_its_flag(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RUNTIME_INSIGHTS_KUBE_ENABLED", "false")
    assert main(["exporter", "--port", "eighty"]) == 2
    assert "--port (RUNTIME_INSIGHTS_PORT)" in capsys.readouterr().err
