"""Stored objects (pods, ConfigMaps, nodes), and their list, get and watch endpoints."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from aiohttp import web

from tests.support.apiserver.base import Shared, _Event, _Watcher
from tests.support.apiserver.objects import (
    _NODE_FIELDS,
    JSON,
    parse_field_selector,
    parse_label_selector,
    rfc3339,
    status_object,
)


class ObjectsAndWatch(Shared):
    """Pods, ConfigMaps and nodes in memory; list, get and watch as the API server serves them."""

    @property
    def resource_version(self) -> int:
        with self._lock:
            return self._rv

    def pod(self, namespace: str, name: str) -> JSON:
        """A copy of the stored pod (KeyError when absent)."""
        with self._lock:
            return copy.deepcopy(self._pods[(namespace, name)])

    def add_pod(self, pod: JSON) -> JSON:
        """Create a pod; uid and creationTimestamp are filled when missing."""
        with self._lock:
            stored = copy.deepcopy(pod)
            meta = stored.setdefault("metadata", {})
            meta.setdefault("namespace", "default")
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", rfc3339(datetime.now(UTC)))
            key = (meta["namespace"], meta["name"])
            if key in self._pods:
                raise ValueError(f'pods "{key[1]}" already exists')
            return self._record("ADDED", key, None, stored)

    def update_pod(self, pod: JSON) -> JSON:
        """Replace a pod by namespace/name; its uid is kept."""
        with self._lock:
            stored = copy.deepcopy(pod)
            meta = stored["metadata"]
            key = (meta.get("namespace", "default"), meta["name"])
            old = self._pods[key]
            meta["uid"] = old["metadata"]["uid"]
            meta["namespace"] = key[0]
            return self._record("MODIFIED", key, old, stored)

    def delete_pod(self, namespace: str, name: str) -> JSON:
        """Delete at once (grace period 0); the DELETED event carries a new RV."""
        with self._lock:
            old = self._pods[(namespace, name)]
            return self._record("DELETED", (namespace, name), old, copy.deepcopy(old))

    def _record(self, kind: str, key: tuple[str, str], old: JSON | None, new: JSON) -> JSON:
        self._rv += 1
        new["metadata"]["resourceVersion"] = str(self._rv)
        if kind == "DELETED":
            del self._pods[key]
        else:
            self._pods[key] = new
        self._log.append(_Event(self._rv, kind, old, new))
        self._wake()
        return copy.deepcopy(new)

    def compact(self) -> None:
        """Forget history: watches from an older resourceVersion now get 410 Gone."""
        with self._lock:
            self._horizon = self._rv

    @property
    def open_watches(self) -> int:
        """Watch connections being served now (one counted in ``calls`` may not be yet)."""
        with self._lock:
            return len(self._watchers)

    async def drop_watches(self) -> None:
        """Cut every open watch connection without a clean end of stream; returns once
        those are closed (watches a client opens again meanwhile stay open)."""
        with self._lock:
            cut = set(self._watchers)
            for watcher in cut:
                watcher.dropped = True
        self._wake()
        deadline = asyncio.get_running_loop().time() + 10
        while asyncio.get_running_loop().time() < deadline:
            with self._lock:
                if not cut & self._watchers:
                    return
            await asyncio.sleep(0.01)

    def _wake(self) -> None:
        loop = self._loop
        if loop is None:
            return
        with self._lock:
            watchers = list(self._watchers)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for watcher in watchers:
            if running is loop:
                watcher.wake.set()
            else:
                loop.call_soon_threadsafe(watcher.wake.set)

    def _stamp(self, obj: JSON, old: JSON | None) -> JSON:
        """Keep the uid and creation time of `old`, give a new resourceVersion (lock held)."""
        self._rv += 1
        meta = obj["metadata"]
        previous = (old or {}).get("metadata", {})
        meta["uid"] = previous.get("uid") or meta.get("uid") or str(uuid.uuid4())
        meta.setdefault("creationTimestamp", rfc3339(datetime.now(UTC)))
        meta["resourceVersion"] = str(self._rv)
        return obj

    def set_configmap(self, namespace: str, name: str, data: dict[str, str]) -> JSON:
        """Create or replace a ConfigMap with this ``data``."""
        with self._lock:
            configmap: JSON = {
                "metadata": {"name": name, "namespace": namespace},
                "data": dict(data),
            }
            key = (namespace, name)
            self._configmaps[key] = self._stamp(configmap, self._configmaps.get(key))
            return copy.deepcopy(configmap)

    def delete_configmap(self, namespace: str, name: str) -> None:
        with self._lock:
            del self._configmaps[(namespace, name)]

    def add_node(self, node: JSON) -> JSON:
        """Create or replace a node (make_node builds one) by name."""
        with self._lock:
            stored = copy.deepcopy(node)
            name = stored["metadata"]["name"]
            self._nodes[name] = self._stamp(stored, self._nodes.get(name))
            return copy.deepcopy(stored)

    def delete_node(self, name: str) -> None:
        with self._lock:
            del self._nodes[name]

    def _matcher(self, request: web.Request) -> Callable[[JSON], bool]:
        namespace = request.match_info.get("ns")
        by_field = parse_field_selector(request.query.get("fieldSelector", ""))
        by_label = parse_label_selector(request.query.get("labelSelector", ""))
        return lambda pod: (
            (namespace is None or pod["metadata"]["namespace"] == namespace)
            and by_field(pod)
            and by_label(pod)
        )

    async def _pods_collection(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return self._unauthorized()
        self.pod_requests.append((request.path, dict(request.query)))
        try:
            matches = self._matcher(request)
        except ValueError as err:
            return self._error(400, "BadRequest", str(err))
        if request.query.get("watch", "").lower() in ("true", "1"):
            return await self._watch(request, matches)
        self.calls["list"] += 1
        return self._list(request, matches)

    def _list(self, request: web.Request, matches: Callable[[JSON], bool]) -> web.Response:
        with self._lock:
            rv = self._rv
            items = [copy.deepcopy(p) for _, p in sorted(self._pods.items()) if matches(p)]
        offset = 0
        token = request.query.get("continue")
        if token:
            try:
                rv_text, offset_text = base64.b64decode(token).decode().split(":")
                rv, offset = int(rv_text), int(offset_text)
            except ValueError:
                return self._error(400, "BadRequest", "invalid continue token")
        metadata: JSON = {"resourceVersion": str(rv)}
        limit = int(request.query.get("limit", "0") or 0)
        if limit > 0:
            if offset + limit < len(items):
                metadata["continue"] = base64.b64encode(f"{rv}:{offset + limit}".encode()).decode()
                metadata["remainingItemCount"] = len(items) - offset - limit
            items = items[offset : offset + limit]
        else:
            items = items[offset:]
        body = {"kind": "PodList", "apiVersion": "v1", "metadata": metadata, "items": items}
        return web.json_response(body)

    async def _watch(
        self, request: web.Request, matches: Callable[[JSON], bool]
    ) -> web.StreamResponse:
        self.calls["watch"] += 1
        timeout_text = request.query.get("timeoutSeconds", "") or "1800"
        if not timeout_text.isdigit():
            return self._error(400, "BadRequest", f"invalid timeoutSeconds: {timeout_text}")
        timeout = float(timeout_text)
        bookmarks = request.query.get("allowWatchBookmarks", "").lower() in ("true", "1")
        start = request.query.get("resourceVersion", "")
        if self.expired_as_http_status and start.isdigit() and int(start) < self._horizon:
            message = f"too old resource version: {start} ({self._horizon})"
            return self._error(410, "Expired", message)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        watcher = _Watcher(asyncio.Event())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        with self._lock:
            self._watchers.add(watcher)
            if start in ("", "0"):
                cursor = self._rv
                pending = [("ADDED", p) for _, p in sorted(self._pods.items()) if matches(p)]
            elif not start.isdigit():
                cursor = self._rv
                invalid = status_object(400, "BadRequest", f"invalid resource version: {start}")
                pending = [("ERROR", invalid)]
            elif int(start) < self._horizon:
                cursor = self._rv
                message = f"too old resource version: {start} ({self._horizon})"
                pending = [("ERROR", status_object(410, "Expired", message))]
            else:
                cursor = int(start)
                pending = []
        try:
            next_bookmark = loop.time() + self.bookmark_interval
            while True:
                for kind, obj in pending:
                    await self._send(response, kind, obj)
                    if kind == "ERROR":
                        return await self._finish(response)
                pending = []
                watcher.wake.clear()
                with self._lock:
                    if watcher.dropped:
                        break
                    for event in self._log:
                        if event.rv > cursor:
                            pending.extend(self._visible(event, matches))
                            cursor = event.rv
                    current_rv = self._rv
                if pending:
                    continue
                now = loop.time()
                if now >= deadline:
                    return await self._finish(response)
                if bookmarks and now >= next_bookmark:
                    bookmark = {
                        "kind": "Pod",
                        "apiVersion": "v1",
                        "metadata": {"resourceVersion": str(current_rv)},
                    }
                    await self._send(response, "BOOKMARK", bookmark)
                    cursor = max(cursor, current_rv)
                    next_bookmark = now + self.bookmark_interval
                    continue
                wait = deadline - now
                if bookmarks:
                    wait = min(wait, next_bookmark - now)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(watcher.wake.wait(), timeout=max(wait, 0.001))
        except ConnectionResetError:
            return response
        finally:
            with self._lock:
                self._watchers.discard(watcher)
        if request.transport is not None:
            request.transport.abort()
        return response

    @staticmethod
    def _visible(event: _Event, matches: Callable[[JSON], bool]) -> list[tuple[str, JSON]]:
        """How one change looks to a selector: moves in/out become ADDED/DELETED."""
        was = event.old is not None and event.type != "ADDED" and matches(event.old)
        now = matches(event.new)
        if event.type == "DELETED":
            return [("DELETED", event.new)] if was else []
        if now and not was:
            return [("ADDED", event.new)]
        if was and not now:
            return [("DELETED", event.new)]
        return [(event.type, event.new)] if now else []

    @staticmethod
    async def _send(response: web.StreamResponse, kind: str, obj: JSON) -> None:
        wire = dict(obj)
        if kind in ("ADDED", "MODIFIED", "DELETED"):
            wire = {"kind": "Pod", "apiVersion": "v1", **obj}
        await response.write(json.dumps({"type": kind, "object": wire}).encode() + b"\n")

    @staticmethod
    async def _finish(response: web.StreamResponse) -> web.StreamResponse:
        await response.write_eof()
        return response

    async def _get_pod(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        self.calls["get"] += 1
        ns, name = request.match_info["ns"], request.match_info["name"]
        with self._lock:
            pod = self._pods.get((ns, name))
            if pod is None:
                return self._error(404, "NotFound", f'pods "{name}" not found')
            return web.json_response({"kind": "Pod", "apiVersion": "v1", **copy.deepcopy(pod)})

    async def _get_configmap(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        self.calls["configmaps"] += 1
        ns, name = request.match_info["ns"], request.match_info["name"]
        if "configmaps" in self._forbidden:
            return self._rbac_denied("get", "configmaps", name, ns)
        with self._lock:
            configmap = self._configmaps.get((ns, name))
            if configmap is None:
                return self._error(404, "NotFound", f'configmaps "{name}" not found')
            body = {"kind": "ConfigMap", "apiVersion": "v1", **copy.deepcopy(configmap)}
        return web.json_response(body)

    async def _nodes_collection(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        self.calls["nodes"] += 1
        if "nodes" in self._forbidden:
            return self._rbac_denied("list", "nodes", "", "")
        try:
            by_field = parse_field_selector(request.query.get("fieldSelector", ""), _NODE_FIELDS)
            by_label = parse_label_selector(request.query.get("labelSelector", ""))
        except ValueError as err:
            return self._error(400, "BadRequest", str(err))
        with self._lock:
            items = [
                copy.deepcopy(n)
                for _, n in sorted(self._nodes.items())
                if by_field(n) and by_label(n)
            ]
            rv = self._rv
        body = {
            "kind": "NodeList",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": str(rv)},
            "items": items,
        }
        return web.json_response(body)
