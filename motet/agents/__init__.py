"""Agents: typed capabilities on a model, described by a card, served over HTTP and paid per call.

- `Agent`, `Capability`, `CallContext` define what an agent does (`motet.agents.define`);
  `builtin_agent(...)` gives ready ones on the local model (summarize, translate, keywords, ...).
- `AgentCard` is the registration file published on chain (`motet.agents.cards`).
- `AgentServer` serves an agent with payment on delivery and signed receipts; `AgentClient` calls one.
"""

from motet.agents.builtins import BUILTINS, builtin_agent
from motet.agents.cards import AgentCard, CapabilitySpec, Pricing, a2a_card, fetch_card
from motet.agents.client import AgentClient, Invocation
from motet.agents.define import Agent, CallContext, Capability, Result
from motet.agents.server import AgentServer

__all__ = [
    "BUILTINS",
    "Agent",
    "AgentCard",
    "AgentClient",
    "AgentServer",
    "CallContext",
    "Capability",
    "CapabilitySpec",
    "Invocation",
    "Pricing",
    "Result",
    "a2a_card",
    "builtin_agent",
    "fetch_card",
]
