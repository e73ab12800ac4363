"""The demo: a local market of agents, the story `motet demo` tells on it, and a terminal view of a run.

- `local_market(chain, runtime)` serves motet's built-in agents on 127.0.0.1, each from its own account, and
  registers them at their prices: the examples, `motet run --local-agents`, `motet gateway` and `motet tui`
  run on it. `research_brief()` is the workflow they are made for; `Document` its input.
- `run_story` and `run_demo` are the two halves of `motet demo`: a paid, failed-over, checked, settled run on
  the market, then the money path at scale. `run_cheater` is `motet demo --cheater`: a cheating agent (a
  `CheatingRuntime`: a requantized model under the honest model's ref, from `cheating_runtime`) caught by a
  sampled check, disputed, decided by three validators and slashed.
- `watch` and `report_table` show a run in a terminal (rich).

The library never imports this package.

Example:
    >>> async with local_market(Chain.embedded(), LlamaCppRuntime()) as market:
    ...     runnable = await research_brief().compile(market.registry, payer=Payer(market.chain), budget=GWEI)
"""

from motet.demo._cheat_story import CheatOutcome, run_cheater
from motet.demo._cheater import CheatingRuntime, cheating_runtime
from motet.demo._market import (
    Brief,
    Document,
    Market,
    Report,
    local_market,
    market_agents,
    model_agent,
    research_brief,
)
from motet.demo._progress import report_table, watch
from motet.demo._scale import AGENTS, DemoAgent, run_demo
from motet.demo._story import DOCUMENT, run_story

__all__ = [
    "AGENTS",
    "DOCUMENT",
    "Brief",
    "CheatOutcome",
    "CheatingRuntime",
    "DemoAgent",
    "Document",
    "Market",
    "Report",
    "cheating_runtime",
    "local_market",
    "market_agents",
    "model_agent",
    "report_table",
    "research_brief",
    "run_cheater",
    "run_demo",
    "run_story",
    "watch",
]
