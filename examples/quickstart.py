import asyncio

from motet import Chain
from motet.composer import Payer, Workflow
from motet.demo import Document, local_market
from motet.runtimes import LlamaCppRuntime


async def main() -> None:
    chain = Chain.embedded()  # an in-process EVM with funded dev accounts
    async with local_market(chain, LlamaCppRuntime()) as market:  # built-in agents, served and registered
        flow, plan = await Workflow.from_goal("compose_report", inputs=Document, registry=market.registry)
        print(plan.explain())  # the cheapest type-compatible chain of agents
        payer = Payer(chain)  # opens channels, pays each accepted answer once
        brief = await flow.compile(market.registry, payer=payer, budget=10**15)
        report = await brief.run({"document": "The library opened downtown; visitors loved it."})
        print(report.outputs["compose_report"]["report"], report.settlement)
        await payer.aclose()


asyncio.run(main())
