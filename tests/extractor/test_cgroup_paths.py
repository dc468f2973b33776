"""extractor.cgroups.paths against real cgroup lines from public projects and the real kernel.

The fixture lines (tests/fixtures/cgroup_lines/cases.jsonl) each name the project and file
they come from; the kernel tests create cgroups under this machine's v1 and v2 hierarchies
and read back what the kernel itself writes into /proc/<pid>/cgroup.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extractor.cgroups.paths import (
    CgroupIdentity,
    candidate_lines,
    cgroup_version_of,
    parse_cgroup_path,
    pick_line,
)
from tests.support.paths import REPO_ROOT

CASES_FILE = REPO_ROOT / "tests" / "fixtures" / "cgroup_lines" / "cases.jsonl"
CASES: list[dict[str, Any]] = [
    json.loads(line) for line in CASES_FILE.read_text().splitlines() if line.strip()
]
_NOTHING_IDENTITY = CgroupIdentity(None, None, None, None)
UID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32}")


def _case_id(case: dict[str, Any]) -> str:
    return f"{case['src'].split()[0]}:{case['in'].strip()[-60:]}"


def _expected_id(case: dict[str, Any]) -> str | None:
    """The fixture's id, with a `prefix*` expanded to the hex run in the input."""
    want: str | None = case.get("id")
    if want is not None and want.endswith("*"):
        m = re.search(re.escape(want[:-1]) + "[0-9a-f]*", case["in"])
        assert m is not None, f"fixture id prefix {want} not in its own line"
        return m.group(0)
    return want


def test_fixture_set_is_broad() -> None:
    """The corpus covers every runtime and QoS, with negatives and several sources."""
    runtimes = {c.get("rt") for c in CASES}
    assert runtimes == {"containerd", "crio", "docker", "podman", "unknown", None}
    assert {c.get("qos") for c in CASES} >= {"guaranteed", "burstable", "besteffort"}
    assert len(CASES) >= 150
    assert sum(1 for c in CASES if c.get("rt") is None) >= 50
    assert len({c["src"].split()[0] for c in CASES}) >= 15


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_fixture_line(case: dict[str, Any]) -> None:
    got = parse_cgroup_path(case["in"])
    want = CgroupIdentity(
        runtime=case.get("rt"),
        container_id=_expected_id(case),
        pod_uid=case.get("pod"),
        qos=case.get("qos"),
        sandbox=case.get("sandbox", False),
    )
    assert got == want, case.get("note", case["src"])


@pytest.mark.parametrize(
    "case", [c for c in CASES if c["in"].startswith("/") and "\n" not in c["in"]], ids=_case_id
)
def test_same_identity_in_every_input_form(case: dict[str, Any]) -> None:
    """A path means the same as a v1 line, a v2 line and a cgroupfs file path of it."""
    path = case["in"]
    bare = parse_cgroup_path(path)
    assert parse_cgroup_path(f"5:cpu,cpuacct:{path}") == bare
    assert parse_cgroup_path(f"0::{path}") == bare
    assert parse_cgroup_path(f"  1:name=systemd:{path}\r\n") == bare
    if not path.startswith("/sys/fs/cgroup"):
        assert parse_cgroup_path(f"/sys/fs/cgroup/cpu,cpuacct{path}/cgroup.procs") == bare
        assert parse_cgroup_path(f"/sys/fs/cgroup{path}/memory.current") == bare


def _check_invariants(text: str, got: CgroupIdentity) -> None:
    assert isinstance(got, CgroupIdentity)
    assert (got.runtime is None) == (got.container_id is None)
    if got.container_id is not None:
        assert got.container_id in text
    if got.qos is not None:
        assert got.pod_uid is not None
    if got.pod_uid is not None:
        assert UID_RE.fullmatch(got.pod_uid)
        assert got.pod_uid in text or got.pod_uid.replace("-", "_") in text
    if got.sandbox:
        assert got.runtime == "crio"


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_fixture_invariants(case: dict[str, Any]) -> None:
    _check_invariants(case["in"], parse_cgroup_path(case["in"]))


@settings(max_examples=400, deadline=None)
@given(st.text())
def test_any_text_gives_an_identity(text: str) -> None:
    _check_invariants(text, parse_cgroup_path(text))


