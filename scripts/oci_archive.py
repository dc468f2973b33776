"""Packs an OCI image layout (as umoci writes it) into one archive every loader reads.

Why not skopeo's ``oci-archive:``: ``ctr images import`` names an image only from an
``io.containerd.image.name`` annotation, and ``docker load`` (before Docker 25) only
reads a ``manifest.json``. This archive is the OCI layout plus both, the way
``docker save`` has written it since Docker 25; ``podman load`` and skopeo read the
OCI part. Entries are sorted and timestamped from SOURCE_DATE_EPOCH when it is set.

Usage: oci_archive.py LAYOUT_DIR TAG REFERENCE OUTPUT
    TAG names the manifest in LAYOUT_DIR's index (umoci's ``--image dir:TAG``);
    REFERENCE is what loaders call the image (``runtime-insights:0.2.0``).
"""

from __future__ import annotations

import io
import json
import os
import sys
import tarfile
from pathlib import Path
from typing import Any

REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"


def normalize(reference: str) -> str:
    """The fully qualified name containerd and the kubelet use for ``reference``."""
    first, _, rest = reference.partition("/")
    if not rest or ("." not in first and ":" not in first and first != "localhost"):
        path = reference if rest else f"library/{reference}"
        return f"docker.io/{path}"
    return reference


def _blob(layout: Path, digest: str) -> Path:
    algorithm, _, hexdigest = digest.partition(":")
    return layout / "blobs" / algorithm / hexdigest


def build_index(layout: Path, tag: str, reference: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The index naming the tagged manifest for every loader, and that manifest."""
    index = json.loads((layout / "index.json").read_text())
    (descriptor,) = [d for d in index["manifests"] if d.get("annotations", {}).get(REF_NAME) == tag]
    annotations = {**descriptor.get("annotations", {}), CONTAINERD_NAME: normalize(reference)}
    index["manifests"] = [{**descriptor, "annotations": annotations}]
    manifest = json.loads(_blob(layout, descriptor["digest"]).read_bytes())
    return index, manifest


def docker_manifest(manifest: dict[str, Any], reference: str) -> list[dict[str, Any]]:
    """``manifest.json`` of a ``docker save`` archive, pointing at the OCI blobs."""

    def path(digest: str) -> str:
        return "blobs/" + digest.replace(":", "/", 1)

    return [
        {
            "Config": path(manifest["config"]["digest"]),
            "RepoTags": [reference],
            "Layers": [path(layer["digest"]) for layer in manifest["layers"]],
        }
    ]


def write_archive(layout: Path, tag: str, reference: str, output: Path) -> None:
    index, manifest = build_index(layout, tag, reference)
    mtime = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    digests = [manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])]
    index_digest = index["manifests"][0]["digest"]
    members: list[tuple[str, bytes | Path]] = [
        ("oci-layout", (layout / "oci-layout").read_bytes()),
        ("index.json", json.dumps(index, indent=2).encode()),
        ("manifest.json", json.dumps(docker_manifest(manifest, reference), indent=2).encode()),
        *((f"blobs/{d.replace(':', '/', 1)}", _blob(layout, d)) for d in [index_digest, *digests]),
    ]
    tmp = output.with_name(output.name + ".tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for directory in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, mtime
            tar.addfile(info)
        for name, content in members:
            data = content.read_bytes() if isinstance(content, Path) else content
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, mtime
            tar.addfile(info, io.BytesIO(data))
    tmp.replace(output)


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print("usage: oci_archive.py LAYOUT_DIR TAG REFERENCE OUTPUT", file=sys.stderr)
        return 2
    layout, tag, reference, output = argv
    write_archive(Path(layout), tag, reference, Path(output))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
