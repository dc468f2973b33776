"""Everything the exporter asks of the Kubernetes API server.

``client`` loads credentials once (in-cluster or a kubeconfig) and makes every request
with them, ``reflector`` keeps this node's pods by list+watch, ``pods`` converts Pod JSON
into ``podmeta`` models, ``selectors`` parses label selectors, ``quantity`` and
``quantity_format`` read and write resource quantities, ``portforward`` tunnels one
request to a pod.
"""

from exporter.kube.client import (
    ApiError,
    KubeClient,
    KubeConfigError,
    ResponseTooLarge,
    TokenAuth,
    api_path,
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
    "ApiError",
    "ContainerStatus",
    "KubeClient",
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
    "TokenAuth",
    "api_path",
    "byte_count",
    "format_quantity",
    "load_configuration",
    "millicores",
    "parse_quantity",
    "parse_selector",
    "pod_meta",
    "read_capped",
    "split_container_id",
]
