"""The snapshot contract between the extractor and the exporter.

Everything the exporter may know of the extractor is here: the versioned ``Snapshot``
model, the socket protocol and the JSON fields both write. It imports nothing else of the
project (tests/test_architecture.py checks), so either side can change behind it.
"""

from extractor.contract.documents import (
    block_io_fields,
    cpu_fields,
    fingerprint_fields,
    memory_fields,
    network_fields,
    pressure_fields,
    rfc3339,
    rfc3339_millis,
    seconds,
)
from extractor.contract.model import (
    SCHEMA_VERSION,
    BlockDevice,
    CgroupVersion,
    Container,
    Cpu,
    ExitedContainer,
    Fingerprint,
    Interface,
    Memory,
    Pod,
    Pressure,
    Qos,
    Runtime,
    RuntimeComponent,
    Snapshot,
    Usage,
    runtime_seconds,
)
from extractor.contract.wire import DEFAULT_SOCKET, HEALTH_PATH, SNAPSHOT_PATH

__all__ = [
    "DEFAULT_SOCKET",
    "HEALTH_PATH",
    "SCHEMA_VERSION",
    "SNAPSHOT_PATH",
    "BlockDevice",
    "CgroupVersion",
    "Container",
    "Cpu",
    "ExitedContainer",
    "Fingerprint",
    "Interface",
    "Memory",
    "Pod",
    "Pressure",
    "Qos",
    "Runtime",
    "RuntimeComponent",
    "Snapshot",
    "Usage",
    "block_io_fields",
    "cpu_fields",
    "fingerprint_fields",
    "memory_fields",
    "network_fields",
    "pressure_fields",
    "rfc3339",
    "rfc3339_millis",
    "runtime_seconds",
    "seconds",
]
