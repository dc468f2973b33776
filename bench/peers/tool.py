"""What the bench asks of every tool it compares: start, say how many of the node's
containers it reports, what it reports as the burner's cumulative CPU, stop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bench.peers.accounting import ToolCgroup

INTERVAL = 10
"""Every tool samples every 10 s, as the agent's exporter polls its extractor."""


@dataclass(frozen=True)
class Reading:
    """The burner container's cumulative CPU seconds as a tool reports them, and the wall
    time of the sample that value comes from."""

    cpu_seconds: float
    sampled_at: float


class Tool(Protocol):
    name: str
    cgroups: list[ToolCgroup]
    lag: float
    """How long after the burner stopped a sample must be to hold all it burned."""

    def start(self) -> None: ...

    def expected(self) -> int:
        """How many of the node's containers this tool reports once it has them all."""
        ...

    def seen(self) -> int: ...

    def reading(self) -> Reading | None: ...

    def stop(self) -> None: ...


def check_alive(tool: Tool, where: object) -> None:
    """Stop the bench naming the tool's files when one of its processes is gone."""
    for cg in tool.cgroups:
        if not cg.alive():
            raise SystemExit(f"bench_peers: {tool.name} ({cg.name}) exited; see {where}")
