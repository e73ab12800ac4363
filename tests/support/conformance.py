"""What every `Runtime` must do, written once and run against each runtime.

`RuntimeConformance` is not collected by itself (its name has no `Test` prefix). A test class subclasses it
and provides two fixtures: `runtime`, the runtime under test, and `model_calls`, a callable that says how
many times the model behind it has been asked to generate.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from motet.errors import ContextOverflow
from motet.runtimes import Completion, Message, Runtime, Sampling, TextDelta

PROMPT = [Message("system", "You answer briefly."), Message("user", "Name three colours.")]
KEYWORDS_PROMPT = [Message("user", "Give keywords for: cats chase mice in the barn at night.")]
KEYWORDS_SCHEMA = {
    "type": "object",
    "properties": {"keywords": {"type": "array", "items": {"type": "string"}, "maxItems": 5}},
    "required": ["keywords"],
}


class Keywords(BaseModel):
    keywords: list[str] = Field(max_length=5)


def check_keywords(value: object) -> None:
    assert isinstance(value, dict)
    assert isinstance(value["keywords"], list)
    assert len(value["keywords"]) <= 5
    assert all(isinstance(word, str) for word in value["keywords"])


class RuntimeConformance:
    max_tokens = 16
    """Small, so that a real model answers each test in about a second."""
    schema_max_tokens = 48
    """Enough for a small model to close its JSON."""
    seeded_sampling_repeats = True
    """False where only greedy decoding repeats: an endpoint forwards the seed, but whether its server
    restores the sampler from it after serving other calls is the server's business."""
    stream_prompt_tokens: Literal["exact", "at_least", "estimated"] = "exact"
    """How `stream()` counts the prompt: exactly; by an estimate that errs high (llama.cpp with a named chat
    format); or by an estimate it flags in `Usage.estimated` (an endpoint that streams no usage)."""

    async def test_complete_returns_text_usage_finish_reason_and_model_ref(self, runtime: Runtime) -> None:
        assert isinstance(runtime, Runtime)
        done = await runtime.complete(PROMPT, Sampling(max_tokens=self.max_tokens, seed=1))
        assert done.text.strip()
        assert done.parsed is None
        assert done.usage.prompt_tokens > 0
        assert 0 < done.usage.completion_tokens <= self.max_tokens
        assert done.usage.total_tokens == done.usage.prompt_tokens + done.usage.completion_tokens
        assert done.finish_reason in ("stop", "length")
        assert done.latency_s >= 0
        ref = done.model_ref
        assert re.fullmatch(r"[0-9a-f]{64}", ref.sha256)
        assert ref.runtime and ref.runtime_version and ref.model and ref.quantization

    async def test_dict_messages_are_the_same_as_message_objects(self, runtime: Runtime) -> None:
        as_dicts = [{"role": m.role, "content": m.content} for m in PROMPT]
        first = await runtime.complete(PROMPT, Sampling(max_tokens=4))
        second = await runtime.complete(as_dicts, Sampling(max_tokens=4))
        assert first.text == second.text
        assert first.usage == second.usage

    async def test_stream_deltas_join_up_to_the_completion_complete_gives(self, runtime: Runtime) -> None:
        done = await runtime.complete(PROMPT, Sampling(max_tokens=self.max_tokens, seed=3))
        events = [
            event async for event in runtime.stream(PROMPT, Sampling(max_tokens=self.max_tokens, seed=3))
        ]
        *deltas, last = events
        assert len(deltas) >= 2
        assert all(isinstance(delta, TextDelta) and delta.text for delta in deltas)
        assert isinstance(last, Completion)
        assert "".join(delta.text for delta in deltas if isinstance(delta, TextDelta)) == last.text
        assert last.text == done.text
        assert last.usage.completion_tokens == done.usage.completion_tokens
        assert not done.usage.estimated
        if self.stream_prompt_tokens == "exact":
            assert last.usage.prompt_tokens == done.usage.prompt_tokens
            assert not last.usage.estimated
        elif self.stream_prompt_tokens == "at_least":
            assert last.usage.prompt_tokens >= done.usage.prompt_tokens  # an estimate errs high
        else:
            assert last.usage.estimated
            assert last.usage.prompt_tokens > 0
        assert last.finish_reason == done.finish_reason
        assert last.model_ref == done.model_ref

    async def test_seeded_calls_repeat_exactly_whatever_ran_in_between(self, runtime: Runtime) -> None:
        for temperature in (0.0, 0.9) if self.seeded_sampling_repeats else (0.0,):
            first = await runtime.complete(PROMPT, Sampling(max_tokens=12, temperature=temperature, seed=7))
            await runtime.complete(KEYWORDS_PROMPT, Sampling(max_tokens=2))
            again = await runtime.complete(PROMPT, Sampling(max_tokens=12, temperature=temperature, seed=7))
            assert again.text == first.text

    async def test_json_schema_output_parses_and_validates(self, runtime: Runtime) -> None:
        done = await runtime.complete(
            KEYWORDS_PROMPT, Sampling(max_tokens=self.schema_max_tokens), schema=KEYWORDS_SCHEMA
        )
        check_keywords(done.parsed)
        assert json.loads(done.text) == done.parsed

    async def test_pydantic_schema_output_parses_and_validates(self, runtime: Runtime) -> None:
        done = await runtime.complete(
            KEYWORDS_PROMPT, Sampling(max_tokens=self.schema_max_tokens), schema=Keywords
        )
        check_keywords(done.parsed)
        assert isinstance(done.parsed, dict)
        assert Keywords.model_validate(done.parsed).keywords == done.parsed["keywords"]

    @pytest.mark.parametrize(("words", "max_tokens"), [(5000, 16), (3, 1_000_000)])
    async def test_context_overflow_is_raised_before_the_model_runs(
        self, runtime: Runtime, model_calls: Callable[[], int], words: int, max_tokens: int
    ) -> None:
        before = model_calls()
        with pytest.raises(ContextOverflow) as caught:
            await runtime.complete("word " * words, Sampling(max_tokens=max_tokens))
        error = caught.value
        assert error.max_tokens == max_tokens
        assert error.prompt_tokens + error.max_tokens > error.n_ctx
        assert f"prompt of {error.prompt_tokens} tokens" in str(error)
        assert f"context window of {error.n_ctx} tokens" in str(error)
        with pytest.raises(ContextOverflow):
            async for _ in runtime.stream("word " * words, Sampling(max_tokens=max_tokens)):
                pass
        assert model_calls() == before
