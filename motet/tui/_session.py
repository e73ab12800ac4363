"""What the app and its screens share: one `Session` (chain, payer, market, workflows, budget, the compiled
workflow), handed to each screen when the app builds it, so no screen reaches for the app."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from eth_account.signers.local import LocalAccount
from pydantic import BaseModel, JsonValue

from motet.agents import AgentServer
from motet.chain import Chain
from motet.composer import CompiledWorkflow, Payer, Workflow
from motet.registry import Registry
from motet.units import Wei


class Market(Protocol):
    """A market the TUI shows and pays: the registry its agents are in and, by name, the servers of the agents
    it may open channels to. The demo's market (`motet tui` serves one) is one."""

    @property
    def registry(self) -> Registry: ...

    @property
    def servers(self) -> Mapping[str, AgentServer]: ...


MarketFactory = Callable[[], AbstractAsyncContextManager[Market]]
"""Serves a market for as long as its context lasts (the app enters it on mount and leaves it on exit)."""


@dataclass
class Session:
    """The state every screen reads; the compose screen sets `compiled`, the app sets `market` once it serves.

    Args:
        chain: where the registry and the payment channels live.
        payer: pays every call and opens every channel, from `payer.account`.
        workflows: name → workflow offered on the compose screen (at least one).
        inputs: the inputs the compose screen's forms start from (each takes those its workflow's schema has).
        goal_inputs: the input schema a goal typed on the compose screen is planned from; None: no goals.
        budget: the compose screen's budget to start with.
        market: the market shown and paid, once it serves.
    """

    chain: Chain
    payer: Payer
    workflows: dict[str, Workflow]
    inputs: dict[str, JsonValue]
    goal_inputs: type[BaseModel] | Mapping[str, Any] | None
    budget: Wei
    market: Market | None = None
    compiled: CompiledWorkflow | None = None

    @property
    def account(self) -> LocalAccount:
        return self.payer.account

    @property
    def registry(self) -> Registry:
        if self.market is None:
            raise RuntimeError("the market is not serving yet")
        return self.market.registry

    def payees(self) -> dict[str, str]:
        """Agent name → the address its channels pay, for the agents of the market (none before it serves)."""
        if self.market is None:
            return {}
        return {name: str(server.account.address) for name, server in self.market.servers.items()}
