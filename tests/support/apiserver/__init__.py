"""A faithful fake Kubernetes API server (aiohttp, plain HTTP on 127.0.0.1:0) for tests.

Why a fake and not mocks: the reflector, the auth middleware and the ``collect`` command
talk to the API server through real HTTP clients (the official ``kubernetes`` client,
httpx, aiohttp). Only a server that speaks the real wire protocol -- list metadata,
resourceVersions, chunked watch streams, bookmarks, 410 Gone, Status objects -- can show
that those clients survive what a real cluster does to them.

Stable API (others rely on it; only add to it)::

    async with FakeApiServer(bookmark_interval=0.5) as api:
        api.url                          # "http://127.0.0.1:<port>"
        api.token                        # bearer token every request must carry
        api.write_kubeconfig(path)       # kubeconfig (JSON, valid YAML) -> path
        api.add_pod(make_pod("web-1", "default", node="node-a"))  # -> stored copy
        api.update_pod(pod_dict)         # replace by namespace/name, new resourceVersion
        api.delete_pod("default", "web-1")
        api.resource_version             # current resourceVersion (int)
        api.compact()                    # forget history: older watch RVs get 410 Gone
                                         # (an ERROR event; with expired_as_http_status=True
                                         # an HTTP 410 Status instead, as etcd-direct watches)
        await api.drop_watches()         # cut every open watch connection abruptly
        await api.pause() / await api.resume()  # stop / restart listening (same port)
        api.set_pod_backend("default", "web-1", "http://127.0.0.1:9999")  # pod proxy target
        api.set_pod_portforward("default", "web-1", 8443, "127.0.0.1", 9998)  # tunnel target
        api.add_token("tok", "alice", ["team-a"], audiences=None)  # for TokenReview
        api.allow("alice", "get", path="/metrics")                 # for SubjectAccessReview
        api.allow("group:team-a", "list", resource="pods", namespace="default")
        api.set_configmap("kube-system", "extension-apiserver-authentication", {"k": "v"})
        api.delete_configmap("kube-system", "extension-apiserver-authentication")
        api.add_node(make_node("node-a", unschedulable=False, os="linux"))  # -> stored copy
        api.delete_node("node-a")
        api.add_object(make_workload("Deployment", "web", "shop", {"app": "web"}))  # -> copy
        api.add_object(make_service("web", "shop", {"app": "web"}))  # also StatefulSet,
        api.delete_object("Service", "shop", "web")                  # DaemonSet, Job
        api.forbid("configmaps")         # configmaps or nodes: 403 Status, as RBAC answers
        api.calls["watch"]               # Counter of calls by kind (see below)
        api.proxy_requests               # [(method, ns, name, scheme, port, path, query)]
        api.portforward_requests         # [(ns, name, ports query value)]
        api.pod_requests                 # [(path, {query param: value})] of pod lists/watches
        api.access_reviews               # [spec] of every SubjectAccessReview, in order

Endpoints (all require ``Authorization: Bearer <api.token>``, else 401 Status):

* ``GET /api/v1/pods`` and ``GET /api/v1/namespaces/{ns}/pods``: list with
  ``fieldSelector`` (``spec.nodeName``, ``metadata.name``, ``metadata.namespace``,
  ``status.phase``; ``=``, ``==``, ``!=``), ``labelSelector`` (``k=v``, ``k==v``,
  ``k!=v``, ``k``, ``!k``, ``k in (a,b)``, ``k notin (a,b)``), ``limit``/``continue``.
  With ``watch=true``/``watch=1``: a chunked stream of JSON lines
  ``{"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": ...}`` starting after
  ``resourceVersion`` (absent/"0": synthetic ADDED events for the current state first),
  BOOKMARK events every ``bookmark_interval`` seconds when ``allowWatchBookmarks=true``,
  closed after ``timeoutSeconds``; an ERROR event carrying a ``Status`` with code 410
  when the resourceVersion is older than the compaction horizon. Objects that stop or
  start matching the selectors are sent as DELETED / ADDED, as the real server does.
* ``GET /api/v1/namespaces/{ns}/pods/{name}``: one pod, or a 404 Status.
* ``GET|POST|PUT|DELETE /api/v1/namespaces/{ns}/pods/{[https:]name[:port]}/proxy/{path}``:
  forwarded (method, query, body, content type) to the URL registered with
  ``set_pod_backend``; 503 Status when none is registered.
* ``GET /api/v1/namespaces/{ns}/pods/{name}/portforward?ports=N[,M]``: the WebSocket
  port-forward of kubelet's ``portforward/websocket.go`` (subprotocol
  ``v4.channel.k8s.io``; a client offering none gets the same binary framing). Every
  binary message starts with its channel byte: port i has data channel 2i and error
  channel 2i+1, and each of those first carries the port as 2 bytes little-endian. Then
  bytes are relayed between the data channel and a TCP connection to the target set with
  ``set_pod_portforward``; when that connection cannot be made, the error channel carries
  ``error forwarding port N to pod NAME, uid UID: …``. The WebSocket closes once the pod
  side ends (as kubelet closes it when its forwards end); a closed WebSocket closes the
  pod side. 404 Status for an unknown pod, 400 for a non-WebSocket request or bad ports.
* ``POST /apis/authentication.k8s.io/v1/tokenreviews`` and
  ``POST /apis/authorization.k8s.io/v1/subjectaccessreviews``.
* ``GET /api/v1/namespaces/{ns}/configmaps/{name}``: one ConfigMap (``data`` as stored with
  ``set_configmap``), or a 404 Status.
* ``GET`` one or a list (``labelSelector`` on the objects' own labels) of Services
  (``/api/v1/namespaces/{ns}/services``), Deployments, StatefulSets, DaemonSets
  (``/apis/apps/v1/…``) and Jobs (``/apis/batch/v1/…``), as stored with ``add_object``.
* ``GET /api/v1/nodes``: a NodeList, with ``labelSelector`` (as for pods) and
  ``fieldSelector`` (``metadata.name``, ``spec.unschedulable``, as the real server allows).

``forbid(resource)`` makes requests for ``configmaps`` or ``nodes`` answer 403 with the
Status RBAC gives.

``calls`` keys: ``list``, ``watch``, ``get``, ``objects``, ``proxy``, ``portforward``,
``tokenreviews``, ``subjectaccessreviews``, ``configmaps``, ``nodes``, ``forbidden``,
``unauthorized``.

Mutating methods may be called from the event loop running the server or from any other
thread; watchers are woken on the server's loop.

By concern: ``objects`` builds Pod, Node and Status objects and parses selectors;
``watch`` stores objects and serves list, get and watch; ``workloads`` stores and serves
Services and workload controllers; ``reviews`` answers TokenReviews
and SubjectAccessReviews; ``proxy`` relays the pod proxy and port-forward; ``base`` holds
the shared state and error answers; ``server`` puts them on one application.
"""

from tests.support.apiserver.objects import (
    API_AUDIENCE,
    JSON,
    FakeContainer,
    make_node,
    make_pod,
    parse_field_selector,
    parse_label_selector,
    random_container_id,
    rfc3339,
    status_object,
)
from tests.support.apiserver.server import FakeApiServer
from tests.support.apiserver.workloads import make_service, make_workload

__all__ = [
    "API_AUDIENCE",
    "JSON",
    "FakeApiServer",
    "FakeContainer",
    "make_node",
    "make_pod",
    "make_service",
    "make_workload",
    "parse_field_selector",
    "parse_label_selector",
    "random_container_id",
    "rfc3339",
    "status_object",
]
