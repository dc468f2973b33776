"""Reading a container from the host without trusting it.

``rootfs`` resolves every path inside the container root and bounds bytes, time and
symlink hops; ``processes`` chooses which of a container's processes to look at and reads
one into a ``ProcessView``; ``elf``, ``binscan`` and ``jar`` read executables, libraries
and archives piecewise; ``evidence`` holds the small readers detectors share.
"""

from fingerprints.reading.processes import MAX_PROCESSES, Candidate, choose, read_view
from fingerprints.reading.rootfs import Budget, BudgetExceeded, ConfinedRoot

__all__ = [
    "MAX_PROCESSES",
    "Budget",
    "BudgetExceeded",
    "Candidate",
    "ConfinedRoot",
    "choose",
    "read_view",
]