_ID = "713a77a26fe2a38ebebd5709604a048c3d380db1eb16aa43aca0b2499e54733c"
_UID = "4415fd05-2c0f-4533-909b-f2180dca8d7c"
# Real components (from the fixture sources) plus near misses, to reach the parser's
# branches far more often than random text does.
_COMPONENTS = [
    "kubepods",
    "kubepods.slice",
    "kubepods-burstable.slice",
    "burstable",
    "besteffort",
    "kubelet",
    "system.slice",
    "containerd.service",
    "docker",
    "actions_job",
    "default",
    "ecs",
    "container",
    "init.scope",
    "..",
    ".",
    "",
    f"pod{_UID}",
    f"pod{_UID.replace('-', '_')}.slice",
    f"kubepods-besteffort-pod{_UID.replace('-', '_')}.slice",
    "podd76e26fba3bf2bfd215eb29011d55250",
    f"cri-containerd-{_ID}.scope",
    f"crio-{_ID}",
    f"crio-conmon-{_ID}.scope",
    f"docker-{_ID}.scope",
    f"libpod-{_ID}g",
    f"libpod-payload-{_ID}",
    f"nerdctl-{_ID}.scope",
    f"kubepods-pod{_UID.replace('-', '_')}.slice:cri-containerd:{_ID}",
    _ID,
    _ID[:-1],
    f"run-containerd-{_ID}-rootfs.mount",
    "8474ac4cec7a4f488834b00591271ec3-3054012820",
    "15aa6e53-b09a-40c7-8558-c6c31e36c88a",
    "system-serial\\x2dgetty.slice",
    "cgroup.procs",
]


@st.composite
def _cgroupish(draw: st.DrawFn) -> str:
    parts = draw(
        st.lists(st.sampled_from(_COMPONENTS) | st.text(max_size=12), min_size=0, max_size=9)
    )
    prefix = draw(
        st.sampled_from(["", "/", "0::/", "0::", "11:memory:/", "/sys/fs/cgroup/cpu/", " "])
    )
    return prefix + "/".join(parts) + draw(st.sampled_from(["", "\n", "\r\n", " "]))


@settings(max_examples=600, deadline=None)
@given(_cgroupish())
def test_cgroup_like_text_keeps_the_invariants(text: str) -> None:
    _check_invariants(text, parse_cgroup_path(text))


def test_pod_cgroup_is_not_a_container_but_names_the_pod() -> None:
    uid_ = _UID.replace("-", "_")
    pod = f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice"
    assert parse_cgroup_path(pod) == CgroupIdentity(None, None, _UID, "burstable")
    inside = parse_cgroup_path(f"{pod}/cri-containerd-{_ID}.scope")
    assert inside == CgroupIdentity("containerd", _ID, _UID, "burstable")


# --- pick_line and cgroup_version_of -----------------------------------------------------

PROC_FILES = CASES_FILE.parent / "proc"


def _proc(name: str) -> str:
    return (PROC_FILES / f"{name}.cgroup").read_text()


def _path_of(line_prefix: str, text: str) -> str:
    """The path of the first line starting with ``line_prefix``, read from the file."""
    line = next(raw for raw in text.splitlines() if raw.startswith(line_prefix))
    return line.split(":", 2)[2]


def test_pick_line_hybrid_ignores_the_unified_line() -> None:
    text = _proc("coroot-2000")
    container = _path_of("2:cpu,cpuacct:", text)
    assert container != _path_of("0::", text)
    for controller in ("cpu", "cpuacct", "memory", "pids"):
        assert pick_line(text, controller) == container
    assert pick_line(text) == container
    assert cgroup_version_of(text) == "hybrid"


def test_pick_line_keeps_colons_and_follows_the_controller() -> None:
    text = _proc("datadog-v1-colons")
    cpu = pick_line(text, "cpu")
    assert cpu == _path_of("2:cpu,cpuacct:", text)
    assert cpu is not None and cpu.startswith("/kuberuntime.slice/containerd.service/")
    assert pick_line(text, "misc") == _path_of("13:misc:", text)
    assert pick_line(text, "misc") != cpu
    assert parse_cgroup_path(cpu) == parse_cgroup_path(_path_of("13:misc:", text))
    assert parse_cgroup_path(cpu).runtime == "containerd"
    assert cgroup_version_of(text) == "hybrid"


def test_pick_line_separate_cpu_and_cpuacct_hierarchies() -> None:
    text = _proc("ddtracepy-docker")
    assert pick_line(text, "cpu") == _path_of("2:cpu:", text)
    assert pick_line(text, "cpuacct") == _path_of("3:cpuacct:", text)
    assert pick_line(text, "rdma") is None
    assert cgroup_version_of(text) == "v1"
    without_cpu = "\n".join(line for line in text.splitlines() if ":cpu:" not in line)
    assert pick_line(without_cpu, "cpu") == _path_of("3:cpuacct:", text)


def test_pick_line_takes_the_named_controller() -> None:
    text = _proc("coroot-600")
    assert pick_line(text, "cpu") == "/"
    assert pick_line(text, "memory") == _path_of("8:memory:", text)
    assert pick_line(text, "name=systemd") == _path_of("1:name=systemd:", text)
    assert cgroup_version_of(text) == "v1"


