"""The runtime inventory: the runtimes a node or a cluster runs, with their CPU.

``build`` turns container documents into the inventory (``/v1/inventory`` on each
exporter, ``collect --report`` for the cluster); ``eol`` holds the dated upstream
end-of-life table it flags from; ``render`` prints it as a table or CSV.
"""

from exporter.inventory.build import NodeContainers, build_inventory, from_pods_document
from exporter.inventory.eol import TABLE_DATE, EndOfLife, past_end_of_life
from exporter.inventory.render import table, to_csv

__all__ = [
    "TABLE_DATE",
    "EndOfLife",
    "NodeContainers",
    "build_inventory",
    "from_pods_document",
    "past_end_of_life",
    "table",
    "to_csv",
]
