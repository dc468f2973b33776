"""``/gather_runtime_info``, answering exactly as insights-runtime-extractor's exporter.

Its consumers (the Insights Operator, scripts/extract.sh) compare structures exactly, so
every request shape gets the answer the replaced tool gives (docs/insights-runtime-
extractor.md): the nested namespace → pod → ``<runtime>://<id>`` map of Go structs
(fields in struct order, ``omitempty``), ``?hash=`` as Go reads the query, the POST body
``{"containerIds": [...]}`` decoded as encoding/json decodes it, the ids matched as its
extractor matches them, and its errors as Go's ``http.Error`` writes them.

Where the fingerprints come from is one function, ``Gather``: by default the latest
snapshot; a caller that can run a fresh pass for the asked containers passes its own to
``add_routes`` (and ``build_app``'s ``insights_gather``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from exporter.http import go_compat
from exporter.node.views import ContainerView, Views, prefixed_id
from extractor.contract import Container, Fingerprint

PATH = "/gather_runtime_info"
MAX_REQUEST_BYTES = 4 * 1024 * 1024
"""This route's body bound, above the exporter's general one. The Insights Operator posts
every running container of a node in one request; a ``cri-o://`` id takes 75 bytes in
its JSON, so 4 MiB holds 55,000 of them: a node at OpenShift's 500-pod maximum with 20
containers per pod needs 10,000 (750 KB). The replaced tool reads bodies unbounded."""
BODY_LIMITS: Mapping[str, int] = {PATH: MAX_REQUEST_BYTES}
"""Per-route body bounds for exporter/http/limits.py."""

INVALID_JSON = '{"error": "Invalid JSON in request body"}'
IDS_REQUIRED = '{"error": "containerIds field is required"}'
NOT_SUPPORTED = "Method is not supported."
FIELD = "containerIds"
CRIO_PREFIX = "cri-o://"
CONTAINERD_PREFIX = "containerd://"
INFO_FIELDS = ("os", "osVersion", "kind", "kindVersion", "kindImplementer")
"""ContainerRuntimeInfo's string fields in struct order, then ``runtimes``."""
RUST_WHITESPACE = frozenset(
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
"""Unicode White_Space, what Rust's ``str::trim`` removes (Python's ``strip`` removes
more: U+001C–U+001F)."""


def hash_value(value: str) -> str:
    """base64url(sha256(value)) without padding, first 12 characters (its HashString);
    the empty string stays empty."""
    if not value:
        return value
    digest = hashlib.sha256(_utf8(value)).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")[:12]


def _utf8(value: str) -> bytes:
    """The bytes the value was read from (undecodable ones kept as surrogate escapes)."""
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass")


class BadBody(Exception):
    """The POST body is rejected; the message is the exact error body to send."""


def parse_container_ids(body: bytes) -> list[str]:
    """``json.NewDecoder(r.Body).Decode(&GatherRuntimeInfoRequest{})`` then the nil check.

    Go reads the first JSON value only, matches ``containerIds`` under Unicode case
    folding (the last matching key wins), takes ``null`` as nil, a ``null`` element as
    "", and fails on any type mismatch after reading the whole value. Python's own
    decoder reads it when the nesting is shallow enough for its recursion; deeper
    bodies go through the iterative scanner, which bounds nesting as Go does.
    """
    text = body.decode("utf-8", "replace")
    try:
        return decode_shallow(text)
    except RecursionError:
        return decode_any_depth(text)


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as its (key, value) pairs in order (an array stays a plain list)."""


def _no_constants(name: str) -> None:
    """Go's decoder knows no NaN or Infinity."""
    raise ValueError(name)


_DECODER = json.JSONDecoder(object_pairs_hook=_Pairs, parse_constant=_no_constants)


def decode_shallow(text: str) -> list[str]:
    try:
        value, _ = _DECODER.raw_decode(text, go_compat.skip_space(text, 0))
    except ValueError:
        raise BadBody(INVALID_JSON) from None
    if value is None:
        raise BadBody(IDS_REQUIRED)
    if not isinstance(value, _Pairs):
        raise BadBody(INVALID_JSON)
    ids: list[str] | None = None
    mismatch = False
    for key, item in value:
        if not go_compat.fold_equal(key, FIELD):
            continue
        if item is None:
            ids = None
        elif isinstance(item, list) and not isinstance(item, _Pairs):
            mismatch |= not all(isinstance(i, str | None) for i in item)
            ids = [
                go_compat.no_surrogates(i) if i else "" for i in item if isinstance(i, str | None)
            ]
        else:
            mismatch = True
    return _checked(ids, mismatch)


def _checked(ids: list[str] | None, mismatch: bool) -> list[str]:
    if mismatch:
        raise BadBody(INVALID_JSON)
    if ids is None:
        raise BadBody(IDS_REQUIRED)
    return ids


def decode_any_depth(text: str) -> list[str]:
    """The same decoding without recursion, for bodies nested beyond Python's stack."""
    start = go_compat.skip_space(text, 0)
    try:
        _, members = go_compat.scan(text, start)
    except go_compat.GoSyntaxError:
        raise BadBody(INVALID_JSON) from None
    first = text[start]
    if first == "n":
        raise BadBody(IDS_REQUIRED)
    if first != "{":
        raise BadBody(INVALID_JSON)
    ids: list[str] | None = None
    mismatch = False
    for member in members:
        if member.key is None or not go_compat.fold_equal(member.key, FIELD):
            continue
        kind = text[member.start]
        if kind == "n":
            ids = None
        elif kind == "[":
            _, elements = go_compat.scan(text, member.start)
            ids = []
            for element in elements:
                if text[element.start] == '"':
                    ids.append(go_compat.decode_string(text, element.start))
                elif text[element.start] == "n":
                    ids.append("")
                else:
                    mismatch = True
        else:
            mismatch = True
    return _checked(ids, mismatch)


def _rust_trim(text: str) -> str:
    start, end = 0, len(text)
    while start < end and text[start] in RUST_WHITESPACE:
        start += 1
    while end > start and text[end - 1] in RUST_WHITESPACE:
        end -= 1
    return text[start:end]


@dataclass(frozen=True)
class Selection:
    """Which containers a request asks for, as the replaced tool's extractor reads them.

    Its exporter joins the ids with commas; its server trims the whole; its coordinator
    splits on commas, trims each and drops empty ones; its container listing strips one
    leading ``cri-o://`` and compares the rest with each running container's full id.
    No id left means every container. Beyond it: an id with one leading
    ``containerd://`` names that containerd container.
    """

    ids: frozenset[str]

    @classmethod
    def of(cls, requested: Sequence[str]) -> Selection:
        parts = (_rust_trim(p) for p in _rust_trim(",".join(requested)).split(","))
        return cls(frozenset(p.removeprefix(CRIO_PREFIX) for p in parts if p))

    @property
    def everything(self) -> bool:
        return not self.ids

    def wants(self, container: Container) -> bool:
        if not self.ids or container.id in self.ids:
            return True
        return container.runtime == "containerd" and CONTAINERD_PREFIX + container.id in self.ids


@dataclass(frozen=True)
class Gathered:
    """One answered container: where it runs, the key it is listed under, what it is."""

    namespace: str
    pod: str
    container_id: str
    fingerprint: Fingerprint | None


class NoAnswer(Exception):
    """Nothing can be said about the node; the message becomes the 500 answer."""


Gather = Callable[[Selection], Awaitable[Sequence[Gathered]]]
"""The fingerprints of the selected containers; raises NoAnswer."""


def is_pod_container(cv: ContainerView) -> bool:
    """What the replaced tool lists: Kubernetes containers (its ``crictl ps`` knows no
    others), never a pod's sandbox."""
    c = cv.container
    return not c.sandbox and (cv.meta is not None or bool(c.namespace and c.pod_name))


def gather_from_views(views: Views) -> Gather:
    """The default Gather: the latest snapshot joined with the pod cache."""

    async def gather(selection: Selection) -> Sequence[Gathered]:
        view = views.current()
        if view is None:
            reason = views.state.last_error or "the extractor has not answered yet"
            raise NoAnswer(f"no snapshot from the extractor: {reason}")
        return [
            Gathered(cv.namespace, cv.pod, prefixed_id(cv.container), cv.container.fingerprint)
            for cv in view.containers
            if is_pod_container(cv) and selection.wants(cv.container)
        ]

    return gather


def container_info(fingerprint: Fingerprint | None, hashed: bool) -> dict[str, Any]:
    """ContainerRuntimeInfo as json.Marshal writes it: struct order, every leaf hashed
    when asked, empty values omitted (an empty runtime component stays as ``{}``)."""
    seal = hash_value if hashed else str
    info: dict[str, Any] = {}
    fields = fingerprint.compatible() if fingerprint is not None else {}
    for name in INFO_FIELDS:
        value = fields.get(name)
        if isinstance(value, str) and value:
            info[name] = seal(value)
    runtimes = []
    listed = fields.get("runtimes")
    for item in listed if isinstance(listed, list) else ():
        component = {}
        for name in ("name", "version"):
            value = item.get(name) if isinstance(item, dict) else None
            if isinstance(value, str) and value:
                component[name] = seal(value)
        runtimes.append(component)
    if runtimes:
        info["runtimes"] = runtimes
    return info


def runtime_info(gathered: Sequence[Gathered], hashed: bool) -> dict[str, Any]:
    """NodeRuntimeInfo: namespace → pod → container id, keys sorted as Go sorts maps."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for g in gathered:
        pods = out.setdefault(g.namespace, {})
        pods.setdefault(g.pod, {})[g.container_id] = container_info(g.fingerprint, hashed)
    return {
        ns: {pod: dict(sorted(ctrs.items())) for pod, ctrs in sorted(pods.items())}
        for ns, pods in sorted(out.items())
    }


def add_routes(app: web.Application, views: Views, gather: Gather | None = None) -> None:
    source = gather or gather_from_views(views)

    async def handler(request: web.Request) -> web.Response:
        if request.method == "GET":
            ids: list[str] = []
        elif request.method == "POST":
            try:
                ids = parse_container_ids(await request.read())
            except BadBody as e:
                return go_compat.http_error(str(e), 400)
        else:
            return go_compat.http_error(NOT_SUPPORTED, 404)
        flag = go_compat.query_get(request.rel_url.raw_query_string, "hash")
        try:
            gathered = await source(Selection.of(ids))
        except NoAnswer as e:
            return go_compat.http_error(str(e), 500)
        hashed = flag in ("", "true")
        # off the event loop: a node's every container hashed and marshalled is tens of
        # milliseconds that /healthz and the other routes must not wait behind
        body = await asyncio.to_thread(lambda: go_compat.marshal(runtime_info(gathered, hashed)))
        return web.Response(body=body, headers={"Content-Type": "application/json"})

    app.router.add_route("*", PATH, handler)
