"""B9, the cost of trust: CPU time of the sampled checks at p ÷ CPU time of the calls served, on llama.cpp.

An agent's runtime serves verifiable calls (the built-in summarize, extract_keywords and classify_sentiment
profiles on the bundled SmolLM2-135M Q4_1, greedy, each call from a fresh prompt as the profile's seed makes
it); a `Checker` on a second runtime of the same model checks every answer. A caller checks each call with
probability p (`Settings.trust.sample_rate`), so the expected CPU of its checks is p x the sum of all checks' CPU:
B9 = p x CPU(checks) / CPU(calls). CPU time is the process's (`time.process_time`, llama.cpp's threads
included), around each call and as `CheckResult.cpu_s` for each check; both runtimes run one thread, so that
neither side's threads wait on each other on a busy machine.

A check costs less than the call because the fast path evaluates the claimed answer in one batched prefill,
where the call generated it one token at a time.

Run alone with `python -m bench.b9_trust`.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from bench.trust_texts import TEXTS
from motet.agents import VerifiableProfile
from motet.agents.builtins import BUILTINS
from motet.runtimes import LlamaCppRuntime
from motet.runtimes.gguf import bundled_model
from motet.settings import Settings
from motet.trust import Checker, Verdict

if TYPE_CHECKING:
    from bench.__main__ import Row

CAPABILITIES = ("summarize", "extract_keywords", "classify_sentiment")
SLACK = 0.01
"""The target is p + 1 %."""


def measure(requests: int = 12, threads: int = 1) -> tuple[float, float, int, int]:
    """Return (CPU seconds of the calls, CPU seconds of checking every one of them, calls, consistent)."""
    path = bundled_model("smollm2").locate()
    agent = LlamaCppRuntime(path, n_ctx=2048, n_threads=threads)
    checking = LlamaCppRuntime(path, n_ctx=2048, n_threads=threads)
    checker = Checker([checking])

    async def run() -> tuple[float, float, int, int]:
        model_ref = await agent.load()
        await checking.load()
        profiles = {
            name: VerifiableProfile.bind(
                model_ref,
                instructions=BUILTINS[name].instructions,
                template=BUILTINS[name].template,
                output_schema=BUILTINS[name].output.model_json_schema(),
                max_tokens=BUILTINS[name].max_tokens,
                words_from=BUILTINS[name].words_from,
            )
            for name in CAPABILITIES
        }
        served = checked = 0.0
        consistent = 0
        for i in range(requests):
            profile = profiles[CAPABILITIES[i % len(CAPABILITIES)]]
            request = {"text": TEXTS[i % len(TEXTS)]}
            started = time.process_time()
            done = await agent.complete(
                profile.messages(request), profile.sampling(), schema=profile.call_schema(request)
            )
            served += time.process_time() - started
            result = await checker.check(profile, request, done.text)
            checked += result.cpu_s
            consistent += result.verdict is Verdict.CONSISTENT
        return served, checked, requests, consistent

    try:
        return asyncio.run(run())
    finally:
        agent.close()
        checking.close()


def bench_b9(requests: int = 12, threads: int = 1) -> Row:
    """B9 as a row of `make bench`'s table."""
    from bench.__main__ import Row

    p = Settings().trust.sample_rate
    served, checked, calls, consistent = measure(requests, threads)
    ratio = p * checked / served
    per_check = checked / served
    print(
        f"B9 trust cost: {calls} calls {served:.2f} CPU s, checking all {checked:.2f} CPU s "
        f"({per_check:.2f} of a call each; {consistent}/{calls} consistent); at p = {p:.0%}: {ratio:.2%} "
        f"(target <= {p + SLACK:.0%})"
    )
    return Row(
        "B9",
        f"CPU of the sampled checks at p = {p:.0%} ÷ CPU of the calls served, {calls} verifiable calls "
        "(SmolLM2-135M Q4_1 on llama.cpp, 1 thread each side)",
        f"one check costs {per_check:.2f} of its call ({checked:.2f} vs {served:.2f} CPU s over all calls); "
        f"× p = **{ratio:.2%}**",
        f"≤ p + 1 % = {p + SLACK:.0%}",
        "met" if ratio <= p + SLACK else "not met",
    )


if __name__ == "__main__":
    bench_b9()
