"""``/gather_runtime_info`` answers as insights-runtime-extractor's exporter does.

Behaviour reference: openshift/insights-runtime-extractor exporter/cmd/exporter/main.go
(gatherRuntimeInfo: GET/POST, http.Error bodies, 404 for other methods, ``hash`` query)
and exporter/pkg/utils (HashString), summarised in
docs/insights-runtime-extractor.md. Hash vectors below are the tool's HashString test list.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest

from exporter.http.insights import hash_value, parse_container_ids
from exporter.node.state import State
from extractor.contract import Fingerprint, Snapshot
from tests.support.exporter_doubles import (
    FakeLookup,
    api_meta_for,
    client_for,
    pod_with,
    snapshot,
    standard_snapshot,
)

INVALID = '{"error": "Invalid JSON in request body"}\n'
REQUIRED = '{"error": "containerIds field is required"}\n'

# insights-runtime-extractor's HashString test vectors (docs/insights-runtime-extractor.md)
VECTORS = {
    "rhel": "yqx1WBefoIAq",
    "Golang": "UOVueXxKyJ95",
    "Java": "wbpgzhNYZQOi",
    "Node.js": "H8DHhTMugPuT",
    "Quarkus": "zBVuVhrrC_vC",
    "GraalVM": "mjPGfOhcD0JI",
    "17.0.7": "cAsoUDy8JFNV",
    "Red Hat, Inc.": "DzP5-GS6tDOQ",
    "8.9": "7RUYdckn49F8",
}


def _state(snap: Snapshot | None = None) -> State:
    state = State()
    state.record(snap or standard_snapshot())
    return state


def _expected(snap: Snapshot, names: dict[str, tuple[str, str]] | None = None) -> dict[str, Any]:
    """The clear-text answer derived from the snapshot itself (prefix per runtime)."""
    prefix = {"crio": "cri-o", "containerd": "containerd"}
    out: dict[str, Any] = {}
    for c in snap.containers:
        if c.sandbox:
            continue
        ns, pod = names[c.id] if names else (c.namespace or "", c.pod_name or "")
        fp = c.fingerprint.compatible() if c.fingerprint else {}
        out.setdefault(ns, {}).setdefault(pod, {})[f"{prefix[c.runtime]}://{c.id}"] = fp
    return out


@pytest.mark.parametrize(("value", "expected"), sorted(VECTORS.items()))
def test_hash_vectors(value: str, expected: str) -> None:
    assert hash_value(value) == expected


def test_hash_is_base64url_sha256_prefix() -> None:
    value = "3.15.3.redhat-00002"
    full = base64.urlsafe_b64encode(hashlib.sha256(value.encode()).digest()).decode()
    assert hash_value(value) == full.rstrip("=")[:12]
    assert len(hash_value(value)) == 12


async def test_get_clear_text_matches_snapshot_and_prefixes() -> None:
    snap = standard_snapshot()
    async with client_for(_state(snap)) as client:
        resp = await client.get("/gather_runtime_info?hash=false")
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/json"
        body = await resp.json()
    assert body == _expected(snap)
    keys = [k for pods in body.values() for ctrs in pods.values() for k in ctrs]
    assert any(k.startswith("cri-o://") for k in keys)
    assert any(k.startswith("containerd://") for k in keys)
    # a container with nothing detected is {} (IRE: omitempty on every field)
    assert {} in [v for pods in body.values() for ctrs in pods.values() for v in ctrs.values()]
    sandboxes = {c.id for c in snap.containers if c.sandbox}
    assert not any(k.split("://")[1] in sandboxes for k in keys)


@pytest.mark.parametrize("query", ["", "?hash=true", "?hash="])
async def test_hash_default_and_true_hash_every_leaf(query: str) -> None:
    snap = standard_snapshot()
    async with client_for(_state(snap)) as client:
        body = await (await client.get("/gather_runtime_info" + query)).json()
    clear = _expected(snap)
    for ns, pods in clear.items():
        for pod, ctrs in pods.items():
            for key, info in ctrs.items():
                got = body[ns][pod][key]
                assert set(got) == set(info)
                for field, value in info.items():
                    if field == "runtimes":
                        assert got[field] == [
                            {k: hash_value(v) for k, v in item.items()} for item in value
                        ]
                    else:
                        assert got[field] == hash_value(value)


@pytest.mark.parametrize("value", ["false", "TRUE", "1", "no"])
async def test_anything_but_true_is_clear_text(value: str) -> None:
    snap = standard_snapshot()
    async with client_for(_state(snap)) as client:
        body = await (await client.get(f"/gather_runtime_info?hash={value}")).json()
    assert body == _expected(snap)


async def test_post_with_and_without_prefix_skips_unknown() -> None:
    snap = standard_snapshot()
    apps = [c for c in snap.containers if not c.sandbox]
    crio = next(c for c in apps if c.runtime == "crio")
    ctrd = next(c for c in apps if c.runtime == "containerd" and c.fingerprint)
    ids = [f"cri-o://{crio.id}", ctrd.id, "cri-o://" + "0" * 64, "nope"]
    async with client_for(_state(snap)) as client:
        resp = await client.post("/gather_runtime_info?hash=false", json={"containerIds": ids})
        assert resp.status == 200
        body = await resp.json()
    keys = {k for pods in body.values() for ctrs in pods.values() for k in ctrs}
    assert keys == {f"cri-o://{crio.id}", f"containerd://{ctrd.id}"}
    assert body[ctrd.namespace][ctrd.pod_name][f"containerd://{ctrd.id}"] == (
        ctrd.fingerprint.compatible() if ctrd.fingerprint else None
    )


async def test_post_empty_list_means_all_and_field_name_is_case_insensitive() -> None:
    snap = standard_snapshot()
    async with client_for(_state(snap)) as client:
        every = await (
            await client.post("/gather_runtime_info?hash=false", json={"containerIds": []})
        ).json()
        crio = next(c for c in snap.containers if c.runtime == "crio" and not c.sandbox)
        folded = await (
            await client.post(
                "/gather_runtime_info?hash=false", data=json.dumps({"ContainerIDs": [crio.id]})
            )
        ).json()
    assert every == _expected(snap)
    assert list(folded) == [crio.namespace]


@pytest.mark.parametrize("ids", [[""], [None], ["", None]], ids=["empty", "null", "both"])
async def test_post_of_only_empty_ids_means_all(ids: list[str | None]) -> None:
    """The replaced exporter joins the ids with commas; "" is "all" to its extractor."""
    snap = standard_snapshot()
    async with client_for(_state(snap)) as client:
        resp = await client.post("/gather_runtime_info?hash=false", json={"containerIds": ids})
        assert resp.status == 200
        assert await resp.json() == _expected(snap)


async def test_empty_ids_beside_real_ones_are_ignored() -> None:
    snap = standard_snapshot()
    crio = next(c for c in snap.containers if c.runtime == "crio" and not c.sandbox)
    async with client_for(_state(snap)) as client:
        resp = await client.post(
            "/gather_runtime_info?hash=false", json={"containerIds": ["", f"cri-o://{crio.id}"]}
        )
        body = await resp.json()
    keys = {cid for pods in body.values() for ctrs in pods.values() for cid in ctrs}
    assert keys == {f"cri-o://{crio.id}"}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", INVALID),
        (b"{", INVALID),
        (b"[]", INVALID),
        (b'"ids"', INVALID),
        (b'{"containerIds": "abc"}', INVALID),
        (b'{"containerIds": [1, 2]}', INVALID),
        (b'{"containerIds": NaN}', INVALID),
        (b"{}", REQUIRED),
        (b"null", REQUIRED),
        (b'{"containerIds": null}', REQUIRED),
        (b'{"other": ["x"]}', REQUIRED),
    ],
)
async def test_post_errors_are_go_http_error_text(body: bytes, expected: str) -> None:
    async with client_for(_state()) as client:
        resp = await client.post("/gather_runtime_info", data=body)
        assert resp.status == 400
        assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert await resp.text() == expected


def test_decoder_takes_first_value_like_go() -> None:
    # json.Decoder.Decode reads one value; what follows is not its business
    assert parse_container_ids(b' {"containerIds": ["a"]} trailing') == ["a"]


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])
async def test_other_methods_are_404_method_not_supported(method: str) -> None:
    async with client_for(_state()) as client:
        resp = await client.request(method, "/gather_runtime_info")
        assert resp.status == 404
        assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
        # a HEAD answer carries no body, only its headers
        want = "" if method == "HEAD" else "Method is not supported.\n"
        assert await resp.text() == want


async def test_no_snapshot_is_500_text() -> None:
    state = State()
    state.last_error = "extractor socket /x: cannot connect"
    async with client_for(state) as client:
        resp = await client.get("/gather_runtime_info")
        assert resp.status == 500
        assert resp.headers["Content-Type"].startswith("text/plain")
        assert "cannot connect" in await resp.text()


async def test_names_come_from_the_api_when_it_knows_the_pod() -> None:
    snap = standard_snapshot()
    metas = api_meta_for(snap)
    names = {st.container_id or "": (m.namespace, m.name) for m in metas for st in m.containers}
    async with client_for(_state(snap), FakeLookup(metas)) as client:
        body = await (await client.get("/gather_runtime_info?hash=false")).json()
    assert body == _expected(snap, names)
    assert all(pod.endswith("-api") for pods in body.values() for pod in pods)


async def test_html_characters_escaped_like_go_encoding_json() -> None:
    fp = Fingerprint(os="a<b>&c", osVersion="1")
    snap = snapshot([pod_with("ns", "p", "33333333-3333-3333-3333-333333333333", [("c", fp)])])
    async with client_for(_state(snap)) as client:
        raw = await (await client.get("/gather_runtime_info?hash=false")).read()
    assert b"a\\u003cb\\u003e\\u0026c" in raw
    assert json.loads(raw)["ns"]["p"] != {}


def test_hash_of_empty_is_empty() -> None:
    """IRE's HashString leaves "" empty (docs/insights-runtime-extractor.md, Hashing)."""
    assert hash_value("") == ""


@pytest.mark.parametrize("query", ["?hash=false", ""])
async def test_empty_values_are_omitted_before_hashing(query: str) -> None:
    """A Node framework whose package.json says ``"version": ""`` and an empty
    kindVersion: IRE omits both (``omitempty``), hashed or not."""
    fp = Fingerprint(
        os="alpine",
        osVersion="",
        kind="Node.js",
        kindVersion="",
        runtimes=[{"name": "Express", "version": ""}, {"name": "", "version": "1"}],
    )
    snap = snapshot([pod_with("web", "app-1", "44444444-4444-4444-4444-444444444444", [("a", fp)])])
    async with client_for(_state(snap)) as client:
        body = await (await client.get("/gather_runtime_info" + query)).json()
    (info,) = body["web"]["app-1"].values()
    expected: dict[str, Any] = {
        "os": "alpine",
        "kind": "Node.js",
        "runtimes": [{"name": "Express"}],
    }
    if not query:
        expected = {
            "os": hash_value("alpine"),
            "kind": hash_value("Node.js"),
            "runtimes": [{"name": hash_value("Express")}],
        }
    assert info == expected
