"""What `kubectl apply -k` applies, computed here without a kustomize binary.

Only what manifests/ uses: resources (files and directories), `labels` (metadata labels
only, as kustomize's default), `images` and `patches` with a target: strategic-merge
(`$patch: delete` removes the target) or JSON 6902 (`add`, `replace`, `remove`). Lists
merge by their patch merge key (`name`, or `mountPath` for volume mounts), as the
Kubernetes schemas declare for containers, env, volumes and volume mounts.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]
MERGE_KEYS = ("name", "mountPath")


def docs(path: Path) -> list[Obj]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            merged[key] = _merge(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    if isinstance(base, list) and isinstance(patch, list):
        key = next(
            (k for k in MERGE_KEYS if all(isinstance(i, dict) and k in i for i in base + patch)),
            None,
        )
        if key is None or not base:
            return copy.deepcopy(patch)
        merged_list = list(base)
        for item in patch:
            at = next((n for n, old in enumerate(merged_list) if old[key] == item[key]), None)
            if at is None:
                merged_list.append(copy.deepcopy(item))
            else:
                merged_list[at] = _merge(merged_list[at], item)
        return merged_list
    return copy.deepcopy(patch)


def _set_images(obj: Any, images: dict[str, str]) -> None:
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key == "image" and isinstance(value, str) and value in images:
                obj[key] = images[value]
            else:
                _set_images(value, images)
    elif isinstance(obj, list):
        for item in obj:
            _set_images(item, images)


def build(directory: Path) -> list[Obj]:
    """The objects of the kustomization in ``directory``, transformed and patched."""
    kustomization = docs(directory / "kustomization.yaml")[0]
    objects: list[Obj] = []
    for ref in kustomization.get("resources", []):
        target = (directory / ref).resolve()
        objects += build(target) if target.is_dir() else docs(target)
    for entry in kustomization.get("labels", []):
        for obj in objects:
            obj["metadata"].setdefault("labels", {}).update(entry["pairs"])
    images = {
        i["name"]: f"{i.get('newName', i['name'])}:{i['newTag']}"
        for i in kustomization.get("images", [])
    }
    for obj in objects:
        _set_images(obj, images)
    for patch in kustomization.get("patches", []):
        target = patch["target"]
        body = yaml.safe_load(patch["patch"])
        hits = [
            n
            for n, obj in enumerate(objects)
            if (obj["kind"], obj["metadata"]["name"]) == (target["kind"], target["name"])
        ]
        assert hits, f"{directory}: no {target['kind']} {target['name']} to patch"
        for n in hits:
            if isinstance(body, list):
                objects[n] = _json6902(objects[n], body)
            elif body.get("$patch") == "delete":
                objects[n] = {}
            else:
                objects[n] = _merge(objects[n], body)
        objects = [obj for obj in objects if obj]
    return objects


def _json6902(obj: Obj, operations: list[Obj]) -> Obj:
    """RFC 6902 add / replace / remove at JSON pointers (what manifests/ uses)."""
    out = copy.deepcopy(obj)
    for op in operations:
        *parents, last = [
            p.replace("~1", "/").replace("~0", "~") for p in op["path"][1:].split("/")
        ]
        node: Any = out
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        key: Any = int(last) if isinstance(node, list) and last != "-" else last
        if op["op"] == "remove":
            del node[key]
        elif op["op"] == "replace":
            _ = node[key]  # replace needs an existing member
            node[key] = copy.deepcopy(op["value"])
        elif op["op"] == "add":
            if isinstance(node, list):
                node.insert(len(node) if key == "-" else key, copy.deepcopy(op["value"]))
            else:
                node[key] = copy.deepcopy(op["value"])
        else:
            raise ValueError(f"unsupported JSON patch operation {op['op']!r}")
    return out
