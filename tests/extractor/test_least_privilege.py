"""`extract` under exactly the DaemonSet's capabilities, against real containers.

The extractor runs as uid 0 with every capability set (bounding, permitted, effective)
reduced by util-linux's setpriv to what manifests/base/daemonset.yaml adds (SYS_PTRACE,
DAC_READ_SEARCH), no new privileges, in the host PID namespace, as the kubelet runs it.
The containers: one running as root, one whose process runs as uid 1234 in a root where
/etc/os-release is 0600 and the user's. The reduced run must see what a fully privileged
run sees; then, one capability removed at a time, the output must name the refused read
and the capability, never pass for an empty container.

Mapped libraries: /proc/<pid>/map_files needs CAP_SYS_ADMIN, which the DaemonSet does not
grant, so deployed the fingerprints read libraries at their paths in the container's root
(fingerprints/reading/processes.py, MappedFiles); the reduced run here is that path, and
the first test shows the kernel refusing map_files to it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.containerd import Containerd, new_container_id
from tests.support.paths import REPO_ROOT

pytestmark = [pytest.mark.root, pytest.mark.containerd]

CLI = os.path.join(os.path.dirname(sys.executable), "runtime-insights")
CAP_BITS = {"DAC_READ_SEARCH": 2, "SYS_PTRACE": 19, "SYS_ADMIN": 21}
USER = 1234
Obj = dict[str, Any]


def daemonset_caps() -> list[str]:
    daemonset = yaml.safe_load((REPO_ROOT / "manifests/base/daemonset.yaml").read_text())
    spec = daemonset["spec"]["template"]["spec"]
    (extractor,) = [c for c in spec["containers"] if c["name"] == "extractor"]
    caps = extractor["securityContext"]["capabilities"]
    assert caps["drop"] == ["ALL"]
    return sorted(caps["add"])


def reduced(caps: list[str]) -> list[str]:
    """The setpriv prefix: uid 0, only ``caps`` in every set, no new privileges."""
    if shutil.which("setpriv") is None:
        pytest.skip("util-linux setpriv missing")
    bounding = ",".join(["-all", *(f"+{c.lower()}" for c in caps)])
    return ["setpriv", f"--bounding-set={bounding}", "--inh-caps=-all", "--no-new-privs", "--"]


@dataclass
class Workload:
    daemon: Containerd
    ids: dict[str, str]
    """container name -> id: ``root`` runs as root, ``user`` as uid 1234."""
    pids: dict[str, int]


def _rootfs(daemon: Containerd, base: Path, name: str, os_id: str, owner: int) -> str:
    root = base / name
    shutil.copytree(daemon.rootfs, root, symlinks=True)
    etc = root / "etc"
    (etc / "passwd").write_text(f"root:x:0:0::/:/bin/sh\nlp:x:{USER}:{USER}::/:/bin/sh\n")
    (etc / "group").write_text(f"root:x:0:\nlp:x:{USER}:\n")
    release = etc / "os-release"
    release.write_text(f'ID={os_id}\nVERSION_ID="{owner}.1"\n')
    os.chown(release, owner, owner)
    release.chmod(0o600 if owner else 0o644)
    return str(root)


@pytest.fixture(scope="module")
def workload(containerd: Containerd) -> Iterator[Workload]:
    base = Path(tempfile.mkdtemp(prefix="ri-lp-", dir="/tmp"))
    pod_uid = str(uuid.uuid4())
    ids: dict[str, str] = {}
    pids: dict[str, int] = {}
    try:
        for name, argv, owner in (
            ("root", ["/bin/sleep", "100000"], 0),
            (
                "user",
                ["/bin/busybox", "su", "-s", "/bin/sh", "lp", "-c", "exec sleep 100000"],
                USER,
            ),
        ):
            container_id = new_container_id()
            pids[name] = containerd.run_container(
                container_id,
                argv,
                cgroup=f"{containerd.cgroup_prefix}/kubepods/besteffort/pod{pod_uid}/{container_id}",
                annotations={
                    "io.kubernetes.cri.container-type": "container",
                    "io.kubernetes.cri.container-name": name,
                    "io.kubernetes.cri.sandbox-namespace": "lp",
                    "io.kubernetes.cri.sandbox-name": "least",
                    "io.kubernetes.cri.sandbox-uid": pod_uid,
                },
                rootfs=_rootfs(containerd, base, name, f"rilp{name}", owner),
            )
            ids[name] = container_id
        yield Workload(containerd, ids, pids)
    finally:
        for container_id in ids.values():
            containerd.ctr("task", "rm", "-f", container_id, check=False)
            containerd.ctr("container", "rm", container_id, check=False)
        shutil.rmtree(base, ignore_errors=True)


def _user_process(workload: Workload) -> int:
    """The uid-1234 sleep (su execs it in place of the shell, as a child or itself)."""
    for pid in [workload.pids["user"], *_children(workload.pids["user"])]:
        status = Path(f"/proc/{pid}/status").read_text()
        if f"Uid:\t{USER}\t" in status and Path(f"/proc/{pid}/comm").read_text().strip() == "sleep":
            return pid
    pytest.fail("the user container's sleep never ran as uid 1234")


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def extract(workload: Workload, prefix: list[str]) -> dict[str, Obj]:
    """Our containers' documents from `runtime-insights extract` run behind ``prefix``."""
    done = subprocess.run(
        [*prefix, CLI, "extract", "--containerd-state", workload.daemon.task_root],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    found: dict[str, Obj] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("id") in workload.ids.values():
                found[node["id"]] = node
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(json.loads(done.stdout))
    assert set(found) == set(workload.ids.values()), done.stdout[:2000]
    return found


def _stable(doc: Obj) -> Obj:
    """What two passes a moment apart must agree on (counters and ages move)."""
    return {k: doc.get(k) for k in ("id", "name", "runtime", "image", "pids", "fingerprint")}


def test_the_reduced_set_is_exactly_the_daemonsets(workload: Workload) -> None:
    """setpriv leaves uid 0 with only the DaemonSet's capabilities; with them the kernel
    refuses map_files (so the deployed fingerprints read libraries by path)."""
    caps = daemonset_caps()
    assert caps == ["DAC_READ_SEARCH", "SYS_PTRACE"]
    pid = _user_process(workload)
    probe = (
        "import os,sys\n"
        "t=open('/proc/self/status').read().splitlines()\n"
        "s=dict(l.split(':\\t',1) for l in t if ':\\t' in l)\n"
        "k='CapBnd CapPrm CapEff CapInh NoNewPrivs'.split()\n"
        "print(s['Uid'].split()[0], *(s[x] for x in k))\n"
        f"d='/proc/{pid}/map_files'\n"
        "n=sorted(os.listdir(d))[0]\n"
        "try:\n os.close(os.open(d+'/'+n, os.O_RDONLY)); print('opened')\n"
        "except OSError as e: print(e.errno)\n"
    )  # fmt: skip
    out = subprocess.run(
        [*reduced(caps), sys.executable, "-c", probe],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.split()  # fmt: skip
    mask = f"{sum(1 << CAP_BITS[c] for c in caps):016x}"
    assert out[:6] == ["0", mask, mask, mask, "0000000000000000", "1"]
    assert out[6] == "1"  # EPERM: map_files needs CAP_SYS_ADMIN


def test_deployed_capabilities_see_what_full_privileges_see(workload: Workload) -> None:
    full = extract(workload, [])
    deployed = extract(workload, reduced(daemonset_caps()))
    for container_id, doc in full.items():
        assert _stable(deployed[container_id]) == _stable(doc)
        assert deployed[container_id]["errors"] == []
    user = full[workload.ids["user"]]["fingerprint"]
    assert (user["os"], user["osVersion"]) == ("rilpuser", f"{USER}.1")
    assert "error" not in user
    root = full[workload.ids["root"]]["fingerprint"]
    assert (root["os"], root["osVersion"]) == ("rilproot", "0.1")


def test_without_sys_ptrace_the_processes_are_refused_and_said_so(workload: Workload) -> None:
    docs = extract(workload, reduced(["DAC_READ_SEARCH"]))
    for name, container_id in workload.ids.items():
        fingerprint = docs[container_id]["fingerprint"]
        error = fingerprint["error"]
        assert "permission denied" in error and "CAP_SYS_PTRACE" in error, (name, error)
        assert "no live process" not in error
        assert "os" not in fingerprint
        # names and counters come from the task bundle and cgroupfs: still there
        assert docs[container_id]["name"] == name
        assert docs[container_id]["cpu"]["totalSeconds"] is not None


def test_without_dac_read_search_the_unreadable_file_is_named(workload: Workload) -> None:
    docs = extract(workload, reduced(["SYS_PTRACE"]))
    user = docs[workload.ids["user"]]["fingerprint"]
    assert "os" not in user
    error = user["error"]
    # the process's 0400 environ and the user's 0600 os-release, each named with the cause
    pid = _user_process(workload)
    assert f"/proc/{pid}/environ: Permission denied" in error
    assert "/etc/os-release" in error and "permission denied" in error
    assert error.count("CAP_DAC_READ_SEARCH") == 2
    root = docs[workload.ids["root"]]["fingerprint"]
    assert (root["os"], "error" in root) == ("rilproot", False)  # 0644: nothing lacked
