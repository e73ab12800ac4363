"""Every built-in agent runs on the real SmolLM2 model and answers its typed output."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from motet.agents import BUILTINS, builtin_agent
from motet.agents.builtins import Answer, Critique, Keywords, Sentiment, Summary, Translation
from motet.runtimes import LlamaCppRuntime

TEXT = "The new library opened downtown. Visitors loved the bright reading rooms and the friendly staff."
CASES: dict[str, tuple[dict[str, str], type[BaseModel]]] = {
    "summarize": ({"text": TEXT}, Summary),
    "translate": ({"text": "Good morning.", "target_language": "French"}, Translation),
    "extract_keywords": ({"text": TEXT}, Keywords),
    "classify_sentiment": ({"text": TEXT}, Sentiment),
    "answer_from_context": ({"question": "Where did the library open?", "context": TEXT}, Answer),
    "critique": ({"text": TEXT}, Critique),
}


def test_every_builtin_has_a_case() -> None:
    assert set(CASES) == set(BUILTINS)


@pytest.mark.parametrize("name", sorted(CASES))
async def test_builtin_answers_its_typed_output(smollm2: LlamaCppRuntime, name: str) -> None:
    agent = builtin_agent(name, runtime=smollm2, price=7)
    value, output = CASES[name]
    result = await agent.invoke(name, value)
    output.model_validate(result.output)
    assert result.usage.completion_tokens > 0
    assert result.model_ref.model == "SmolLM2-135M-Instruct"
    assert agent.price_of(result.usage) == 7


def test_unknown_builtin_names_the_choices() -> None:
    with pytest.raises(ValueError, match="no built-in capability 'poem'"):
        builtin_agent("poem", runtime=None)
