"""Agents: typed capabilities on a model, described by a card, served over HTTP and paid per call.

- `Agent`, `Capability`, `CallContext` define what an agent does; `Agent.invoke` runs a capability here and
  returns an `Invocation`. `builtin_agent(...)` gives ready ones on the local model (summarize, translate,
  keywords, ...); `motet.agents.builtins` has their typed inputs and outputs.
- `AgentCard` (with `CapabilitySpec`, `Pricing`, `Service`) is the registration file published on chain;
  `fetch_card` reads one from a `data:` URI or a URL (`check_public_url` and `private_endpoints_allowed`
  keep strangers' URLs off the local network), `a2a_card` turns one into an A2A card.
- `AgentServer` serves an agent with payment on delivery and signed receipts; `AgentClient` calls one, and
  its `invoke` returns a `PaidInvocation` (the `Invocation` plus price, receipt and what is owed; with
  `output_type=Model`, `.parsed` is the output as that model). `load_agent("myagent.py:agent")` finds a
  user's agent by file or module (what `motet agent serve --agent` serves). A `ConnectionPool` keeps the
  connections of several clients (a payer's, to every agent it pays) alive between calls.
- One convention: every method here that waits (on the chain, a model or the network) is a coroutine:
  `await agent.register(...)`, `await agent.invoke(...)`, `await server.register(...)`,
  `await client.invoke(...)`; the chain layer below (`Chain`, `Registry`, `ChannelClient`) is synchronous.
- `VerifiableProfile` is what a verifiable prompt capability's card publishes so that anyone can re-run it;
  `profile_hash` and `response_hash` are what its receipts commit to.
"""

from motet.agents._a2a import a2a_card
from motet.agents._cards import AgentCard, CapabilitySpec, Pricing, Service
from motet.agents._client import AgentClient, ConnectionPool, PaidInvocation
from motet.agents._define import Agent, CallContext, Capability, Invocation
from motet.agents._fetch import check_public_url, fetch_card, private_endpoints_allowed
from motet.agents._load import load_agent
from motet.agents._server import AgentServer
from motet.agents._verifiable import VerifiableProfile, profile_hash, response_hash
from motet.agents.builtins import BUILTINS, builtin_agent

__all__ = [
    "BUILTINS",
    "Agent",
    "AgentCard",
    "AgentClient",
    "AgentServer",
    "CallContext",
    "Capability",
    "CapabilitySpec",
    "ConnectionPool",
    "Invocation",
    "PaidInvocation",
    "Pricing",
    "Service",
    "VerifiableProfile",
    "a2a_card",
    "builtin_agent",
    "check_public_url",
    "fetch_card",
    "load_agent",
    "private_endpoints_allowed",
    "profile_hash",
    "response_hash",
]
