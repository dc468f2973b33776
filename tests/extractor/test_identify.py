"""Runtime labels from containerd and CRI-O state files.

Annotation keys as their runtimes write them: containerd's CRI plugin
(containerd/containerd pkg/cri/annotations/annotations.go, DefaultCRIAnnotations puts
the sandbox-* keys on sandboxes and containers alike) and CRI-O (cri-o/cri-o
pkg/annotations/internal.go for io.kubernetes.cri-o.*, the kubelet's
io.kubernetes.pod.* labels copied into the spec; the same keys inspektor-gadget's
pkg/container-utils/oci-annotations/resolver_crio.go reads).
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from extractor.hostpaths import HostPaths
from extractor.identify import MAX_CONFIG_BYTES, ContainerLabels, RuntimeState, read_bounded

SANDBOX = "a" * 64
APP = "b" * 64
POD_UID = "0f3a4c1e-5b7d-4e2a-9c61-2d8e7f9a1b34"


def spec(annotations: dict[str, str]) -> bytes:
    """A trimmed OCI runtime spec as runc bundles hold it."""
    return orjson.dumps(
        {
            "ociVersion": "1.0.2-dev",
            "process": {"args": ["/pause"], "cwd": "/"},
            "root": {"path": "rootfs"},
            "annotations": annotations,
            "linux": {"cgroupsPath": f"/kubepods/burstable/pod{POD_UID}/{APP}"},
        }
    )


def containerd_sandbox() -> dict[str, str]:
    return {
        "io.kubernetes.cri.container-type": "sandbox",
        "io.kubernetes.cri.sandbox-id": SANDBOX,
        "io.kubernetes.cri.sandbox-namespace": "shop",
        "io.kubernetes.cri.sandbox-name": "cart-7d9f",
        "io.kubernetes.cri.sandbox-uid": POD_UID,
        "io.kubernetes.cri.sandbox-log-directory": f"/var/log/pods/shop_cart-7d9f_{POD_UID}",
    }


def containerd_app() -> dict[str, str]:
    return {
        "io.kubernetes.cri.container-type": "container",
        "io.kubernetes.cri.sandbox-id": SANDBOX,
        "io.kubernetes.cri.sandbox-namespace": "shop",
        "io.kubernetes.cri.sandbox-name": "cart-7d9f",
        "io.kubernetes.cri.sandbox-uid": POD_UID,
        "io.kubernetes.cri.container-name": "cart",
        "io.kubernetes.cri.image-name": "registry.example/cart:1.4",
    }


def crio_app() -> dict[str, str]:
    return {
        "io.kubernetes.cri-o.ContainerType": "container",
        "io.kubernetes.cri-o.SandboxID": SANDBOX,
        "io.kubernetes.cri-o.ImageName": "quay.io/example/api:2.0",
        "io.kubernetes.pod.namespace": "payments",
        "io.kubernetes.pod.name": "api-0",
        "io.kubernetes.pod.uid": POD_UID,
        "io.kubernetes.container.name": "api",
        "io.kubernetes.cri-o.Labels": '{"io.kubernetes.container.name":"api"}',
    }


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def roots(tmp_path: Path) -> HostPaths:
    return HostPaths(
        proc_root=str(tmp_path / "proc"),
        cgroup_root=str(tmp_path / "cg"),
        containerd_state=(str(tmp_path / "ctrd"),),
        crio_state=(str(tmp_path / "crio"),),
    )


def ctrd_bundle(paths: HostPaths, namespace: str, cid: str) -> Path:
    return Path(paths.containerd_state[0], namespace, cid, "config.json")


def crio_bundle(paths: HostPaths, cid: str) -> Path:
    return Path(paths.crio_state[0], "overlay-containers", cid, "userdata", "config.json")


def test_containerd_app_container(roots: HostPaths) -> None:
    write(ctrd_bundle(roots, "k8s.io", APP), spec(containerd_app()))
    assert RuntimeState(roots).lookup(APP) == ContainerLabels(
        runtime="containerd",
        namespace="shop",
        pod_name="cart-7d9f",
        pod_uid=POD_UID,
        container_name="cart",
        container_type="container",
        sandbox_id=SANDBOX,
        image="registry.example/cart:1.4",
        runtime_namespace="k8s.io",
    )


def test_containerd_sandbox(roots: HostPaths) -> None:
    write(ctrd_bundle(roots, "k8s.io", SANDBOX), spec(containerd_sandbox()))
    labels = RuntimeState(roots).lookup(SANDBOX)
    assert labels is not None
    assert labels.is_sandbox and labels.container_type == "sandbox"
    assert (labels.namespace, labels.pod_name, labels.pod_uid) == ("shop", "cart-7d9f", POD_UID)
    assert labels.container_name is None


def test_app_without_pod_fields_inherits_them_from_its_sandbox(roots: HostPaths) -> None:
    older = {k: v for k, v in containerd_app().items() if "sandbox-" not in k or "-id" in k}
    write(ctrd_bundle(roots, "k8s.io", APP), spec(older))
    write(ctrd_bundle(roots, "k8s.io", SANDBOX), spec(containerd_sandbox()))
    labels = RuntimeState(roots).lookup(APP)
    assert labels is not None
    assert (labels.namespace, labels.pod_name, labels.pod_uid) == ("shop", "cart-7d9f", POD_UID)
    assert labels.container_name == "cart"


def test_every_containerd_namespace_is_searched(roots: HostPaths) -> None:
    write(ctrd_bundle(roots, "k8s.io", SANDBOX), spec(containerd_sandbox()))
    write(ctrd_bundle(roots, "moby", APP), spec({}))
    labels = RuntimeState(roots).lookup(APP)
    assert labels == ContainerLabels(runtime="containerd", runtime_namespace="moby")


def test_crio_container(roots: HostPaths) -> None:
    write(crio_bundle(roots, APP), spec(crio_app()))
    assert RuntimeState(roots).lookup(APP) == ContainerLabels(
        runtime="crio",
        namespace="payments",
        pod_name="api-0",
        pod_uid=POD_UID,
        container_name="api",
        container_type="container",
        sandbox_id=SANDBOX,
        image="quay.io/example/api:2.0",
    )


def test_answers_are_cached_by_container_id(roots: HostPaths) -> None:
    bundle = write(ctrd_bundle(roots, "k8s.io", APP), spec(containerd_app()))
    state = RuntimeState(roots)
    first = state.lookup(APP)
    bundle.unlink()
    assert state.lookup(APP) == first is not None


def test_cache_is_bounded(roots: HostPaths) -> None:
    state = RuntimeState(roots, cache_size=2)
    ids = [c * 64 for c in "cde"]
    bundles = [write(ctrd_bundle(roots, "k8s.io", i), spec(containerd_app())) for i in ids]
    for cid in ids:
        assert state.lookup(cid) is not None
    for bundle in bundles:
        bundle.unlink()
    assert state.lookup(ids[0]) is None  # evicted, and its bundle is gone
    assert state.lookup(ids[2]) is not None


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{not json",
        b"[1, 2]",
        b'{"annotations": ["x"]}',
        b"\xff\xfe\x00garbage",
        b'{"annotations": {"io.kubernetes.cri.container-type": 7}} trailing',
    ],
)
def test_corrupt_bundles_are_no_answer(roots: HostPaths, content: bytes) -> None:
    write(ctrd_bundle(roots, "k8s.io", APP), content)
    assert RuntimeState(roots).lookup(APP) is None


def test_non_string_annotations_are_ignored(roots: HostPaths) -> None:
    odd = {**containerd_app(), "io.kubernetes.cri.container-name": 7, "x": None}
    write(ctrd_bundle(roots, "k8s.io", APP), orjson.dumps({"annotations": odd}))
    labels = RuntimeState(roots).lookup(APP)
    assert labels is not None
    assert labels.container_name is None and labels.pod_name == "cart-7d9f"


def test_unknown_container_type_is_not_guessed(roots: HostPaths) -> None:
    write(
        ctrd_bundle(roots, "k8s.io", APP),
        spec({**containerd_app(), "io.kubernetes.cri.container-type": "podsandbox"}),
    )
    labels = RuntimeState(roots).lookup(APP)
    assert labels is not None and labels.container_type is None


def test_huge_bundle_is_refused(roots: HostPaths) -> None:
    padding = "x" * (MAX_CONFIG_BYTES + 1)
    write(ctrd_bundle(roots, "k8s.io", APP), spec({**containerd_app(), "pad": padding}))
    assert RuntimeState(roots).lookup(APP) is None


def test_bundle_just_under_the_cap_is_read(roots: HostPaths) -> None:
    base = spec({**containerd_app(), "pad": ""})
    padding = "x" * (MAX_CONFIG_BYTES - len(base))
    data = spec({**containerd_app(), "pad": padding})
    assert len(data) == MAX_CONFIG_BYTES
    write(ctrd_bundle(roots, "k8s.io", APP), data)
    assert RuntimeState(roots).lookup(APP) is not None


def test_missing_state_roots_are_no_answer(roots: HostPaths) -> None:
    assert RuntimeState(roots).lookup(APP) is None


@pytest.mark.parametrize("cid", ["../../etc", "", "a/b", ".hidden", "x" * 200, "a\x00b"])
def test_ids_that_are_not_ids_never_touch_the_filesystem(roots: HostPaths, cid: str) -> None:
    write(Path(roots.containerd_state[0], "k8s.io", "etc", "config.json"), spec(containerd_app()))
    assert RuntimeState(roots).lookup(cid) is None


def test_fifo_or_directory_in_place_of_config_is_refused(roots: HostPaths) -> None:
    fifo = ctrd_bundle(roots, "k8s.io", APP)
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)  # opening a FIFO for reading would block without O_NONBLOCK
    ctrd_bundle(roots, "k8s.io", SANDBOX).mkdir(parents=True)
    state = RuntimeState(roots)
    assert state.lookup(APP) is None
    assert state.lookup(SANDBOX) is None
    assert read_bounded(str(fifo)) is None


def test_symlinked_config_is_not_followed(roots: HostPaths, tmp_path: Path) -> None:
    target = write(tmp_path / "elsewhere.json", spec(containerd_app()))
    link = ctrd_bundle(roots, "k8s.io", APP)
    link.parent.mkdir(parents=True)
    link.symlink_to(target)
    assert RuntimeState(roots).lookup(APP) is None


def test_a_container_without_state_is_searched_again_only_after_the_retry_period(
    roots: HostPaths,
) -> None:
    """A miss is remembered (a pass would otherwise search every state root for each such
    container), and forgotten after ``retry_seconds``: a bundle found late still names
    the container."""
    now = [100.0]
    state = RuntimeState(roots, retry_seconds=60.0, clock=lambda: now[0])
    assert state.lookup(APP) is None
    write(ctrd_bundle(roots, "k8s.io", APP), spec(containerd_app()))
    now[0] += 59.0
    assert state.lookup(APP) is None
    now[0] += 1.0
    labels = state.lookup(APP)
    assert labels is not None and labels.container_name == "cart"
