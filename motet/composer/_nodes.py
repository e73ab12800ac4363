"""The parts of a workflow's graph: `Node`s that call capabilities and `Route`s that choose between branches.

`Workflow.add()` and `Workflow.route()` make them; the compiled workflow reads them to build its graph.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Node", "Route"]


@dataclass(frozen=True)
class Node:
    """One step: a capability, optionally pinned to an agent or capped in price, and where its input comes from."""

    id: str
    capability: str
    after: tuple[str, ...] = ()
    agent: int | None = None
    max_price: int | None = None
    inputs: Mapping[str, str] = field(default_factory=dict)
    """Input field → `"node.field"` or `"input.field"`, for fields not fed by a same-named field."""


@dataclass(frozen=True)
class Route:
    """After `source`, run only the target chosen by the value of its output field `on`."""

    source: str
    on: str
    cases: Mapping[str, str]
    default: str | None = None

    @property
    def targets(self) -> set[str]:
        return set(self.cases.values()) | ({self.default} if self.default else set())
