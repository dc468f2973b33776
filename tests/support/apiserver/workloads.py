"""Services and workloads (Deployments, StatefulSets, DaemonSets, Jobs): store, get, list.

What the custom metrics API's Object metrics read: one object, or a namespace's objects
filtered by their own labels, with the selector of their pods in ``spec.selector``.
"""

from __future__ import annotations

import copy
import uuid

from aiohttp import web

from tests.support.apiserver.base import Shared
from tests.support.apiserver.objects import JSON, parse_label_selector

OBJECT_KINDS = {
    "Service": ("v1", "services"),
    "Deployment": ("apps/v1", "deployments"),
    "StatefulSet": ("apps/v1", "statefulsets"),
    "DaemonSet": ("apps/v1", "daemonsets"),
    "Job": ("batch/v1", "jobs"),
}
"""The kinds ``add_object`` stores: apiVersion and resource (plural) of each."""
API_PREFIXES = ("/api/v1", "/apis/apps/v1", "/apis/batch/v1")


def make_service(name: str, namespace: str, selector: dict[str, str] | None) -> JSON:
    """A ClusterIP Service; ``selector`` None makes one without a selector."""
    spec: JSON = {"type": "ClusterIP", "ports": [{"port": 80, "targetPort": 8080}]}
    if selector is not None:
        spec["selector"] = dict(selector)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": {}},
        "spec": spec,
    }


def make_workload(
    kind: str,
    name: str,
    namespace: str,
    match_labels: dict[str, str] | None = None,
    match_expressions: list[JSON] | None = None,
    labels: dict[str, str] | None = None,
) -> JSON:
    """A Deployment, StatefulSet, DaemonSet or Job with this spec.selector."""
    selector: JSON = {}
    if match_labels:
        selector["matchLabels"] = dict(match_labels)
    if match_expressions:
        selector["matchExpressions"] = list(match_expressions)
    template = {"metadata": {"labels": dict(match_labels or {})}}
    return {
        "apiVersion": OBJECT_KINDS[kind][0],
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {})},
        "spec": {"selector": selector, "template": template},
    }


def _prefix(api_version: str) -> str:
    return "/api/v1/" if api_version == "v1" else f"/apis/{api_version}/"


class Workloads(Shared):
    """Services and workload controllers, by (resource, namespace, name)."""

    def add_object(self, obj: JSON) -> JSON:
        """Store a Service, Deployment, StatefulSet, DaemonSet or Job (by its kind)."""
        with self._lock:
            stored = copy.deepcopy(obj)
            meta = stored["metadata"]
            meta.setdefault("namespace", "default")
            meta.setdefault("uid", str(uuid.uuid4()))
            self._rv += 1
            meta["resourceVersion"] = str(self._rv)
            _, resource = OBJECT_KINDS[stored["kind"]]
            self._objects[(resource, meta["namespace"], meta["name"])] = stored
            return copy.deepcopy(stored)

    def delete_object(self, kind: str, namespace: str, name: str) -> None:
        with self._lock:
            del self._objects[(OBJECT_KINDS[kind][1], namespace, name)]

    def _object_route(self, request: web.Request) -> tuple[str, str] | web.Response:
        """(resource, namespace) when this prefix serves that resource, else a 404."""
        resource, ns = request.match_info["resource"], request.match_info["ns"]
        served = {r for v, r in OBJECT_KINDS.values() if request.path.startswith(_prefix(v))}
        if resource not in served:
            return self._error(404, "NotFound", "the server could not find the requested resource")
        return resource, ns

    async def _objects_collection(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        self.calls["objects"] += 1
        route = self._object_route(request)
        if isinstance(route, web.Response):
            return route
        resource, ns = route
        try:
            by_label = parse_label_selector(request.query.get("labelSelector", ""))
        except ValueError as err:
            return self._error(400, "BadRequest", str(err))
        with self._lock:
            items = [
                copy.deepcopy(o)
                for (r, n, _), o in sorted(self._objects.items())
                if r == resource and n == ns and by_label(o)
            ]
            rv = self._rv
        kind = next(k for k, (_, r) in OBJECT_KINDS.items() if r == resource)
        body = {
            "kind": f"{kind}List",
            "apiVersion": OBJECT_KINDS[kind][0],
            "metadata": {"resourceVersion": str(rv)},
            "items": items,
        }
        return web.json_response(body)

    async def _get_object(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        self.calls["objects"] += 1
        route = self._object_route(request)
        if isinstance(route, web.Response):
            return route
        resource, ns = route
        name = request.match_info["name"]
        with self._lock:
            obj = self._objects.get((resource, ns, name))
            if obj is None:
                return self._error(404, "NotFound", f'{resource} "{name}" not found')
            return web.json_response(copy.deepcopy(obj))

    def add_workload_routes(self, app: web.Application) -> None:
        for prefix in API_PREFIXES:
            app.router.add_get(prefix + "/namespaces/{ns}/{resource}", self._objects_collection)
            app.router.add_get(prefix + "/namespaces/{ns}/{resource}/{name}", self._get_object)
