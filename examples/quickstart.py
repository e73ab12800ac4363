import asyncio

import motet
from motet.demo import Document, local_market


async def main() -> None:
    chain = motet.Chain.embedded()  # an in-process EVM with funded dev accounts
    async with local_market(chain, motet.LlamaCppRuntime()) as market, motet.Payer(chain) as payer:
        flow, plan = await motet.Workflow.from_goal(
            "compose_report", inputs=Document, registry=market.registry
        )
        print(plan.explain())  # the cheapest type-compatible chain of agents, with their prices
        brief = await flow.compile(market.registry, payer=payer, budget=10**15)  # wei: 0.001 ETH at most
        report = await brief.run({"document": "The library opened downtown; visitors loved it."})
        print(report.outputs["compose_report"]["report"])
        print(report.summary())  # who was paid what, the settlement, and each failover in one line


asyncio.run(main())
