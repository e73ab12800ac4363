"""Built-in agents on a local model: summarize, translate, extract keywords, classify sentiment, answer from
context, critique. Each is a prompt capability with typed input and schema-constrained output.

The model's grammar keeps them faithful where the task allows: `extract_keywords` is extractive (every keyword
is a word of the text: `Agent.prompt(words_from="text")`), and `classify_sentiment` answers one of three labels.

Example:
    >>> agent = builtin_agent("summarize", price=1_000)
    >>> list(agent.capabilities), agent.price
    (['summarize'], 1000)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, Field, JsonValue, field_validator

from motet.agents._define import Agent
from motet.errors import InvalidAgentDefinition
from motet.runtimes import Runtime

__all__ = [
    "BUILTINS",
    "MAX_TEXT",
    "Answer",
    "BuiltinCapability",
    "Critique",
    "Keywords",
    "Question",
    "Sentiment",
    "Summary",
    "Text",
    "Translation",
    "TranslationRequest",
    "builtin_agent",
]

MAX_TEXT = 8_000
"""Characters of text a built-in capability reads; the bundled models' context is 2,048 tokens."""


class Text(BaseModel):
    """A text to work on."""

    text: str = Field(min_length=1, max_length=MAX_TEXT, description="The text.")


Phrase = Annotated[str, Field(max_length=40)]


class Summary(BaseModel):
    summary: str = Field(max_length=300, description="A one- or two-sentence summary.")


class TranslationRequest(BaseModel):
    text: str = Field(min_length=1, max_length=MAX_TEXT)
    target_language: str = Field(min_length=2, max_length=40, description="For example 'French'.")


class Translation(BaseModel):
    translation: str = Field(max_length=2_000)


class Keywords(BaseModel):
    keywords: list[Phrase] = Field(
        max_length=5, description="Up to five words of the text, most important first."
    )

    @field_validator("keywords")
    @classmethod
    def _once_each(cls, keywords: list[str]) -> list[str]:
        """A keyword the model repeats is kept once (a verifiable answer is the generated JSON as it is)."""
        return list(dict.fromkeys(keywords))


class Sentiment(BaseModel):
    sentiment: Literal["positive", "negative", "neutral"]


class Question(BaseModel):
    question: str = Field(min_length=1, max_length=1_000)
    context: str = Field(min_length=1, max_length=MAX_TEXT, description="The text that holds the answer.")


class Answer(BaseModel):
    answer: str = Field(max_length=300)


class Critique(BaseModel):
    strengths: list[Annotated[str, Field(max_length=80)]] = Field(max_length=3)
    weaknesses: list[Annotated[str, Field(max_length=80)]] = Field(max_length=3)


@dataclass(frozen=True)
class BuiltinCapability:
    """A built-in prompt capability: typed input and output, instructions, and a template over the input."""

    input: type[BaseModel]
    output: type[BaseModel]
    instructions: str
    template: str
    description: str
    max_tokens: int
    examples: tuple[tuple[dict[str, JsonValue], dict[str, JsonValue]], ...] = ()
    words_from: str | None = None
    """For an extractive capability, the input field every string of the answer is a word of."""

    def add_to(self, agent: Agent, name: str) -> None:
        """Add this capability to `agent` as `name`, answered by the agent's runtime."""
        agent.prompt(name, **dataclasses.asdict(self))  # the fields are `Agent.prompt`'s keyword arguments


BUILTINS: dict[str, BuiltinCapability] = {
    "summarize": BuiltinCapability(
        Text,
        Summary,
        "Summarise the user's text in one short sentence. Answer in JSON.",
        "{text}",
        "Summarise a text in one or two sentences.",
        max_tokens=128,
        examples=(
            ({"text": "The cat sat on the mat all day."}, {"summary": "A cat spent the day on a mat."}),
        ),
    ),
    "translate": BuiltinCapability(
        TranslationRequest,
        Translation,
        "Translate the user's text. Answer in JSON with the translation only.",
        "Translate into {target_language}:\n{text}",
        "Translate a text into another language.",
        max_tokens=192,
    ),
    "extract_keywords": BuiltinCapability(
        Text,
        Keywords,
        "List the main keywords of the user's text. Answer in JSON.",
        "{text}",
        "Extract up to five keywords, each a word of the text.",
        max_tokens=96,
        words_from="text",
    ),
    "classify_sentiment": BuiltinCapability(
        Text,
        Sentiment,
        "Is the user's text positive, negative or neutral? Answer in JSON.",
        "{text}",
        "Classify a text as positive, negative or neutral.",
        max_tokens=16,
    ),
    "answer_from_context": BuiltinCapability(
        Question,
        Answer,
        "Answer the question using only the context. Answer in JSON.",
        "Context:\n{context}\n\nQuestion: {question}",
        "Answer a question from a given context.",
        max_tokens=128,
    ),
    "critique": BuiltinCapability(
        Text,
        Critique,
        "Give the strengths and weaknesses of the user's text. Answer in JSON.",
        "{text}",
        "List a text's strengths and weaknesses.",
        max_tokens=224,
    ),
}
"""Capability name → the built-in capability of that name."""


def builtin_agent(
    *capabilities: str,
    runtime: Runtime | None = None,
    name: str | None = None,
    price: int = 0,
    price_per_1k_tokens: int = 0,
) -> Agent:
    """An agent with the named built-in capabilities (all of them when none are named).

    `runtime` defaults to the bundled SmolLM2 through `LlamaCppRuntime`, loaded on first use.
    """
    names = capabilities or tuple(BUILTINS)
    unknown = [n for n in names if n not in BUILTINS]
    if unknown:
        raise InvalidAgentDefinition(f"no built-in capability {unknown[0]!r}: there are {sorted(BUILTINS)}")
    if runtime is None:
        from motet.runtimes import LlamaCppRuntime

        runtime = LlamaCppRuntime()
    agent = Agent(
        name or ("-".join(names) if len(names) < 3 else "motet-builtins"),
        description="Built-in motet agent on an open-source model: " + ", ".join(names) + ".",
        runtime=runtime,
        price=price,
        price_per_1k_tokens=price_per_1k_tokens,
    )
    for each in names:
        BUILTINS[each].add_to(agent, each)
    return agent
