"""Queries written for the kubelet, evaluated over what the exporter serves, by Prometheus.

The engine is Prometheus' own (``promtool test rules``, from Debian's ``prometheus``
package, scripts/system-packages.txt): two scrapes a minute apart of ``/metrics/cadvisor``
(job ``cadvisor``) and ``/metrics`` (job ``kube-state-metrics``, for the requests), fed
to it as input series exactly as parsed from the served text, and these queries:

* prometheus-adapter's resource rules as kube-prometheus configures them
  (components/prometheus-adapter.libsonnet: ``containerQuery`` for cpu and memory, with
  ``<<.GroupBy>>`` = ``namespace,pod`` and ``<<.LabelMatchers>>`` for one namespace), what
  ``kubectl top pod`` and the HPA read through it;
* kubernetes-mixin's dashboards (the kube-prometheus dashboards): the namespace
  dashboard's "Memory Utilisation (from requests)" stat
  (dashboards/resources/queries/namespace.libsonnet ``memoryUtilisationFromRequests``) and
  the pod dashboard's receive bandwidth (dashboards/resources/queries/pod.libsonnet),
  with the mixin's default selectors (``job="cadvisor"``, ``job="kube-state-metrics"``),
  ``$cluster`` empty, ``$__rate_interval`` 5m.

Expected values come from the snapshots the exporter served, never typed in.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from exporter.node.state import State
from tests.support.exporter_doubles import (
    FakeLookup,
    client_for,
    workload_meta,
    workload_snapshot,
)

PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian: prometheus) missing")
T0 = 1_782_468_000.0
NAMESPACE = "scraper"


def series_key(name: str, labels: dict[str, str]) -> str:
    body = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{body}}}"


async def scrape(state: State, path: str, job: str) -> dict[str, float]:
    """One scrape: series (with the job label a scrape config adds) → value."""
    async with client_for(state, FakeLookup([workload_meta()])) as client:
        resp = await client.get(path)
        assert resp.status == 200
        text = await resp.text()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[series_key(s.name, {**s.labels, "job": job})] = s.value
    return out


def input_series(scrapes: list[dict[str, float]]) -> list[dict[str, str]]:
    """promtool's expanding notation: one value per scrape, ``_`` where a series lacked."""
    keys = sorted({k for s in scrapes for k in s})
    return [
        {"series": k, "values": " ".join(repr(s[k]) if k in s else "_" for s in scrapes)}
        for k in keys
    ]


def run_promtool(tmp_path: Path, series: list[dict[str, str]], tests: list[dict[str, Any]]) -> None:
    spec = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": tests}],
    }
    path = tmp_path / "queries_test.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    assert PROMTOOL is not None
    done = subprocess.run(
        [PROMTOOL, "test", "rules", str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


async def test_adapter_rules_and_dashboard_queries_over_the_served_text(tmp_path: Path) -> None:
    before, after = workload_snapshot(T0, 3_000_000_000), workload_snapshot(T0 + 60, 4_200_000_000)
    scrapes = []
    state = State()
    for snap in (before, after):
        state.record(snap)
        served = await scrape(state, "/metrics/cadvisor", "cadvisor")
        served |= await scrape(state, "/metrics", "kube-state-metrics")
        scrapes.append(served)
    series = input_series(scrapes)

    app_before, app_after = before.containers[1], after.containers[1]
    assert app_before.usage and app_after.usage and app_before.usage.cpu and app_after.usage.cpu
    assert app_after.usage.memory is not None and after.pods[0].network is not None
    assert before.pods[0].network is not None
    pod = {"namespace": NAMESPACE, "pod": after.pods[0].name or ""}
    labels = series_key("", pod)
    cpu_rate = (app_after.usage.cpu.usage_ns / 1e9 - app_before.usage.cpu.usage_ns / 1e9) / 60
    working_set = float(app_after.usage.memory.working_set_bytes or 0)
    request = next(c for c in workload_meta().containers if c.kind == "regular")
    rx = (float(after.pods[0].network[0].rx_bytes) - before.pods[0].network[0].rx_bytes) / 60

    matchers = f'namespace="{NAMESPACE}",container!="",pod!=""'
    cadvisor = 'job="cadvisor"'
    ksm = 'job="kube-state-metrics"'
    run_promtool(
        tmp_path,
        series,
        [
            {  # prometheus-adapter, resourceRules.cpu.containerQuery
                "expr": f"sum by (namespace,pod) (irate(container_cpu_usage_seconds_total"
                f"{{{matchers}}}[4m]))",
                "eval_time": "1m",
                "exp_samples": [{"labels": labels, "value": cpu_rate}],
            },
            {  # prometheus-adapter, resourceRules.memory.containerQuery
                "expr": "sum by (namespace,pod) "
                f"(container_memory_working_set_bytes{{{matchers}}})",
                "eval_time": "1m",
                "exp_samples": [{"labels": labels, "value": working_set}],
            },
            {  # kubernetes-mixin namespace dashboard: Memory Utilisation (from requests)
                "expr": "sum(max by (cluster, namespace, pod, container)"
                f'(container_memory_working_set_bytes{{{cadvisor}, cluster="", '
                f'namespace="{NAMESPACE}",container!="", image!=""}})) / '
                f'sum(kube_pod_container_resource_requests{{{ksm}, cluster="", '
                f'namespace="{NAMESPACE}", resource="memory"}})',
                "eval_time": "1m",
                "exp_samples": [
                    {"labels": "{}", "value": working_set / (request.memory_request_bytes or 1)}
                ],
            },
            {  # kubernetes-mixin pod dashboard: Receive Bandwidth (bits)
                "expr": f"sum((8 * irate(container_network_receive_bytes_total{{{cadvisor}, "
                f'cluster="", namespace="{NAMESPACE}", pod=~"{pod["pod"]}"}}[5m]))) by (pod)',
                "eval_time": "1m",
                "exp_samples": [{"labels": series_key("", {"pod": pod["pod"]}), "value": 8 * rx}],
            },
        ],
    )


async def test_a_wrong_expectation_fails(tmp_path: Path) -> None:
    """The harness can fail: the CPU query held to a rate off by one part in a thousand."""
    before, after = workload_snapshot(T0, 3_000_000_000), workload_snapshot(T0 + 60, 4_200_000_000)
    state = State()
    scrapes = []
    for snap in (before, after):
        state.record(snap)
        scrapes.append(await scrape(state, "/metrics/cadvisor", "cadvisor"))
    app_before, app_after = before.containers[1].usage, after.containers[1].usage
    assert app_before and app_after and app_before.cpu and app_after.cpu
    rate = (app_after.cpu.usage_ns / 1e9 - app_before.cpu.usage_ns / 1e9) / 60
    with pytest.raises(AssertionError, match="FAILED"):
        run_promtool(
            tmp_path,
            input_series(scrapes),
            [
                {
                    "expr": 'sum(irate(container_cpu_usage_seconds_total{container!=""}[4m]))',
                    "eval_time": "1m",
                    "exp_samples": [{"labels": "{}", "value": rate * 1.001}],
                }
            ],
        )