def test_pick_line_skips_lines_that_are_not_cgroup_lines() -> None:
    text = _proc("ddtracego-other-line")
    assert text.startswith("other_line")
    assert pick_line(text) == _path_of("6:cpu,cpuacct:", text)


def test_pick_line_pure_v2() -> None:
    text = _proc("kepler-3538356")
    for controller in ("cpu", "memory", "pids"):
        assert pick_line(text, controller) == _path_of("0::", text)
    assert cgroup_version_of(text) == "v2"


@pytest.mark.parametrize("text", ["", "\n", "other_line", "garbage:\n::", "a:b:c"])
def test_pick_line_without_usable_lines(text: str) -> None:
    assert pick_line(text) is None
    assert cgroup_version_of(text) == "v2"


def test_whole_file_given_to_parse_uses_the_picked_line() -> None:
    """A caller that passes the whole file gets the cpu controller's answer, not 0::'s."""
    text = _proc("datadog-dind")
    picked = pick_line(text)
    assert picked is not None
    assert parse_cgroup_path(text) == parse_cgroup_path(picked)
    assert parse_cgroup_path(text).runtime == "unknown"
    assert parse_cgroup_path(_path_of("0::", text)).runtime == "docker"


# --- the real kernel ---------------------------------------------------------------------

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _mounted_version() -> str:
    """The cgroup mode this machine runs, read from the kernel's own mount table."""
    mounts = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        mounts[left.split()[4]] = right.split()[0]
    if mounts.get(str(CGROUP_ROOT)) == "cgroup2":
        return "v2"
    if mounts.get(str(CGROUP_ROOT / "unified")) == "cgroup2":
        return "hybrid"
    return "v1"


def test_version_of_this_machine_matches_its_mounts() -> None:
    assert cgroup_version_of(Path("/proc/self/cgroup").read_text()) == _mounted_version()


@pytest.fixture
def cgroup_dirs() -> Iterator[list[Path]]:
    """Directories the test creates; removed deepest first afterwards."""
    made: list[Path] = []
    yield made
    for path in sorted(made, key=lambda p: len(p.parts), reverse=True):
        if path.exists():
            os.rmdir(path)


def _mkcg(made: list[Path], root: Path, rel: str) -> Path:
    path = root
    for part in rel.strip("/").split("/"):
        path = path / part
        if not path.exists():
            path.mkdir()
            made.append(path)
    return path


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A process to place in cgroups; requested after cgroup_dirs, so it is reaped first
    and the directories are empty when they are removed."""
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


def _v1_root(controller: str) -> Path:
    for name in (controller, "cpu,cpuacct"):
        root = CGROUP_ROOT / name
        if (root / "cgroup.procs").exists():
            return root
    pytest.skip(f"no writable v1 {controller} hierarchy here")


def _v2_root() -> Path:
    for root in (CGROUP_ROOT, CGROUP_ROOT / "unified"):
        if (root / "cgroup.controllers").exists():
            return root
    pytest.skip("no cgroup v2 hierarchy here")


@pytest.mark.root
def test_kernel_written_lines_parse_back(
    cgroup_dirs: list[Path], sleeper: subprocess.Popen[bytes]
) -> None:
    """Place a process in kubelet-shaped cgroups and parse what the kernel reports."""
    top = f"ri-h1-{uuid.uuid4().hex}"
    uid = str(uuid.uuid4())
    uid_ = uid.replace("-", "_")
    cid = secrets.token_hex(32)
    wanted: dict[str, tuple[str, CgroupIdentity]] = {}
    if _mounted_version() != "v2":
        wanted["cpu"] = (
            f"/{top}/kubepods/burstable/pod{uid}/{cid}",
            CgroupIdentity("unknown", cid, uid, "burstable"),
        )
        wanted["pids"] = (
            f"/{top}/kubepods.slice/kubepods-besteffort.slice/"
            f"kubepods-besteffort-pod{uid_}.slice/cri-containerd-{cid}.scope",
            CgroupIdentity("containerd", cid, uid, "besteffort"),
        )
    # The CRI triple is a real directory name with colons in it (runc not in systemd mode).
    v2_rel = f"/{top}/system.slice/containerd.service/kubepods-pod{uid_}.slice:cri-containerd:{cid}"
    for controller, (rel, _) in wanted.items():
        _mkcg(cgroup_dirs, _v1_root(controller), rel)
    v2_root = _v2_root()
    _mkcg(cgroup_dirs, v2_root, v2_rel)
    for controller, (rel, _) in wanted.items():
        (_v1_root(controller) / rel.strip("/") / "cgroup.procs").write_text(str(sleeper.pid))
    (v2_root / v2_rel.strip("/") / "cgroup.procs").write_text(str(sleeper.pid))

    text = Path(f"/proc/{sleeper.pid}/cgroup").read_text()
    assert cgroup_version_of(text) == _mounted_version()
    for controller, (rel, identity) in wanted.items():
        assert pick_line(text, controller) == rel
        assert parse_cgroup_path(rel) == identity
    v2_line = next(line for line in text.splitlines() if line.startswith("0::"))
    assert v2_line.endswith(v2_rel)
    assert parse_cgroup_path(v2_line) == CgroupIdentity("containerd", cid, uid, "guaranteed")
    if _mounted_version() == "v2":
        assert pick_line(text) == v2_rel


@pytest.mark.root
def test_reader_in_another_cgroup_namespace_sees_relative_paths(
    cgroup_dirs: list[Path], sleeper: subprocess.Popen[bytes]
) -> None:
    """A reader inside a sibling container's cgroup namespace sees `/../<id>`."""
    root = _v2_root()
    pod = f"ri-h1-{uuid.uuid4().hex}/kubepods/burstable/pod{uuid.uuid4()}"
    target, reader = secrets.token_hex(32), secrets.token_hex(32)
    _mkcg(cgroup_dirs, root, f"{pod}/{target}")
    reader_dir = _mkcg(cgroup_dirs, root, f"{pod}/{reader}")
    (root / pod / target / "cgroup.procs").write_text(str(sleeper.pid))
    out = subprocess.run(
        [
            "sh",
            "-c",
            f'echo $$ > "{reader_dir}/cgroup.procs" && '
            f"exec unshare --cgroup cat /proc/{sleeper.pid}/cgroup",
        ],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    ).stdout
    v2_line = next(line for line in out.splitlines() if line.startswith("0::"))
    assert v2_line == f"0::/../{target}"
    # The namespace hid the pod component: the id survives, the pod cannot be known.
    assert parse_cgroup_path(v2_line) == CgroupIdentity("unknown", target, None, None)


