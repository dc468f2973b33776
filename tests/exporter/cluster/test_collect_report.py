"""`collect --format insights` and `collect --report` against the fake API server with
three nodes, one of which fails.

Each answering node runs the real exporter application (exporter/http/app.py) over a
snapshot of its own, behind the fake API server's pod proxy, so what collect reads is
what an exporter serves. Expectations come from their sources: the insights output from
running what insights-runtime-extractor's scripts/extract.sh runs — bash's ``echo $(…)``
of each node's answer into ``data-<pod>.json``, then the real ``jq -s '[.[]]'`` — over
the answers fetched from the nodes directly; CPU from the snapshots' counters; owners
from the Pod metadata each exporter's lookup holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from exporter.cluster.collect import run_collect
from exporter.http.app import build_app
from exporter.kube.podmeta import Owner
from exporter.node.state import State
from extractor.contract import Fingerprint, RuntimeComponent, Snapshot
from runtime_insights.cli import build_parser
from tests.support.apiserver import FakeApiServer, make_node, make_pod
from tests.support.exporter_doubles import FakeLookup, api_meta_for, pod_with, snapshot

NS = "runtime-insights"
LABELS = {"app.kubernetes.io/name": "runtime-insights"}


def _java(version: str) -> Fingerprint:
    return Fingerprint(
        os="rhel", osVersion="8.10", kind="Java", kindVersion=version,
        kindImplementer="Red Hat, Inc.",
        runtimes=[RuntimeComponent(name="Quarkus", version="3.15.3.redhat-00002")],
    )  # fmt: skip


PYTHON = Fingerprint(os="debian", osVersion="12", kind="Python", kindVersion="Python 3.9.19")
GO = Fingerprint(os="debian", osVersion="12", kind="Golang", kindVersion="go1.22.6")
ODD = Fingerprint(os="Ünï  <&> \x7f", osVersion="1")  # spaces, escapes, DEL: no kind
UNREADABLE = Fingerprint(error="root: symlink loop at /etc/os-release")

NODES: dict[str, tuple[str, list[tuple[str, str, str, list[tuple[str, Fingerprint]]]]]] = {
    # node: (exporter pod, [(namespace, pod, owner, [(container, fingerprint)])])
    "node-a": ("ri-zzzzz", [
        ("shop", "web-1", "Deployment/web", [("app", _java("17.0.13"))]),
        ("shop", "api-1", "Deployment/api", [("api", PYTHON), ("probe", ODD)]),
    ]),
    "node-b": ("ri-aaaaa", [
        ("shop", "web-2", "Deployment/web", [("app", _java("21.0.4"))]),
        ("infra", "dns-1", "DaemonSet/dns", [("dns", GO), ("sidecar", UNREADABLE)]),
    ]),
}  # fmt: skip
FAILING = ("node-c", "ri-mmmmm")


def _node_state(node: str) -> tuple[State, FakeLookup, Snapshot]:
    _, pods = NODES[node]
    built = [
        pod_with(ns, pod, f"{node}-{pod}-0000-0000-000000000000", list(containers),
                 cpu_ns=1_000_000_000 * (n + 1), taken_at=1_700_000_000.0)
        for n, (ns, pod, _, containers) in enumerate(pods)
    ]  # fmt: skip
    snap = snapshot(built).model_copy(update={"node": node})
    owners = {f"{ns}/{pod}": owner for ns, pod, owner, _ in pods}
    metas = []
    for meta in api_meta_for(snap):
        kind, name = owners[f"{meta.namespace}/{meta.name.removesuffix('-api')}"].split("/")
        metas.append(meta.model_copy(update={"owner": Owner(kind=kind, name=name)}))
    state = State()
    state.record(snap)
    return state, FakeLookup(metas), snap


class Cluster:
    def __init__(self, kube: FakeApiServer, kubeconfig: Path) -> None:
        self.kube = kube
        self.kubeconfig = kubeconfig
        self.runners: list[web.AppRunner] = []
        self.urls: dict[str, str] = {}
        self.snapshots: dict[str, Snapshot] = {}

    async def serve(self, node: str, pod: str, app: web.Application) -> None:
        self.kube.add_node(make_node(node))
        self.kube.add_pod(make_pod(pod, NS, node=node, labels=LABELS))
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self.runners.append(runner)
        (address,) = runner.addresses
        self.urls[pod] = f"http://127.0.0.1:{address[1]}"
        self.kube.set_pod_backend(NS, pod, self.urls[pod])

    async def run(self, *extra: str) -> tuple[int, str, str]:
        argv = ["collect", "--kubeconfig", str(self.kubeconfig), "--via", "proxy",
                "--insecure-http", "--timeout", "5", *extra]  # fmt: skip
        args = build_parser().parse_args(argv)
        out, err = io.StringIO(), io.StringIO()

        def run() -> int:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                return run_collect(args)

        code = await asyncio.to_thread(run)
        return code, out.getvalue(), err.getvalue()


async def _broken(_: web.Request) -> web.Response:
    return web.json_response({"error": "extractor unreachable"}, status=500)


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with FakeApiServer() as kube:
        c = Cluster(kube, kube.write_kubeconfig(tmp_path / "kubeconfig"))
        for node, (pod, _) in NODES.items():
            state, lookup, snap = _node_state(node)
            c.snapshots[node] = snap
            await c.serve(node, pod, build_app(state, lookup, stale_after_seconds=3600))
        broken = web.Application()
        broken.router.add_get("/{tail:.*}", _broken)
        await c.serve(*FAILING, broken)
        try:
            yield c
        finally:
            for runner in c.runners:
                await runner.cleanup()


def _extract_sh(bodies: dict[str, bytes], directory: Path) -> str:
    """What scripts/extract.sh writes (its out.json): per pod ``echo $(curl …) >>
    data-$pod.json``, then ``jq -s '[.[]]' data-*.json``. A failed curl printed nothing."""
    directory.mkdir()
    for pod, body in bodies.items():
        answer = directory / f"answer-{pod}"
        answer.write_bytes(body)
        subprocess.run(
            ["bash", "-c", f"echo $(cat {answer}) >> data-{pod}.json"],
            cwd=directory, check=True, timeout=30,
        )  # fmt: skip
        answer.unlink()
    done = subprocess.run(
        ["bash", "-c", "jq -s '[.[]]' data-*.json"],
        cwd=directory, check=True, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    return done.stdout


@pytest.mark.skipif(shutil.which("jq") is None, reason="needs jq (scripts/system-packages.txt)")
async def test_format_insights_prints_what_extract_sh_writes(
    cluster: Cluster, tmp_path: Path
) -> None:
    code, out, err = await cluster.run("--format", "insights")

    bodies = {}
    async with httpx.AsyncClient() as client:
        for pod, _ in NODES.values():
            resp = await client.get(cluster.urls[pod] + "/gather_runtime_info?hash=false")
            bodies[pod] = resp.content
        failing = await client.get(cluster.urls[FAILING[1]] + "/gather_runtime_info")
        assert failing.status_code == 500  # its curl -s would have printed an error page
    bodies[FAILING[1]] = b""
    assert out == _extract_sh(bodies, tmp_path / "extract")

    assert code == 1
    assert f"node {FAILING[0]} (pod {FAILING[1]}): HTTP 500" in err
    document = json.loads(out)
    assert [set(d) for d in document] == [{"infra", "shop"}, {"shop"}]  # pod-name order
    assert "Ünï <&> \\u007f" in out  # one space left, non-ASCII as is, DEL escaped
    assert {(r[5], r[6]) for r in cluster.kube.proxy_requests} == {
        ("/gather_runtime_info", "hash=false")
    }


def _counted(snap: Snapshot) -> dict[str, float]:
    """CPU seconds per container name (API names: ``<name>-api``) in the snapshot."""
    return {
        f"{c.name}-api": c.usage.cpu.usage_ns / 1e9
        for c in snap.containers
        if not c.sandbox and c.usage is not None and c.usage.cpu is not None
    }


async def test_report_json_counts_cpu_per_runtime_and_flags(cluster: Cluster) -> None:
    code, out, err = await cluster.run("--report", "--format", "json")

    assert code == 1 and f"node {FAILING[0]}" in err
    report = json.loads(out)
    assert report["nodes"]["ok"] == ["node-a", "node-b"]
    assert [(f["node"], f["pod"]) for f in report["nodes"]["failed"]] == [FAILING]

    cpu = {
        (node, name): seconds
        for node, snap in cluster.snapshots.items()
        for name, seconds in _counted(snap).items()
    }
    total = sum(cpu.values())
    assert report["totals"]["cpuSeconds"] == pytest.approx(total)
    assert report["totals"]["containers"] == len(cpu) == 6
    assert sum(r["cpuShare"] for r in report["runtimes"]) == pytest.approx(1.0)
    for row in report["runtimes"]:
        members = {(m["node"], m["container"]) for m in row["members"]}
        assert row["cpuSeconds"] == pytest.approx(sum(cpu[m] for m in members))
        assert row["cpuShare"] == pytest.approx(row["cpuSeconds"] / total)
    rows = {row["label"]: row for row in report["runtimes"] if row["identified"]}
    java17 = rows["Java 17.0.13 (Red Hat, Inc.)"]
    assert java17["frameworks"] == [{"name": "Quarkus", "version": "3.15.3.redhat-00002"}]
    assert (java17["containers"], java17["pods"], java17["namespaces"]) == (1, 1, ["shop"])
    assert java17["owners"] == [{"namespace": "shop", "kind": "Deployment", "name": "web"}]
    assert java17["endOfLife"] == []  # RHEL 8, Red Hat's JDK 17, a Red Hat Quarkus build
    go = rows["Golang go1.22.6"]
    assert go["owners"] == [{"namespace": "infra", "kind": "DaemonSet", "name": "dns"}]

    flags = report["flags"]
    components = {f["component"]: f for f in flags["endOfLife"]}
    assert {"Python 3.9", "Go 1.22", "Debian 12"} <= set(components)  # 2025-10-31, …
    assert components["Debian 12"]["containers"] == 2  # the Python and the Go containers
    assert components["Go 1.22"]["source"] == "https://endoflife.date/go"
    unidentified = {(u["node"], u["container"]): u for u in flags["unidentified"]}
    assert set(unidentified) == {("node-a", "probe-api"), ("node-b", "sidecar-api")}
    assert unidentified[("node-b", "sidecar-api")]["error"] == UNREADABLE.error
    (mixed,) = flags["mixedVersions"]
    assert (mixed["namespace"], mixed["owner"], mixed["container"]) == (
        "shop",
        {"kind": "Deployment", "name": "web"},
        "app-api",
    )
    assert [(v["label"], v["pods"]) for v in mixed["versions"]] == [
        ("Java 17.0.13 (Red Hat, Inc.)", ["web-1-api"]),
        ("Java 21.0.4 (Red Hat, Inc.)", ["web-2-api"]),
    ]
    window = report["window"]
    assert window["to"] == "2023-11-14T22:13:20Z" and window["seconds"] > 0


async def test_report_table_and_csv_say_the_same(cluster: Cluster) -> None:
    _, out, _ = await cluster.run("--report", "--format", "json")
    report = json.loads(out)
    code, text, _ = await cluster.run("--report")  # a table by default
    assert code == 1
    assert "2 nodes answered, 1 did not (node-c): not counted" in text
    lines = text.splitlines()
    header = next(n for n, ln in enumerate(lines) if ln.startswith("RUNTIME "))
    table_rows = lines[header + 1 : header + 1 + len(report["runtimes"])]
    for line, row in zip(table_rows, report["runtimes"], strict=True):
        assert line.startswith(row["label"] + " ")
        assert f"{row['cpuShare'] * 100:.1f}%" in line
        assert f"{row['cpuSeconds']:.1f}" in line
    assert "end of life: Python 3.9 since 2025-10-31" in text
    assert "runtime not identified: infra/dns-1-api/sidecar-api on node-b" in text
    assert "mixed versions: shop Deployment/web container app-api" in text

    _, sheet, _ = await cluster.run("--report", "--format", "csv")
    parsed = list(csv.DictReader(io.StringIO(sheet)))
    assert len(parsed) == len(report["runtimes"])
    for entry, row in zip(parsed, report["runtimes"], strict=True):
        assert float(entry["cpuSeconds"]) == row["cpuSeconds"]
        assert float(entry["cpuShare"]) == row["cpuShare"]
        assert entry["kind"] == (row["kind"] or "")
        assert entry["identified"] == str(row["identified"]).lower()


@pytest.mark.parametrize(
    "argv", [("--format", "insights", "--report"), ("--format", "csv"), ("--format", "table")]
)
async def test_formats_that_do_not_fit_exit_two(cluster: Cluster, argv: tuple[str, ...]) -> None:
    code, out, err = await cluster.run(*argv)
    assert (code, out) == (2, "")
    assert "--format" in err and len(err.splitlines()) == 1
    assert cluster.kube.proxy_requests == []
