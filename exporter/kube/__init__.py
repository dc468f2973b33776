"""Everything the exporter asks of the Kubernetes API server.

``config`` loads credentials (in-cluster or a kubeconfig), ``http`` makes async requests
with them, ``reflector`` keeps this node's pods by list+watch, ``pods`` converts Pod JSON
into ``podmeta`` models, ``selectors`` parses label selectors, ``quantity`` and
``quantity_format`` read and write resource quantities, ``portforward`` tunnels one
request to a pod.
"""

from exporter.kube.config import KubeConfigError, get_json, load_api_client
from exporter.kube.http import (
    ConfigTokenAuth,
    ResponseTooLarge,
    api_http_client,
    load_configuration,
    read_capped,
)
from exporter.kube.podmeta import ContainerStatus, Owner, PodMeta
from exporter.kube.pods import PodConversionError, pod_meta, split_container_id
from exporter.kube.quantity import QuantityError, byte_count, millicores, parse_quantity
from exporter.kube.quantity_format import format_quantity
from exporter.kube.reflector import PodEvent, PodReflector
from exporter.kube.selectors import Selector, SelectorError, parse_selector

__all__ = [
    "ConfigTokenAuth",
    "ContainerStatus",
    "KubeConfigError",
    "Owner",
    "PodConversionError",
    "PodEvent",
    "PodMeta",
    "PodReflector",
    "QuantityError",
    "ResponseTooLarge",
    "Selector",
    "SelectorError",
    "api_http_client",
    "byte_count",
    "format_quantity",
    "get_json",
    "load_api_client",
    "load_configuration",
    "millicores",
    "parse_quantity",
    "parse_selector",
    "pod_meta",
    "read_capped",
    "split_container_id",
]
