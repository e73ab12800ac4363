"""The check on real SmolLM2: honest answers are never called cheats whatever the thread count, batch size or
prompt cache; a lower quantization, a truncated answer and another request's answer are caught; a model nobody
here runs is unavailable. (The calibration at scale: `python -m bench.trust_calibration`, docs/trust.md.)"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from motet.agents import VerifiableProfile, profile_hash, response_hash
from motet.agents.builtins import BUILTINS
from motet.errors import CheckUnavailable, InvalidEvidence, InvalidRuntimeArgument, ModelNotFound
from motet.payments import ReceiptDomain, ReceiptSigner, request_hash
from motet.runtimes import LlamaCppRuntime, ModelRef, Sampling, _replay
from motet.runtimes.gguf import bundled_model, requantize
from motet.trust import NEAR_TIE, Checker, CheckResult, Evidence, Verdict

pytestmark = pytest.mark.slow

TEXTS = (
    "Rising sea temperatures are bleaching coral reefs faster than they can recover, scientists warned.",
    "The laptop overheats after ten minutes and the battery barely lasts an hour. I want a refund.",
    "The city council approved a plan to plant ten thousand trees along its busiest streets by 2030.",
)
CAPABILITIES = ("summarize", "extract_keywords", "classify_sentiment")


@dataclass(frozen=True)
class Call:
    profile: VerifiableProfile
    input: dict[str, str]


def profile_for(capability: str, model_ref: ModelRef) -> VerifiableProfile:
    spec = BUILTINS[capability]
    return VerifiableProfile.bind(
        model_ref,
        instructions=spec.instructions,
        template=spec.template,
        output_schema=spec.output.model_json_schema(),
        max_tokens=spec.max_tokens,
    )


async def answer(runtime: LlamaCppRuntime, call: Call, *, prompt_cache: bool = False) -> str:
    """The raw text an agent on `runtime` answers with (a cached prompt prefix when `prompt_cache`)."""
    profile = call.profile
    sampling = Sampling(max_tokens=profile.max_tokens, temperature=0.0, seed=None if prompt_cache else 0)
    done = await runtime.complete(profile.messages(call.input), sampling, schema=profile.output_schema)
    return done.text


@dataclass
class World:
    path: Path
    model_ref: ModelRef
    calls: list[Call]
    honest: list[str]
    """Answers of the agent as deployed: one thread, a fresh prompt for each call."""
    checker: Checker
    """One thread, n_batch 64, reusing the cached prompt prefix."""


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    path = bundled_model("smollm2").locate()
    agent = LlamaCppRuntime(path, n_ctx=1024, n_threads=1)
    checking = LlamaCppRuntime(path, n_ctx=1024, n_threads=1, n_batch=64)

    async def setup() -> World:
        model_ref = await agent.load()
        calls = [
            Call(profile_for(capability, model_ref), {"text": text})
            for capability in CAPABILITIES
            for text in TEXTS
        ]
        honest = [await answer(agent, call) for call in calls]
        return World(path, model_ref, calls, honest, Checker([checking]))

    try:
        yield asyncio.run(setup())
    finally:
        agent.close()
        checking.close()


def check(checker: Checker, call: Call, text: str) -> CheckResult:
    return asyncio.run(checker.check(call.profile, call.input, text))


def test_honest_answers_are_consistent_across_threads_batch_sizes_and_prompt_cache(world: World) -> None:
    # Answers made with batches of 8 and the prompt prefix cached from the previous call (one thread: two
    # threads on a busy two-core machine wait on each other for seconds per token)...
    other_agent = LlamaCppRuntime(world.path, n_ctx=1024, n_threads=1, n_batch=8)
    # ...and checked by a checker with two threads and every prompt evaluated afresh.
    fresh = LlamaCppRuntime(world.path, n_ctx=1024, n_threads=2)
    try:

        async def other_answers() -> list[str]:
            return [await answer(other_agent, call, prompt_cache=True) for call in world.calls]

        cached = asyncio.run(other_answers())
        fresh_checker = Checker([fresh], reuse_prompt=False)
        results = [
            check(world.checker, call, text)
            for answers in (world.honest, cached)
            for call, text in zip(world.calls, answers, strict=True)
        ]
        # One answer for the two-thread checker: on a busy machine each evaluation waits on both threads.
        results += [check(fresh_checker, world.calls[len(TEXTS)], cached[len(TEXTS)])]
    finally:
        other_agent.close()
        fresh.close()
    assert [r.verdict for r in results] == [Verdict.CONSISTENT] * len(results), [r.detail for r in results]
    assert all(r.position is None and r.margin is None for r in results)
    assert all(r.tokens > 0 and r.cpu_s > 0 for r in results)
    assert "the declared model gives this answer" in results[0].detail


def test_a_lower_quantization_is_caught(world: World, tmp_path: Path) -> None:
    lower = requantize(world.path, tmp_path / "SmolLM2-135M-Instruct.Q4_0.gguf", "Q4_0")
    cheater = LlamaCppRuntime(lower, n_ctx=1024, n_threads=1)
    try:

        async def cheat_answers() -> list[str]:
            return [await answer(cheater, call) for call in world.calls[: len(TEXTS)]]  # the summaries

        answers = asyncio.run(cheat_answers())
    finally:
        cheater.close()
    differing = [
        (call, text)
        for call, honest, text in zip(world.calls, world.honest, answers, strict=False)
        if text != honest
    ]
    assert differing, "Q4_0 gave the honest answers to every request: pick requests where it diverges"
    results = [check(world.checker, call, text) for call, text in differing]
    caught = [r for r in results if r.verdict is Verdict.CHEAT]
    assert caught, [r.detail for r in results]
    for result in caught:
        assert result.margin is not None and result.margin > NEAR_TIE
        assert result.position is not None and 0 <= result.position <= result.tokens
        assert "above the near-tie margin" in result.detail


def test_a_truncated_answer_is_caught(world: World) -> None:
    call, honest = world.calls[0], world.honest[0]  # a summary
    summary = json.loads(honest)["summary"]
    words = summary.split(" ")
    assert len(words) >= 4, honest
    short = json.dumps(" ".join(words[: len(words) // 2]))
    truncated = honest.replace(json.dumps(summary), short)
    assert truncated != honest and json.loads(truncated)["summary"] != summary
    result = check(world.checker, call, truncated)
    assert result.verdict is Verdict.CHEAT, result.detail
    assert result.margin is not None and result.margin > NEAR_TIE


def test_an_answer_to_another_request_is_caught(world: World) -> None:
    # The summary of the second text served as the summary of the first.
    call, other = world.calls[0], world.honest[1]
    assert other != world.honest[0]
    result = check(world.checker, call, other)
    assert result.verdict is Verdict.CHEAT, result.detail
    assert result.position is not None and result.margin is not None and result.margin > NEAR_TIE


def test_text_the_schema_does_not_allow_is_a_cheat_with_an_infinite_margin(world: World) -> None:
    index = 2 * len(TEXTS)  # classify_sentiment: an enum
    label = json.loads(world.honest[index])["sentiment"]
    furious = world.honest[index].replace(json.dumps(label), '"furious"')
    assert furious != world.honest[index]
    result = check(world.checker, world.calls[index], furious)
    assert result.verdict is Verdict.CHEAT
    assert result.margin == math.inf
    assert "schema" in result.detail


def test_an_unknown_model_is_unavailable_and_an_input_the_template_cannot_render_is_inconclusive(
    world: World,
) -> None:
    call = world.calls[0]
    unknown = call.profile.model_copy(update={"model": {**call.profile.model, "sha256": "ab" * 32}})
    assert world.checker.can_check(world.model_ref.sha256)
    assert not world.checker.can_check("ab" * 32)
    with pytest.raises(CheckUnavailable) as raised:
        check(world.checker, Call(unknown, call.input), world.honest[0])
    assert raised.value.model == "ab" * 32
    assert "give the Checker a LlamaCppRuntime" in str(raised.value)
    with pytest.raises(CheckUnavailable):
        check(Checker(), call, world.honest[0])
    result = check(world.checker, Call(call.profile, {"body": "no text field"}), world.honest[0])
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "cannot re-run" in result.detail


def test_check_evidence_checks_a_paid_call_and_refuses_evidence_that_does_not_hold_together(
    world: World,
) -> None:
    call, text = world.calls[1], world.honest[1]
    output = json.loads(text)
    domain = ReceiptDomain(chain_id=31337, contract="0x" + "11" * 20)
    receipt = ReceiptSigner("0x" + "01" * 32, domain).sign(
        request_hash("summarize", call.input, channel_id=7, seq=1),
        response_hash(output, text),
        price=5,
        channel_id=7,
        seq=1,
        model_ref=profile_hash(call.profile),
    )
    evidence = Evidence(3, "summarize", call.input, output, text, call.profile, receipt)
    assert evidence.problem() is None
    assert asyncio.run(world.checker.check_evidence(evidence)).verdict is Verdict.CONSISTENT
    forged = Evidence(3, "summarize", call.input, output, text + " ", call.profile, receipt)
    with pytest.raises(InvalidEvidence):
        asyncio.run(world.checker.check_evidence(forged))


def test_the_fast_path_decides_as_the_token_by_token_walk_does(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    truncated = world.honest[0].replace(json.loads(world.honest[0])["summary"], "A")
    cases = [(world.calls[i], world.honest[i]) for i in (0, len(TEXTS))] + [(world.calls[0], truncated)]
    fast = [check(world.checker, call, text) for call, text in cases]

    def no_fast_path(*args: object) -> tuple[int, int, object]:
        logits = args[4]
        return 0, 0, _replay._Fast(logits, False)  # type: ignore[arg-type]

    monkeypatch.setattr(_replay, "_fast_path", no_fast_path)
    slow = [check(world.checker, call, text) for call, text in cases]
    assert (
        [r.verdict for r in fast] == [r.verdict for r in slow] == [Verdict.CONSISTENT] * 2 + [Verdict.CHEAT]
    )
    assert [r.tokens for r in fast] == [r.tokens for r in slow]
    assert fast[-1].position == slow[-1].position


def test_requantize_names_the_types_it_knows_and_refuses_a_missing_file(tmp_path: Path) -> None:
    source = bundled_model("smollm2").locate()
    with pytest.raises(InvalidRuntimeArgument, match="Q4_0"):
        requantize(source, tmp_path / "out.gguf", "Q9_9")
    with pytest.raises(ModelNotFound):
        requantize(tmp_path / "missing.gguf", tmp_path / "out.gguf", "Q4_0")
    assert not (tmp_path / "out.gguf").exists()
