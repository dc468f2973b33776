"""``make demo``'s report: its tables and the checks that make it a smoke test (CI runs
the demo itself; these check that a missing workload, a wrong fingerprint or an unbilled
pod is caught)."""

from __future__ import annotations

import json
from typing import Any

from demo.report import check, containers_table, events_table, lifecycle_counts
from demo.workloads import SUBJECT, Workload, sample_workloads


def _answer(workloads: list[Workload]) -> dict[str, Any]:
    containers = []
    for w in workloads:
        if w.behaviour == "job":
            continue
        containers.append(
            {
                "namespace": w.namespace,
                "pod": w.pod,
                "container": w.container,
                "owner": {"kind": w.owner[0], "name": w.owner[1]},
                "fingerprint": {"kind": w.kind, "kindVersion": "1.0", "os": "debian"}
                if w.kind
                else {},
                "cpu": {"totalSeconds": 1.5},
                "memory": {"workingSetBytes": 3 << 20},
                "restarts": 3 if w.behaviour == "crash" else 0,
                "annotations": {SUBJECT: w.subject},
            }
        )
    return {"metadataSource": "api", "containers": containers}


def _events(workloads: list[Workload]) -> list[dict[str, Any]]:
    return [
        {
            "id": f"e-{w.pod}",
            "time": "2026-12-01T10:00:10.000Z",
            "subject": w.subject,
            "data": {
                "pod_name": w.pod,
                "pod_namespace": w.namespace,
                "cpu_ns": 5_000_000,
                "cpu_seconds": 0.005,
                "duration_seconds": 10.0,
            },
        }
        for w in workloads
    ]


def _sse(*frames: tuple[str, str]) -> str:
    return "".join(
        f"event: {kind}\ndata: {json.dumps({'type': kind, 'containerName': name})}\n\n"
        for kind, name in frames
    )


FEED = _sse(("start", "worker"), ("stop", "worker"), ("stop", "worker"), ("stop", "report"))


def test_a_run_that_shows_everything_passes_and_reads_well() -> None:
    workloads = sample_workloads()
    answer, events = _answer(workloads), _events(workloads)
    assert check(answer, events, FEED, workloads) == []
    text = containers_table(answer, workloads)
    assert text.splitlines()[0].split()[:3] == ["NAMESPACE", "POD", "CONTAINER"]
    assert "StatefulSet/orders" in text and "Golang 1.0" in text and "customer-globex" in text
    assert "Job/report" not in text  # the job has ended: it is in the events only
    assert "batch/report-8x2kq" in events_table(events)
    assert lifecycle_counts(FEED)[("stop", "worker")] == 2


def test_each_missing_piece_is_named() -> None:
    workloads = sample_workloads()
    answer, events = _answer(workloads), _events(workloads)
    answer["containers"][0]["fingerprint"] = {}  # the Go server not fingerprinted
    answer["containers"][1]["annotations"] = {}  # no subject from the API server
    events = [e for e in events if e["data"]["pod_name"] != "report-8x2kq"]  # job unbilled
    problems = check(answer, events, _sse(("stop", "worker")), workloads)
    assert any("web-5d9c7b8f4-q2x7m: fingerprint kind None, expected Golang" in p for p in problems)
    assert any("orders-0: no openmeter.io/subject" in p for p in problems)
    assert any("batch/report-8x2kq: no usage event" in p for p in problems)
    assert any("1 stops of worker" in p for p in problems)
    assert any("no stop of the job's container" in p for p in problems)
