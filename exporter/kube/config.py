"""The official client's ApiClient for the pod reflector, wherever the exporter runs.

In a pod the service account (token + CA, re-read by the client as it rotates) is the
only sane choice; on a laptop or in tests a kubeconfig is. Choosing here keeps that
decision out of the reflector.

``open_get`` and ``get_json`` make GET requests through that ApiClient without the
generated API classes. ``kubernetes.client.CoreV1Api`` costs ~21 MiB of resident memory
the moment it is imported (63,000 lines of pydantic-validated methods that pull in ~250
model modules), and the exporter only wants raw JSON, which it converts into its own
models (``exporter.kube.pods``). Going through ``ApiClient.param_serialize`` and
``ApiClient.call_api`` keeps everything the generated methods do that matters here:
the configured host, TLS, proxy and user agent, the ``BearerToken`` auth setting (whose
refresh hook re-reads a rotated service-account token or re-runs an exec plugin), the
query encoding, the (connect, read) timeout pair, and ``ApiException`` on non-2xx.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import kubernetes.client
import kubernetes.config
import orjson
import urllib3
import yaml
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

Query = Sequence[tuple[str, str | int | bool]]
Timeout = float | tuple[float, float]


class KubeConfigError(Exception):
    """Neither in-cluster credentials nor a usable kubeconfig were found."""


def load_api_client(kubeconfig: str | None) -> kubernetes.client.ApiClient:
    """In-cluster when no kubeconfig is named and KUBERNETES_SERVICE_HOST is set, else the
    named kubeconfig (or $KUBECONFIG / ~/.kube/config)."""
    try:
        if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            configuration = kubernetes.client.Configuration()
            kubernetes.config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
            return kubernetes.client.ApiClient(configuration)
        client: kubernetes.client.ApiClient = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig
        )
        return client
    except (ConfigException, OSError, ValueError, TypeError, KeyError, yaml.YAMLError) as err:
        where = kubeconfig or os.environ.get("KUBECONFIG") or "in-cluster/~/.kube/config"
        raise KubeConfigError(f"cannot load Kubernetes credentials ({where}): {err}") from err


def open_get(
    api: kubernetes.client.ApiClient,
    path: str,
    query: Query = (),
    *,
    timeout: Timeout,
    path_params: Mapping[str, str] | None = None,
) -> urllib3.HTTPResponse:
    """GET ``path`` (e.g. ``/api/v1/pods``) and return the unread urllib3 response.

    Blocking; the caller reads it (a watch stream line by line) and must
    ``release_conn()`` it. A non-2xx answer raises ``ApiException`` (``.status``,
    ``.reason``, ``.body``), exactly as the generated methods with
    ``_preload_content=False`` do; connection failures raise urllib3's errors.
    ``timeout`` is the total, or (connect, read) seconds. ``{name}`` placeholders in
    ``path`` are filled from ``path_params``, URL-quoted as the generated methods do.
    """
    method, url, headers, _body, _post = api.param_serialize(
        method="GET",
        resource_path=path,
        path_params=dict(path_params) if path_params else None,
        query_params=list(query),
        header_params={"Accept": "application/json"},
        auth_settings=["BearerToken"],
    )
    response = api.call_api(method, url, header_params=headers, _request_timeout=timeout)
    if not 200 <= response.status <= 299:
        try:
            response.read()  # type: ignore[no-untyped-call]  # the body goes into ApiException
        finally:
            response.response.release_conn()
        raise ApiException.from_response(http_resp=response, body=None, data=None)
    raw: urllib3.HTTPResponse = response.response
    return raw


def get_json(
    api: kubernetes.client.ApiClient,
    path: str,
    query: Query = (),
    *,
    timeout: Timeout,
    path_params: Mapping[str, str] | None = None,
) -> Any:
    """GET ``path`` and parse the whole body as JSON (orjson); errors as ``open_get``,
    plus ``orjson.JSONDecodeError`` (a ``ValueError``) for a body that is not JSON."""
    response = open_get(api, path, query, timeout=timeout, path_params=path_params)
    try:
        return orjson.loads(response.data)
    finally:
        response.release_conn()
