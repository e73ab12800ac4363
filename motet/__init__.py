"""motet: compose AI agents on open-source models, discovered on an EVM chain and paid per call.

    import motet

    chain = motet.Chain.embedded()
    agent = motet.builtin_agent("summarize", runtime=motet.LlamaCppRuntime())
    async with motet.AgentServer(agent, chain).running() as url, motet.Payer(chain) as payer:
        ...

The names the quickstart and the examples use; each sub-package (`motet.agents`, `motet.composer`,
`motet.payments`, `motet.registry`, `motet.runtimes`) exports the rest of its public API.
"""

from motet.agents import Agent, AgentClient, AgentServer, Invocation, PaidInvocation, builtin_agent
from motet.chain import Chain
from motet.composer import Payer, RunReport, Workflow
from motet.errors import MotetError
from motet.registry import AgentRecord, Registry
from motet.runtimes import LlamaCppRuntime, OpenAIEndpointRuntime, Sampling
from motet.settings import Settings
from motet.units import Wei

__all__ = [
    "Agent",
    "AgentClient",
    "AgentRecord",
    "AgentServer",
    "Chain",
    "Invocation",
    "LlamaCppRuntime",
    "MotetError",
    "OpenAIEndpointRuntime",
    "PaidInvocation",
    "Payer",
    "Registry",
    "RunReport",
    "Sampling",
    "Settings",
    "Wei",
    "Workflow",
    "builtin_agent",
]
