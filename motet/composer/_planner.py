"""Planning: the cheapest chain of offered capabilities that turns the user's inputs into a goal's output.

Each capability is offered by one or more agents at a price; the planner takes the cheapest offer of each
(ties to the lowest agent id). A capability can run once every required field of its input is produced,
with a type that fits (`compatible`), by the user's inputs or by the outputs of the steps before it; fields
pass by name. The plan is the cheapest set of steps after which the goal can run, in an order they can run
in: a uniform-cost search over the sets of capabilities run, limited to those that can feed the goal (the
goal's ancestors in a networkx graph of which capability can feed which). Equal costs go to fewer steps,
then to the alphabetically first sequence, so the same offers always give the same plan. The plan also
lists the next few `Path`s to the goal the search found: the other ways it could have gone.

Example:
    >>> from motet.agents import CapabilitySpec
    >>> def spec(name, needs, gives):
    ...     field = lambda names: {"type": "object", "required": names,
    ...                            "properties": {n: {"type": "string"} for n in names}}
    ...     return CapabilitySpec(name=name, input_schema=field(needs), output_schema=field(gives))
    >>> offers = [
    ...     Offer(1, "reader", spec("extract", ["url"], ["text"]), 300),
    ...     Offer(2, "smol", spec("summarize", ["text"], ["summary"]), 1_000),
    ...     Offer(3, "big", spec("summarize", ["text"], ["summary"]), 1_500),
    ... ]
    >>> result = plan("summarize", {"url": {"type": "string"}}, offers)
    >>> [(step.capability, step.inputs) for step in result.steps], result.cost
    ([('extract', {'url': 'input.url'}), ('summarize', {'text': 'extract.text'})], 1300)
    >>> print(result.explain())
    plan for 'summarize': 2 steps, 1,300 wei in all
      1. extract: agent 1 'reader' at 300 wei (no other offer)
           url ← input.url
      2. summarize: agent 2 'smol' at 1,000 wei (1 other: 1,500 wei)
           text ← extract.text
    no other path reaches 'summarize'
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import networkx as nx

from motet.composer._offer import Offer
from motet.composer._schemas import fields_of, required_of
from motet.composer._types import check_inputs, compatible
from motet.errors import InvalidComposeArgument, NoPlan
from motet.units import format_amount

__all__ = ["Path", "Plan", "PlanStep", "plan"]

INPUT: Final = "input"
"""The source name of the user's inputs in a step's `inputs` ("input.text")."""
_MAX_PATHS: Final = 3
"""Other paths to the goal that `explain()` lists."""
_PATH_SEARCH: Final = 2_000
"""Sets of steps looked at, past the cheapest plan, for other paths."""


@dataclass(frozen=True)
class PlanStep:
    """One call of a plan: which offer runs `capability`, and where each of its input fields comes from.

    `inputs` maps an input field to `"source.field"`, the source being `"input"` (the user's inputs) or an
    earlier step's capability; `alternatives` are the capability's other offers, cheapest first.
    """

    capability: str
    offer: Offer
    inputs: Mapping[str, str] = field(hash=False)
    alternatives: tuple[Offer, ...] = ()


@dataclass(frozen=True)
class Path:
    """Another way to the goal the planner found: the capabilities it runs, in order, and its total cost."""

    capabilities: tuple[str, ...]
    cost: int


@dataclass(frozen=True)
class Plan:
    """The steps to run in order, the last one the goal; `cost` is the sum of their prices."""

    goal: str
    steps: tuple[PlanStep, ...]
    cost: int
    paths: tuple[Path, ...] = ()
    """Other paths to the goal, cheapest first: the next few the search found, not every one there is."""

    def explain(self) -> str:
        """The chosen path with each step's agent, price and other offers, the total, and other paths."""
        count = len(self.steps)
        lines = [
            f"plan for {self.goal!r}: {count} step{'s' * (count != 1)}, {format_amount(self.cost)} in all"
        ]
        for number, step in enumerate(self.steps, 1):
            offer = step.offer
            lines.append(
                f"  {number}. {step.capability}: agent {offer.agent_id} {offer.agent!r} at "
                f"{format_amount(offer.price)} ({_others(step.alternatives)})"
            )
            if step.inputs:
                lines.append("       " + ", ".join(f"{name} ← {ref}" for name, ref in step.inputs.items()))
        if self.paths:
            lines.append("other paths considered:")
            lines.extend(f"  {' → '.join(p.capabilities)}: {format_amount(p.cost)}" for p in self.paths)
        else:
            lines.append(f"no other path reaches {self.goal!r}")
        return "\n".join(lines)


def plan(
    goal: str, available: Mapping[str, Mapping[str, Any]], offers: Sequence[Offer], *, max_steps: int = 6
) -> Plan:
    """The cheapest plan that ends with `goal`, run on the `available` input fields (name → JSON Schema).

    Raises `NoPlan` when no agent offers the goal, when a required input field of the goal cannot be
    produced from `available` by any chain of offered capabilities, or when it takes more than `max_steps`
    steps (the goal included).

    Example:
        >>> plan("translate", {}, [])
        Traceback (most recent call last):
        ...
        motet.errors.NoPlan: no agent offers 'translate'; nothing is offered
    """
    if max_steps < 1:
        raise InvalidComposeArgument(f"max_steps is {max_steps}: a plan takes at least one step")
    ranked = _rank(offers)
    if goal not in ranked:
        offered = ", ".join(sorted(ranked)) or "nothing is offered"
        raise NoPlan(f"no agent offers {goal!r}; " + (f"offered: {offered}" if ranked else offered))
    space = _Space(goal, available, ranked)
    reached, rounds = space.reachable()
    unmet = [name for name, mask in space.needs[goal] if not mask & reached]
    if unmet:
        raise NoPlan(space.why_not(unmet))
    if rounds > max_steps:
        raise NoPlan(_too_long(goal, max_steps, rounds))
    found, paths = space.search(reached, max_steps)
    if found is None:
        raise NoPlan(_too_long(goal, max_steps, max_steps + 1))
    return space.plan(found, paths)


class _Space:
    """The capabilities as bits of a mask, what each needs as masks of the producers that fit."""

    def __init__(
        self, goal: str, available: Mapping[str, Mapping[str, Any]], ranked: dict[str, list[Offer]]
    ) -> None:
        self.goal = goal
        self.available = {name: dict(schema) for name, schema in available.items()}
        self.ranked = ranked
        # A step named "input" would read, in `inputs`, as the user's inputs: it can only be a goal.
        self.names = sorted(name for name in ranked if name not in (goal, INPUT))
        self.bit = {name: 1 << index for index, name in enumerate(self.names)}
        self.input_bit = 1 << len(self.names)
        self.inputs = {name: fields_of(offers[0].capability.input_schema) for name, offers in ranked.items()}
        self.outputs = {
            name: fields_of(offers[0].capability.output_schema) for name, offers in ranked.items()
        }
        makers: dict[str, list[str]] = {}
        for name in self.names:
            for output in self.outputs[name]:
                makers.setdefault(output, []).append(name)
        self.makers = makers
        self.graph = nx.DiGraph()
        self.graph.add_nodes_from([INPUT, goal, *self.names])
        self.needs: dict[str, list[tuple[str, int]]] = {}
        for consumer in [goal, *self.names]:
            needs = []
            for name in sorted(required_of(ranked[consumer][0].capability.input_schema)):
                needs.append((name, self._producers(consumer, name)))
            self.needs[consumer] = needs

    def _producers(self, consumer: str, name: str) -> int:
        target = self.inputs[consumer].get(name, {})
        mask = 0
        if name in self.available and compatible(self.available[name], target) is None:
            mask |= self.input_bit
            self.graph.add_edge(INPUT, consumer)
        for producer in self.makers.get(name, ()):
            if producer != consumer and compatible(self.outputs[producer][name], target) is None:
                mask |= self.bit[producer]
                self.graph.add_edge(producer, consumer)
        return mask

    def runnable(self, name: str, have: int) -> bool:
        return all(mask & have for _, mask in self.needs[name])

    def reachable(self) -> tuple[int, int]:
        """Every producer that can run at all, and the rounds until the goal can: a lower bound on steps."""
        reached, rounds, goal_round = self.input_bit, 1, 0
        while True:
            if not goal_round and self.runnable(self.goal, reached):
                goal_round = rounds
            fresh = 0
            for name in self.names:
                if not self.bit[name] & reached and self.runnable(name, reached):
                    fresh |= self.bit[name]
            if not fresh:
                return reached, goal_round
            reached |= fresh
            rounds += 1

    def search(self, reached: int, max_steps: int) -> tuple[tuple[str, ...] | None, list[Path]]:
        """Uniform-cost search over sets of steps; returns the cheapest sequence and a few other paths."""
        feeding = nx.ancestors(self.graph, self.goal)
        useful = [name for name in self.names if self.bit[name] & reached and name in feeding]
        # Requirements still to meet: (consumer's bit, producers' mask); the goal's bit is never set.
        wants = [(0, mask) for _, mask in self.needs[self.goal]]
        wants += [(self.bit[name], mask) for name in useful for _, mask in self.needs[name]]
        prices = {name: self.ranked[name][0].price for name in useful}
        goal_price = self.ranked[self.goal][0].price
        heap: list[tuple[int, int, tuple[str, ...], int]] = [(0, 0, (), 0)]
        seen: set[int] = set()
        found: tuple[str, ...] | None = None
        ends: list[int] = []
        paths: list[Path] = []
        budget = _PATH_SEARCH
        while heap and len(paths) < _MAX_PATHS and budget > 0:
            cost, count, sequence, mask = heapq.heappop(heap)
            if mask in seen:
                continue
            seen.add(mask)
            if found is not None:
                budget -= 1
            have = mask | self.input_bit
            if self.runnable(self.goal, have):
                # Running more steps after the goal can run only costs more: a set is a path, not a state.
                if found is None:
                    found = sequence
                    ends.append(mask)
                elif not any(end & mask == end for end in ends):
                    ends.append(mask)
                    paths.append(Path((*sequence, self.goal), cost + goal_price))
                continue
            if count + 1 >= max_steps:
                continue
            # A step is worth adding only if it meets a requirement nothing so far meets: every step of a
            # cheapest plan does, for some later step, so this prunes without losing it.
            helps = 0
            for consumer, producers in wants:
                if not producers & have and not consumer & mask:
                    helps |= producers
            for name in useful:
                bit = self.bit[name]
                if bit & helps and not bit & mask and self.runnable(name, have):
                    heapq.heappush(heap, (cost + prices[name], count + 1, (*sequence, name), mask | bit))
        return found, paths

    def plan(self, sequence: tuple[str, ...], paths: list[Path]) -> Plan:
        sources: dict[str, Mapping[str, Mapping[str, Any]]] = {INPUT: self.available}
        steps = []
        for name in (*sequence, self.goal):
            best, *others = self.ranked[name]
            inputs = check_inputs(name, best.capability.input_schema, sources)
            steps.append(PlanStep(name, best, inputs, tuple(others)))
            sources[name] = self.outputs[name]
        return Plan(self.goal, tuple(steps), sum(step.offer.price for step in steps), tuple(paths))

    def why_not(self, unmet: list[str]) -> str:
        reasons = []
        for name in unmet:
            target = self.inputs[self.goal].get(name, {})
            makers = [(INPUT, self.available[name])] if name in self.available else []
            makers += [(maker, self.outputs[maker][name]) for maker in self.makers.get(name, ())]
            fitting = [source for source, schema in makers if compatible(schema, target) is None]
            if not makers:
                reasons.append(f"{name!r} is neither an input nor the output of any offered capability")
            elif not fitting:
                source, schema = makers[0]
                reasons.append(f"{name!r} from {source} does not fit: {compatible(schema, target)}")
            else:
                reasons.append(f"{name!r} comes only from {' or '.join(fitting)}, which cannot run on them")
        given = ", ".join(self.available) or "none"
        return (
            f"no plan reaches {self.goal!r}: its required input {_plural(len(unmet), 'field')} cannot be "
            f"produced from the inputs given ({given}): {'; '.join(reasons)}. Pass them as inputs, or offer "
            f"a capability whose output has them"
        )


def _rank(offers: Sequence[Offer]) -> dict[str, list[Offer]]:
    ranked: dict[str, list[Offer]] = {}
    for offer in offers:
        ranked.setdefault(offer.capability.name, []).append(offer)
    for group in ranked.values():
        group.sort(key=lambda offer: (offer.price, offer.agent_id, offer.agent))
    return ranked


def _too_long(goal: str, max_steps: int, needed: int) -> str:
    return (
        f"no plan reaches {goal!r} in {max_steps} step{'s' * (max_steps != 1)}: it takes at least {needed} "
        f"from these inputs; raise max_steps"
    )


def _plural(count: int, noun: str) -> str:
    return noun if count == 1 else noun + "s"


def _others(offers: tuple[Offer, ...]) -> str:
    if not offers:
        return "no other offer"
    prices = [format_amount(offer.price) for offer in offers[:5]] + (["..."] if len(offers) > 5 else [])
    return f"{len(offers)} other{'s' * (len(offers) != 1)}: {', '.join(prices)}"
