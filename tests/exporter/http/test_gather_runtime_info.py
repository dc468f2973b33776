"""``/gather_runtime_info`` answers every request shape as insights-runtime-extractor does.

The expectations below are the replaced tool's own behaviour, read in its source
(openshift/insights-runtime-extractor at commit 70256457b507, 2026-03-19; summarised in
docs/insights-runtime-extractor.md). Each test names the file it comes from:

- HANDLER: exporter/cmd/exporter/main.go — ``gatherRuntimeInfo`` (GET/POST, other methods
  404, ``http.Error`` bodies, ``r.URL.Query().Get("hash")``, ``json.NewDecoder(...).Decode``
  into ``GatherRuntimeInfoRequest``, ``strings.Join(ids, ",")`` to the extractor) and
  ``collectWorkloadPayload``;
- TYPES: exporter/pkg/types/types.go — field order and ``omitempty`` of
  ``ContainerRuntimeInfo`` / ``RuntimeComponent``;
- HASH: exporter/pkg/utils/hash.go and hash_test.go — ``HashString`` and its vectors;
- SERVER: extractor/src/bin/extractor_server.rs — ``buffer.trim()`` of what the exporter sent;
- COORDINATOR: extractor/src/bin/coordinator.rs — ``split(',')``, ``trim()``, empty dropped;
- LISTING: extractor/src/insights_runtime_extractor/container.rs — ``get_containers``:
  ``strip_prefix("cri-o://")``, exact comparison with each running container's id, the
  answer keyed ``"cri-o://" + id``;
- E2E: exporter/test/e2e/*_test.go — the ``ContainerRuntimeInfo`` values it expects.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from exporter.http.app import build_app
from exporter.http.insights import (
    BODY_LIMITS,
    MAX_REQUEST_BYTES,
    BadBody,
    Gathered,
    Selection,
    decode_any_depth,
    decode_shallow,
    hash_value,
    parse_container_ids,
)
from exporter.http.limits import limits_middleware
from exporter.node.state import State
from extractor.contract import Container, Fingerprint, RuntimeComponent, Snapshot
from tests.support.exporter_doubles import (
    FakeLookup,
    api_meta_for,
    cid,
    client_for,
    pod_with,
    snapshot,
    standard_snapshot,
)

INVALID = '{"error": "Invalid JSON in request body"}\n'
REQUIRED = '{"error": "containerIds field is required"}\n'
NOT_SUPPORTED = "Method is not supported.\n"

# HASH: hash_test.go's vectors
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


def _apps(snap: Snapshot) -> list[Container]:
    return [c for c in snap.containers if not c.sandbox]


def _keys(body: dict[str, Any]) -> set[str]:
    return {k for pods in body.values() for ctrs in pods.values() for k in ctrs}


async def _post(client: TestClient[web.Request, web.Application], data: Any) -> ClientResponse:
    body = data if isinstance(data, bytes) else json.dumps(data)
    return await client.post("/gather_runtime_info?hash=false", data=body)


# --- HASH ---------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), sorted(VECTORS.items()))
def test_hash_vectors(value: str, expected: str) -> None:
    assert hash_value(value) == expected


def test_empty_string_is_not_hashed() -> None:
    """HASH: ``if !hash || s == "" { return s }``."""
    assert hash_value("") == ""


# --- HANDLER + TYPES: the answer, byte for byte --------------------------------------

E2E = {
    # E2E quarkus_test.go TestQuarkus_3_13_0
    "quarkus": Fingerprint(
        os="rhel", osVersion="8.10", kind="Java", kindVersion="17.0.12",
        kindImplementer="Red Hat, Inc.",
        runtimes=[RuntimeComponent(name="Quarkus", version="3.13.0")],
    ),
    # E2E quarkus_test.go TestNativeQuarkus_3_13_0: `Quarkus=` read with no version
    "native": Fingerprint(
        os="rhel", osVersion="8.9", kind="GraalVM",
        runtimes=[RuntimeComponent(name="Quarkus")],
    ),
    # E2E python_test.go (Python 2: the tool reads no version from stdout)
    "python2": Fingerprint(os="debian", osVersion="10", kind="Python"),
    # E2E os_test.go (ubi-minimal 9.6): an OS and nothing else
    "ubi": Fingerprint(os="rhel", osVersion="9.6"),
}  # fmt: skip
E2E_GO_JSON = {
    "quarkus": '{"os":"rhel","osVersion":"8.10","kind":"Java","kindVersion":"17.0.12",'
    '"kindImplementer":"Red Hat, Inc.","runtimes":[{"name":"Quarkus","version":"3.13.0"}]}',
    "native": '{"os":"rhel","osVersion":"8.9","kind":"GraalVM","runtimes":[{"name":"Quarkus"}]}',
    "python2": '{"os":"debian","osVersion":"10","kind":"Python"}',
    "ubi": '{"os":"rhel","osVersion":"9.6"}',
}
"""What json.Marshal writes for E2E's structs: TYPES' field order, omitempty."""


def _e2e_snapshot() -> Snapshot:
    uid = "44444444-4444-4444-4444-444444444444"
    return snapshot(
        [
            pod_with("e2e", "apps-1", uid, list(E2E.items()), runtime="crio"),
            pod_with("e2e", "bare-1", uid.replace("4", "5"), [("none", None)], runtime="crio"),
        ]
    )


async def test_get_is_byte_identical_to_go_json_marshal() -> None:
    """HANDLER: namespace → pod → ``cri-o://<id>`` maps, keys sorted (Go sorts map keys),
    TYPES order inside; a container with nothing found is ``{}``; Content-Type exactly
    ``application/json``."""
    snap = _e2e_snapshot()
    ids = {c.name: c.id for c in _apps(snap)}
    pods = {
        "apps-1": {f"cri-o://{ids[name]}": E2E_GO_JSON[name] for name in E2E},
        "bare-1": {f"cri-o://{ids['none']}": "{}"},
    }
    expected = (
        '{"e2e":{'
        + ",".join(
            f'"{pod}":{{' + ",".join(f'"{k}":{v}' for k, v in sorted(containers.items())) + "}"
            for pod, containers in sorted(pods.items())
        )
        + "}}"
    )
    async with client_for(_state(snap)) as client:
        resp = await client.get("/gather_runtime_info?hash=false")
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/json"
        assert await resp.text() == expected


async def test_hashed_answer_hashes_every_leaf_and_keeps_keys() -> None:
    """HANDLER: ``HashString(hash, h, value)`` on every field of every file, ids and
    names clear."""
    snap = _e2e_snapshot()
    apps = {c.name: c for c in _apps(snap)}
    async with client_for(_state(snap)) as client:
        body = await (await client.get("/gather_runtime_info")).json()
    for name in E2E:
        clear = json.loads(E2E_GO_JSON[name])
        got = body["e2e"]["apps-1"][f"cri-o://{apps[name].id}"]
        assert list(got) == list(clear)
        for field, value in clear.items():
            if field == "runtimes":
                assert got[field] == [{k: hash_value(v) for k, v in r.items()} for r in value]
            else:
                assert got[field] == hash_value(value)


async def test_empty_values_are_omitted_before_and_after_hashing() -> None:
    """TYPES: ``omitempty`` on every field; HASH keeps "" empty, so it stays omitted. A
    runtime without a name is none at all (the tool only ever writes ``Name=Version``
    lines, so it never has one; ``Fingerprint.compatible`` drops it)."""
    fp = Fingerprint(
        os="alpine", osVersion="", kind="Node.js", kindVersion="",
        runtimes=[RuntimeComponent(name="Express", version=""), RuntimeComponent(name="")],
    )  # fmt: skip
    snap = snapshot([pod_with("ns", "p", "66666666-6666-6666-6666-666666666666", [("c", fp)])])
    key = f"containerd://{_apps(snap)[0].id}"
    async with client_for(_state(snap)) as client:
        clear = await (await client.get("/gather_runtime_info?hash=false")).json()
        hashed = await (await client.get("/gather_runtime_info")).json()
    assert clear["ns"]["p"][key] == {
        "os": "alpine",
        "kind": "Node.js",
        "runtimes": [{"name": "Express"}],
    }
    assert hashed["ns"]["p"][key] == {
        "os": hash_value("alpine"),
        "kind": hash_value("Node.js"),
        "runtimes": [{"name": hash_value("Express")}],
    }


async def test_html_characters_escaped_like_go_encoding_json() -> None:
    fp = Fingerprint(os="a<b>&c\u2028", osVersion="1")
    snap = snapshot([pod_with("ns", "p", "33333333-3333-3333-3333-333333333333", [("c", fp)])])
    async with client_for(_state(snap)) as client:
        raw = await (await client.get("/gather_runtime_info?hash=false")).read()
    assert b'"a\\u003cb\\u003e\\u0026c\\u2028"' in raw


async def test_only_kubernetes_containers_are_listed_never_sandboxes() -> None:
    """LISTING: ``crictl ps`` lists the running containers of pods — no sandbox, nothing
    started outside Kubernetes."""
    snap = standard_snapshot()
    outsider = Container(id=cid("docker-run"), runtime="docker", name="adhoc")
    snap = snap.model_copy(update={"containers": [*snap.containers, outsider]})
    async with client_for(_state(snap)) as client:
        body = await (await client.get("/gather_runtime_info?hash=false")).json()
    assert _keys(body) == {
        f"{'cri-o' if c.runtime == 'crio' else c.runtime}://{c.id}" for c in _apps(snap)[:-1]
    }


async def test_names_come_from_the_api_when_it_knows_the_pod() -> None:
    snap = standard_snapshot()
    metas = api_meta_for(snap)
    async with client_for(_state(snap), FakeLookup(metas)) as client:
        body = await (await client.get("/gather_runtime_info?hash=false")).json()
    assert set(body) == {m.namespace for m in metas}
    assert {pod for pods in body.values() for pod in pods} == {m.name for m in metas}


# --- HANDLER: the query ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "hashed"),
    [
        ("", True),
        ("?hash=true", True),
        ("?hash=", True),
        ("?hash", True),
        ("?hash=false", False),
        ("?hash=TRUE", False),
        ("?hash=1", False),
        ("?hash=%66alse", False),  # QueryUnescape
        ("?hash=+true", False),  # "+" is a space: " true"
        ("?hash=false&hash=true", False),  # Get: the first value
        ("?hash=true&hash=false", True),
        ("?hash=false;x=1", True),  # Go ≥ 1.17 skips a pair holding ";"
        ("?hash=%zz&hash=false", False),  # a bad escape skips its pair only
        ("?HASH=false", True),  # keys are case-sensitive
    ],
)
async def test_hash_query_read_as_go_reads_it(query: str, hashed: bool) -> None:
    """HANDLER: ``hash := hashParam == "" || hashParam == "true"`` with
    ``r.URL.Query().Get("hash")``."""
    snap = standard_snapshot()
    async with client_for(_state(snap)) as client:
        body = await (await client.get("/gather_runtime_info" + query)).json()
    main = next(c for c in _apps(snap) if c.name == "main")
    os_value = body["shop"]["web-1"][f"containerd://{main.id}"]["os"]
    assert os_value == (hash_value("rhel") if hashed else "rhel")


# --- SERVER + COORDINATOR + LISTING: which containers a POST names --------------------


def _ids_cases() -> list[tuple[str, list[str], set[str] | None]]:
    """(case, ids in the body, names answered; None = every container)."""
    crio, ctrd = "{crio}", "{ctrd}"
    return [
        ("prefixed", [f"cri-o://{crio}"], {"coredns"}),
        ("bare", [crio], {"coredns"}),
        ("bare containerd id", [ctrd], {"main"}),
        ("containerd prefix on a containerd container", [f"containerd://{ctrd}"], {"main"}),
        ("containerd prefix on a CRI-O container", [f"containerd://{crio}"], set()),
        ("cri-o prefix is stripped whatever the runtime", [f"cri-o://{ctrd}"], {"main"}),
        ("other prefixes are kept", [f"docker://{ctrd}"], set()),
        ("prefix stripped once", [f"cri-o://cri-o://{crio}"], set()),
        ("prefix is case-sensitive", [f"CRI-O://{crio}"], set()),
        ("trimmed", [f" \t{crio}\n"], {"coredns"}),
        ("Unicode White_Space trimmed", [f"\u3000{crio}\u00a0"], {"coredns"}),
        ("U+001C is not White_Space", [f"\x1c{crio}"], set()),
        ("trimmed before the prefix is stripped", [f"cri-o:// {crio}"], set()),
        ("commas inside one id split it", [f"{crio},{ctrd}"], {"coredns", "main"}),
        ("empty pieces dropped", [f",{crio}, ,", ""], {"coredns"}),
        ("full ids only", ["{short}"], set()),
        ("no upper-case hex", ["{CRIO}"], set()),
        ("duplicates once", [crio, f"cri-o://{crio}"], {"coredns"}),
        ("a bare prefix matches nothing", ["cri-o://"], set()),
        ("nothing left means every container", ["", " ", ",", "\t,\n"], None),
        ("unknown ids skipped", [crio, "cri-o://" + "0" * 64, "nope"], {"coredns"}),
    ]


@pytest.mark.parametrize(("case", "ids", "names"), _ids_cases(), ids=[c[0] for c in _ids_cases()])
async def test_posted_ids_match_as_the_extractor_matches(
    case: str, ids: list[str], names: set[str] | None
) -> None:
    snap = standard_snapshot()
    apps = _apps(snap)
    crio = next(c for c in apps if c.runtime == "crio")
    ctrd = next(c for c in apps if c.name == "main")
    values = {"crio": crio.id, "ctrd": ctrd.id, "CRIO": crio.id.upper(), "short": crio.id[:12]}
    request = [i.format(**values) for i in ids]
    async with client_for(_state(snap)) as client:
        resp = await _post(client, {"containerIds": request})
        assert resp.status == 200, case
        body = await resp.json()
    wanted = apps if names is None else [c for c in apps if c.name in names]
    prefix = {"crio": "cri-o", "containerd": "containerd"}
    assert _keys(body) == {f"{prefix[c.runtime]}://{c.id}" for c in wanted}, case


def test_selection_of_the_operator_request() -> None:
    """What the Insights Operator sends: every ``status.containerID`` of the node."""
    ids = [f"cri-o://{cid(str(n))}" for n in range(3)]
    assert Selection.of(ids).ids == frozenset(cid(str(n)) for n in range(3))
    assert Selection.of([]).everything and Selection.of([" , "]).everything


# --- HANDLER: the POST body as encoding/json decodes it ------------------------------


def _body_cases() -> list[tuple[str, bytes, str | set[str] | None]]:
    """(case, body, answer): an error text, the names answered, or None for all."""
    deep_ok = b"[" * 5000 + b"]" * 5000
    too_deep = b"[" * 10001 + b"]" * 10001
    return [
        ("empty", b"", INVALID),
        ("blank", b" \r\n\t", INVALID),
        ("truncated", b'{"containerIds": [', INVALID),
        ("unterminated nesting", b"[" * 200_000, INVALID),
        ("array", b"[]", INVALID),
        ("string", b'"ids"', INVALID),
        ("number", b"12", INVALID),
        ("true", b"true", INVALID),
        ("byte order mark", b'\xef\xbb\xbf{"containerIds": []}', INVALID),
        ("ids a string", b'{"containerIds": "abc"}', INVALID),
        ("ids an object", b'{"containerIds": {}}', INVALID),
        ("ids numbers", b'{"containerIds": [1, 2]}', INVALID),
        ("ids nested", b'{"containerIds": [["x"]]}', INVALID),
        ("NaN elsewhere", b'{"containerIds": [], "x": NaN}', INVALID),
        ("trailing comma", b'{"containerIds": [],}', INVALID),
        ("deeper than 10000 elsewhere", b'{"containerIds": [], "x": ' + too_deep + b"}", INVALID),
        ("type error after a good key", b'{"containerIds": [], "containerIds": 5}', INVALID),
        ("null", b"null", REQUIRED),
        ("null then garbage", b"nullx", REQUIRED),
        ("no field", b"{}", REQUIRED),
        ("other field", b'{"other": ["x"]}', REQUIRED),
        ("ids null", b'{"containerIds": null}', REQUIRED),
        ("last key wins: null", b'{"containerIds": ["{crio}"], "ContainerIDs": null}', REQUIRED),
        ("last key wins: ids", b'{"containerIds": null, "CONTAINERIDS": ["{crio}"]}', {"coredns"}),
        ("case-folded key", b'{"containerids": ["{crio}"]}', {"coredns"}),
        ("long s folds to s", '{"containerId\u017f": ["{crio}"]}'.encode(), {"coredns"}),
        ("other keys of any type", b'{"a": {"b": [1, true]}, "containerIds": ["{crio}"]}',
         {"coredns"}),
        ("5000 levels elsewhere are fine", b'{"containerIds": ["{crio}"], "x": ' + deep_ok + b"}",
         {"coredns"}),
        ("null element is an empty id", b'{"containerIds": [null, "{crio}"]}', {"coredns"}),
        ("only null elements", b'{"containerIds": [null]}', None),
        ("empty list", b'{"containerIds": []}', None),
        ("first value only", b'{"containerIds": ["{crio}"]} {"containerIds": []}', {"coredns"}),
        ("garbage after the value", b'  {"containerIds": ["{crio}"]}garbage', {"coredns"}),
        ("escapes", b'{"containerIds": ["\\u0063ri-o://{crio}"]}', {"coredns"}),
        ("invalid UTF-8 in a string", b'{"containerIds": ["\xff{crio}"]}', set()),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "body", "answer"), _body_cases(), ids=[c[0] for c in _body_cases()]
)
async def test_post_bodies_decoded_as_go_decodes_them(
    case: str, body: bytes, answer: str | set[str] | None
) -> None:
    snap = standard_snapshot()
    apps = _apps(snap)
    crio = next(c for c in apps if c.runtime == "crio")
    async with client_for(_state(snap)) as client:
        resp = await _post(client, body.replace(b"{crio}", crio.id.encode()))
        if isinstance(answer, str):
            assert resp.status == 400, case
            assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
            assert await resp.text() == answer, case
            return
        assert resp.status == 200, case
        got = _keys(await resp.json())
    wanted = apps if answer is None else [c for c in apps if c.name in answer]
    prefix = {"crio": "cri-o", "containerd": "containerd"}
    assert got == {f"{prefix[c.runtime]}://{c.id}" for c in wanted}, case


@pytest.mark.parametrize(
    ("case", "body", "answer"), _body_cases(), ids=[c[0] for c in _body_cases()]
)
def test_both_decoders_agree(case: str, body: bytes, answer: object) -> None:
    """Python's decoder (fast, recursive) and the iterative scanner (any depth) read every
    body alike; the first hands over to the second when the nesting is too deep for it."""

    def outcome(decode: Callable[[str], list[str]]) -> object:
        try:
            return decode(body.decode("utf-8", "replace"))
        except BadBody as e:
            return str(e)

    try:
        fast = outcome(decode_shallow)
    except RecursionError:
        assert b"[" * 900 in body, case
        return
    assert fast == outcome(decode_any_depth), case


def test_decoder_returns_ids_as_sent() -> None:
    assert parse_container_ids(b'{"containerIds": ["a", null, " b "]}') == ["a", "", " b "]


# --- HANDLER: methods and failures ----------------------------------------------------


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "PROPFIND"])
async def test_other_methods_are_404_method_not_supported(method: str) -> None:
    """HANDLER: ``default: http.Error(w, "Method is not supported.", http.StatusNotFound)``."""
    async with client_for(_state()) as client:
        resp = await client.request(method, "/gather_runtime_info")
        assert resp.status == 404
        assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert await resp.text() == ("" if method == "HEAD" else NOT_SUPPORTED)


async def test_get_ignores_a_body() -> None:
    async with client_for(_state()) as client:
        resp = await client.get("/gather_runtime_info?hash=false", data=b"not json")
        assert resp.status == 200
        assert len(_keys(await resp.json())) == 3


async def test_no_snapshot_is_500_text() -> None:
    """HANDLER: a failed extraction is ``http.Error(w, err.Error(), 500)``."""
    state = State()
    state.last_error = "extractor socket /x: cannot connect"
    async with client_for(state) as client:
        resp = await client.get("/gather_runtime_info")
        assert resp.status == 500
        assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert "cannot connect" in await resp.text()


# --- the route's own body bound -------------------------------------------------------


async def _limited_client(
    state: State,
) -> TestClient[web.Request, web.Application]:
    """The app with the request limits as exporter/wiring.py installs them."""
    limits = limits_middleware(64 * 1024, 30.0, route_max_bytes=BODY_LIMITS)
    app = build_app(state, None, stale_after_seconds=60, middlewares=[limits])
    return TestClient(TestServer(app))


def _many_ids(count: int) -> list[str]:
    return [f"cri-o://{cid(str(n))}" for n in range(count)]


@pytest.mark.parametrize("count", [10_000, 50_000])
async def test_a_node_of_tens_of_thousands_of_ids_is_answered(count: int) -> None:
    snap = standard_snapshot()
    crio = next(c for c in _apps(snap) if c.runtime == "crio")
    ids = [*_many_ids(count - 1), f"cri-o://{crio.id}"]
    async with await _limited_client(_state(snap)) as client:
        resp = await _post(client, {"containerIds": ids})
        assert resp.status == 200
        assert _keys(await resp.json()) == {f"cri-o://{crio.id}"}


async def test_beyond_the_route_bound_is_413_and_other_routes_keep_theirs() -> None:
    async with await _limited_client(_state()) as client:
        body = json.dumps({"containerIds": _many_ids(MAX_REQUEST_BYTES // 70)}).encode()
        assert len(body) > MAX_REQUEST_BYTES
        resp = await client.post("/gather_runtime_info", data=body)
        assert resp.status == 413
        assert (await resp.json())["error"] == f"request body larger than {MAX_REQUEST_BYTES} bytes"
        resp = await client.post("/v1/containers", data=b"x" * (65 * 1024))
        assert resp.status == 413


# --- the hook for a fresh pass --------------------------------------------------------


async def test_a_gather_function_supplies_the_answer() -> None:
    """build_app's ``insights_gather``: asked with the request's Selection, its answer is
    served (a fresh pass for the asked containers plugs in here)."""
    asked: list[Selection] = []
    fp = Fingerprint(os="debian", kind="Python", kindVersion="Python 3.13.2")

    async def gather(selection: Selection) -> Sequence[Gathered]:
        asked.append(selection)
        return [Gathered("ns", "p", "cri-o://" + "a" * 64, fp)]

    app = build_app(_state(), None, stale_after_seconds=60, insights_gather=gather)
    async with TestClient(TestServer(app)) as client:
        resp = await _post(client, {"containerIds": ["cri-o://" + "a" * 64, " b "]})
        assert await resp.text() == (
            '{"ns":{"p":{"cri-o://' + "a" * 64 + '":'
            '{"os":"debian","kind":"Python","kindVersion":"Python 3.13.2"}}}}'
        )
    assert asked == [Selection(frozenset({"a" * 64, "b"}))]
