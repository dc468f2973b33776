"""The official client's ApiClient for the pod reflector, wherever the exporter runs.

In a pod the service account (token + CA, re-read by the client as it rotates) is the
only sane choice; on a laptop or in tests a kubeconfig is. Choosing here keeps that
decision out of the reflector.
"""

from __future__ import annotations

import os

import kubernetes.client
import kubernetes.config
import yaml
from kubernetes.config.config_exception import ConfigException


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