def test_candidate_lines_follow_the_controller_order() -> None:
    """cpu, then cpuacct, then memory, then the rest in file order; 0:: only on pure v2."""
    hybrid = _proc("coroot-2000")
    lines = candidate_lines(hybrid)
    assert lines[0] == _path_of("2:cpu,cpuacct:", hybrid)
    assert _path_of("0::", hybrid) not in lines
    separate = _proc("ddtracepy-docker")
    lines = candidate_lines(separate)
    assert lines[:2] == [_path_of("2:cpu:", separate), _path_of("3:cpuacct:", separate)]
    memory = next(raw for raw in separate.splitlines() if ":memory:" in raw).split(":", 2)[2]
    assert lines[2] == memory
    v2 = _proc("kepler-3538356")
    assert candidate_lines(v2) == [_path_of("0::", v2)]
    assert candidate_lines("no cgroup line here\n") == []


def test_whole_file_falls_back_to_another_v1_line_naming_the_container() -> None:
    """A cpu line that names no container does not hide the container another line names."""
    cid = secrets.token_hex(32)
    text = f"3:cpu:/\n2:pids:/docker/{cid}\n1:name=systemd:/\n0::/system.slice/docker.service\n"
    assert parse_cgroup_path(text) == CgroupIdentity("docker", cid, None, None)
    assert parse_cgroup_path(f"3:cpu:/\n0::/docker/{cid}\n") == _NOTHING_IDENTITY


@st.composite
def _cgroup_file(draw: st.DrawFn) -> str:
    """Whole /proc/<pid>/cgroup-like files: real fixture lines and generated ones, mixed."""
    real = st.sampled_from([c["in"] for c in CASES])
    lines = draw(st.lists(real | _cgroupish() | st.text(max_size=20), min_size=2, max_size=8))
    return draw(st.sampled_from(["\n", "\r\n", "\n\n"])).join(lines)


@settings(max_examples=300, deadline=None)
@given(_cgroup_file())
def test_whole_files_keep_the_invariants(text: str) -> None:
    got = parse_cgroup_path(text)
    _check_invariants(text, got)
    if got.runtime is not None:
        # The answer is that of one of the file's own candidate lines.
        assert any(parse_cgroup_path(line) == got for line in candidate_lines(text)) or (
            not candidate_lines(text)
        )


def test_a_unicode_line_break_in_a_cgroup_name_is_no_line_end() -> None:
    """NEL (U+0085) is a character a directory name may hold; only the kernel's ``\\n``
    ends a line of /proc/<pid>/cgroup (hypothesis found the two readings disagreeing)."""
    cid = "7" * 64
    text = f"\n0::/a\x85b/cri-containerd-{cid}.scope\n"
    assert candidate_lines(text) == [f"/a\x85b/cri-containerd-{cid}.scope"]
    assert parse_cgroup_path(text).container_id == cid
