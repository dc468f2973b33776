"""``runtime-insights node`` (what ``make run`` runs), end to end: the real extractor and
exporter as child processes over a kubelet-shaped pod in the real kernel's cgroups, every
endpoint the start banner names fetched with the real ``curl``, a usage event in the
local events file, and a clean stop on SIGINT that leaves no child behind.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from runtime_insights.node import ENDPOINTS, hints
from tests.support.kernel import KubeTree, Worker, container_id, hybrid_mounts, pod_uid

CLI = os.path.join(os.path.dirname(sys.executable), "runtime-insights")
WAIT = 90.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


@dataclass
class Running:
    proc: subprocess.Popen[str]
    url: str
    banner: list[str]
    events: Path
    uid: str
    cid: str
    worker: Worker


def _read_banner(proc: subprocess.Popen[str], log: Path) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            pytest.fail(f"node ended before its banner: {log.read_text()[-3000:]}")
        lines.append(line.rstrip("\n"))
        if line.startswith("usage events:"):
            return lines
    pytest.fail("no banner")


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Running]:
    if os.geteuid() != 0:
        pytest.skip("needs root (a pod cgroup in the real kernel)")
    tree = KubeTree(hybrid_mounts())
    proc: subprocess.Popen[str] | None = None
    try:
        uid, cid = pod_uid(), container_id()
        worker = tree.spawn(tree.container_path(uid, cid))
        worker.burn(0.2)
        port = free_port()
        log = tmp_path / "node.log"
        with log.open("w") as err:
            proc = subprocess.Popen(
                [
                    *(CLI, "node", "--port", str(port), "--state-dir", str(tmp_path / "state")),
                    *("--poll-interval", "0.5", "--meter-interval", "1", "--no-fingerprints"),
                ],
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env={k: v for k, v in os.environ.items() if not k.startswith("RUNTIME_INSIGHTS_")},
            )
        banner = _read_banner(proc, log)
        yield Running(
            proc,
            f"http://127.0.0.1:{port}",
            banner,
            tmp_path / "state" / "events.jsonl",
            uid,
            cid,
            worker,
        )
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc is not None and proc.stdout is not None:
            proc.stdout.close()
        tree.cleanup()


def curl(url: str, *args: str) -> tuple[int, str]:
    done = subprocess.run(
        ["curl", "-sS", *args, "-w", "\n%{http_code}", url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode in (0, 28), done.stderr  # 28: --max-time ended the stream
    body, _, status = done.stdout.rpartition("\n")
    return int(status), body


def _billed(path: Path, uid: str) -> dict[str, Any] | None:
    """The first event that bills CPU of pod ``uid``."""
    if not path.exists():
        return None
    for line in path.read_text().splitlines():
        event: dict[str, Any] = json.loads(line)
        if event["data"]["pod_uid"] == uid and event["data"]["cpu_ns"] > 0:
            return event
    return None


def test_node_serves_every_endpoint_writes_events_and_stops_on_sigint(node: Running) -> None:
    text = "\n".join(node.banner)
    for path, _ in ENDPOINTS:
        assert f"{node.url}{path}" in text, text
    assert str(node.events) in text
    assert "not running as root" not in text  # the fixture runs as root

    status, body = curl(node.url + "/v1/containers")
    assert status == 200
    ours = [c for c in json.loads(body)["containers"] if c["id"] == node.cid]
    assert len(ours) == 1 and ours[0]["cpu"]["totalSeconds"] > 0
    assert json.loads(body)["metadataSource"] == "runtime"
    status, body = curl(node.url + "/v1/pods")
    assert status == 200 and node.uid in {p["uid"] for p in json.loads(body)["pods"]}
    status, body = curl(node.url + "/metrics")
    assert status == 200 and f'container_id="{node.cid}"' in body
    status, body = curl(node.url + "/gather_runtime_info")
    assert status == 200 and isinstance(json.loads(body), dict)
    status, body = curl(node.url + "/v1/events?initial=true", "-N", "--max-time", "3")
    assert status == 200
    assert "event: start" in body and node.cid in body

    node.worker.burn(0.3)  # after the first poll, which is the meter's starting mark
    deadline = time.monotonic() + WAIT
    while (event := _billed(node.events, node.uid)) is None:
        assert time.monotonic() < deadline, "no usage event for the pod in the events file"
        assert node.proc.poll() is None
        time.sleep(0.3)
    assert event["type"] == "kube-pod-exec-time" and event["specversion"] == "1.0"

    kids = children(node.proc.pid)
    assert len(kids) == 2
    node.proc.send_signal(signal.SIGINT)
    assert node.proc.wait(60) == 0
    for pid in kids:
        assert not os.path.exists(f"/proc/{pid}"), f"child {pid} outlived the node"


def test_a_busy_port_stops_the_node_with_exit_2(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [
                *(CLI, "node", "--port", str(port), "--state-dir", str(tmp_path)),
                "--no-fingerprints",
            ],
            capture_output=True,
            text=True,
            timeout=WAIT,
            env={k: v for k, v in os.environ.items() if not k.startswith("RUNTIME_INSIGHTS_")},
        )
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "the exporter ended with exit code 2" in done.stderr.splitlines()[-1]
    assert "Traceback" not in done.stderr


def test_hints_say_why_the_answer_is_thin() -> None:
    (not_root, none) = hints(0, 1000)
    assert "not running as root" in not_root and "sudo make run" in not_root
    assert "no containers found" in none and "make demo" in none
    assert hints(3, 0) == []
