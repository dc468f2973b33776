"""The image build: the archive writer's naming and layout, and the Containerfile kept
to the same layout as scripts/build-image.sh (the integration test runs the real image:
tests/integration/test_image.py)."""

from __future__ import annotations

import hashlib
import json
import re
import sys
import tarfile
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import oci_archive  # noqa: E402

VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
BUILD_SCRIPT = (ROOT / "scripts" / "build-image.sh").read_text()
CONTAINERFILE = (ROOT / "Containerfile").read_text()


@pytest.mark.parametrize(
    ("reference", "normalized"),
    [
        ("runtime-insights:0.2.0", "docker.io/library/runtime-insights:0.2.0"),
        ("acme/runtime-insights:0.2.0", "docker.io/acme/runtime-insights:0.2.0"),
        ("registry.example:5000/ri:0.2.0", "registry.example:5000/ri:0.2.0"),
        ("localhost/ri:1", "localhost/ri:1"),
        ("quay.io/acme/ri:0.2.0", "quay.io/acme/ri:0.2.0"),
    ],
)
def test_references_are_normalized_as_containerd_names_them(
    reference: str, normalized: str
) -> None:
    assert oci_archive.normalize(reference) == normalized


def _blob(layout: Path, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def test_archive_holds_the_oci_layout_and_a_docker_manifest(tmp_path: Path) -> None:
    """Only the tagged manifest is kept, named for ctr (annotation) and docker (RepoTags),
    and every blob either loader follows is in the archive with its digest."""
    layout = tmp_path / "oci"
    (layout / "blobs" / "sha256").mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    config = _blob(layout, b'{"architecture": "amd64", "os": "linux"}')
    layer = _blob(layout, b"not really a layer")
    manifest = {"schemaVersion": 2, "config": config, "layers": [layer]}
    wanted = _blob(layout, json.dumps(manifest).encode())
    other = _blob(layout, json.dumps({**manifest, "layers": []}).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [
            {**wanted, "annotations": {oci_archive.REF_NAME: "0.2.0"}},
            {**other, "annotations": {oci_archive.REF_NAME: "old"}},
        ],
    }
    (layout / "index.json").write_text(json.dumps(index))
    out = tmp_path / "image.tar"
    oci_archive.write_archive(layout, "0.2.0", "runtime-insights:0.2.0", out)

    with tarfile.open(out) as tar:
        names = set(tar.getnames())

        def read(name: str) -> bytes:
            member = tar.extractfile(name)
            assert member is not None, name
            return member.read()

        (entry,) = json.loads(read("index.json"))["manifests"]
        assert entry["digest"] == wanted["digest"]
        assert entry["annotations"] == {
            oci_archive.REF_NAME: "0.2.0",
            oci_archive.CONTAINERD_NAME: "docker.io/library/runtime-insights:0.2.0",
        }
        (docker,) = json.loads(read("manifest.json"))
        assert docker["RepoTags"] == ["runtime-insights:0.2.0"]
        manifest_path = "blobs/" + wanted["digest"].replace(":", "/")
        for path in [docker["Config"], *docker["Layers"], manifest_path]:
            assert path in names, path
            assert hashlib.sha256(read(path)).hexdigest() == path.rsplit("/", 1)[1]
        assert f"blobs/sha256/{other['digest'][7:]}" not in names
        assert {"oci-layout", "index.json", "manifest.json"} <= names


def _containerfile_final_stage() -> list[str]:
    stages = re.split(r"^FROM ", CONTAINERFILE, flags=re.M)
    return [line for line in stages[-1].splitlines() if line and not line.startswith("#")]


def test_containerfile_builds_the_same_layout_as_make_image() -> None:
    """Same venv path and entrypoint, same user, same environment, same version."""
    venv = re.search(r"^venv=(\S+)$", BUILD_SCRIPT, re.M)
    assert venv is not None
    final = _containerfile_final_stage()
    assert final[0].startswith("gcr.io/distroless/python3-debian12")
    assert f"COPY --from=build {venv[1]} {venv[1]}" in final
    assert f'ENTRYPOINT ["{venv[1]}/bin/runtime-insights"]' in final
    assert "USER 65532:65532" in final
    assert "--config.user 65532:65532" in BUILD_SCRIPT
    assert '--config.entrypoint "$venv/bin/runtime-insights"' in BUILD_SCRIPT
    env_line = next(line for line in final if line.startswith("ENV "))
    for setting in ("PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1", f"PATH={venv[1]}/bin"):
        assert setting in env_line
        assert setting.replace(venv[1], "$venv") in BUILD_SCRIPT
    assert f"org.opencontainers.image.version={VERSION}" in CONTAINERFILE
    assert f"-t runtime-insights:{VERSION}" in CONTAINERFILE
    # both trim the same unused half of the Kubernetes client
    assert "kubernetes/aio" in CONTAINERFILE and "kubernetes/aio" in BUILD_SCRIPT


def test_the_image_build_installs_its_tools_from_the_distribution() -> None:
    packages = (ROOT / "scripts" / "image-packages.txt").read_text().split()
    assert {"mmdebstrap", "umoci", "skopeo"} <= set(packages)
    assert 'system-deps.sh" "$here/image-packages.txt"' in BUILD_SCRIPT
    assert 'skopeo copy "oci-archive:$archive" "docker://$PUSH"' in BUILD_SCRIPT
