"""The check: re-run a verifiable call's declared model and say whether the agent's answer is what it gives.

A `Checker` holds llama.cpp runtimes and finds the one whose loaded GGUF has the sha256 a profile declares. It
rebuilds the agent's messages from the profile (`VerifiableProfile.messages`), formats them with the GGUF's chat
template, constrains the output with the grammar of the profile's `outputSchema` (for an extractive profile,
restricted to the input's words: `VerifiableProfile.call_schema`), decodes greedily, and walks
the claimed text token by token (`LlamaCppRuntime.replay`):

- where the model's greedy token is the claimed text, go on (a different split of the same text is fine);
- where it is not, compare logits: a margin up to `NEAR_TIE` is a near-tie that floating-point differences can
  flip (thread count, batch size, a cached prompt, another machine), so it is honest and the walk follows the
  claim; a wider margin is the decisive divergence, a cheat;
- at the end of the claimed text the model must end too (or the answer must have reached `maxTokens`): an
  answer cut short where the model decisively goes on is a cheat.

`NEAR_TIE` is calibrated (docs/trust.md "Calibration", `python -m bench.trust_calibration`): across the
calibration set's honest answers, produced and checked with different thread counts, batch sizes and prompt
caches, no divergence comes near it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from motet.agents import VerifiableProfile
from motet.errors import CheckUnavailable, ContextOverflow, InvalidAgentInput, InvalidEvidence, InvalidSchema
from motet.runtimes import LlamaCppRuntime
from motet.trust._evidence import Evidence
from motet.trust._verdict import Verdict

NEAR_TIE: Final = 0.5
"""The logit margin up to which a divergence from the model's greedy choice is an honest near-tie.

SmolLM2-135M Q4_1 on CPU: the largest margin at an honest divergence in the calibration set is 0.139, with no
false cheat in 144 checks of honest answers made and checked under other thread counts, batch sizes and prompt
caches, while 95-100 % of the realistic cheats that change the answer diverge by more (docs/trust.md
"Calibration")."""


@dataclass(frozen=True)
class CheckResult:
    """What checking one answer found.

    Example:
        >>> CheckResult(Verdict.CONSISTENT, "all 12 tokens are the model's", 12, 0, None, None, 0.1).verdict.label
        'consistent'
    """

    verdict: Verdict
    detail: str
    """A sentence: where and why."""
    tokens: int
    """Answer tokens checked."""
    ties: int
    """Honest near-tie divergences followed."""
    position: int | None
    """Token index of the decisive divergence (a cheat), else None."""
    margin: float | None
    """The logit margin at the decisive divergence (`inf` when the schema forbids the claimed text there)."""
    cpu_s: float
    """CPU seconds the check used (process time while the runtime's worker ran it)."""


class Checker:
    """Checks verifiable answers by re-running their declared model on the runtimes given.

    Args:
        runtimes: llama.cpp runtimes; each is matched by the sha256 of its GGUF file.
        near_tie: the margin up to which a divergence is honest; `NEAR_TIE` unless calibrating.
        reuse_prompt: reuse the prompt prefix the runtime has cached from its previous call (faster; the
            near-tie rule absorbs the floating-point difference it makes).

    Example:
        >>> checker = Checker()
        >>> checker.can_check("ab" * 32)
        False
    """

    def __init__(
        self,
        runtimes: Sequence[LlamaCppRuntime] = (),
        *,
        near_tie: float = NEAR_TIE,
        reuse_prompt: bool = True,
    ) -> None:
        if not near_tie >= 0:
            raise ValueError(f"near_tie is {near_tie!r}: pass a logit margin >= 0")
        self._runtimes = tuple(runtimes)
        self._near_tie = near_tie
        self._reuse_prompt = reuse_prompt
        self._by_sha256: dict[str, LlamaCppRuntime] | None = None

    @property
    def models(self) -> list[str]:
        """The sha256 of every model this checker can run (hashes the GGUF files on first use)."""
        return sorted(self._index())

    def can_check(self, model_sha256: str) -> bool:
        """Whether a runtime here runs the model with this GGUF sha256 (hashes the files on first use)."""
        return model_sha256.lower() in self._index()

    async def check(self, profile: VerifiableProfile, input: Mapping[str, Any], text: str) -> CheckResult:
        """Re-run `profile` on `input` and compare with the claimed raw `text`.

        Raises `CheckUnavailable` when no runtime here runs the profile's model. A call that cannot be re-run
        (the input does not fit the template, the prompt does not fit the context, a schema llama.cpp cannot
        make a grammar of) is `INCONCLUSIVE`.
        """
        sha256 = profile.model["sha256"]
        index = await asyncio.to_thread(self._index)
        runtime = index.get(sha256.lower())
        if runtime is None:
            raise CheckUnavailable(
                sha256,
                f"no runtime here runs the model with sha256 {sha256} ({profile.model['model']} "
                f"{profile.model['quantization']}): give the Checker a LlamaCppRuntime of that GGUF file",
            )
        try:
            messages = profile.messages(dict(input))
            replay = await runtime.replay(
                messages,
                text,
                schema=profile.call_schema(
                    dict(input)
                ),  # an extractive profile's grammar depends on the input
                sampling=profile.sampling(),
                tolerance=self._near_tie,
                reuse_prompt=self._reuse_prompt,
            )
        except (InvalidAgentInput, ContextOverflow, InvalidSchema) as exc:
            return CheckResult(Verdict.INCONCLUSIVE, f"cannot re-run this call: {exc}", 0, 0, None, None, 0.0)
        ties = len(replay.divergences) - (1 if replay.decisive is not None else 0)
        if replay.decisive is not None:
            decisive = replay.decisive
            return CheckResult(
                Verdict.CHEAT,
                f"{decisive.describe()}, above the near-tie margin {self._near_tie:g}",
                replay.tokens,
                ties,
                decisive.position,
                decisive.margin,
                replay.cpu_s,
            )
        if not replay.complete:
            return CheckResult(
                Verdict.INCONCLUSIVE,
                f"the walk gave up after {replay.tokens} tokens without reaching the end of the answer",
                replay.tokens,
                ties,
                None,
                None,
                replay.cpu_s,
            )
        tied = (
            f", {ties} near-tie{'s' if ties != 1 else ''} (largest {replay.max_margin:.3g})" if ties else ""
        )
        return CheckResult(
            Verdict.CONSISTENT,
            f"the declared model gives this answer: {replay.tokens} tokens{tied}",
            replay.tokens,
            ties,
            None,
            None,
            replay.cpu_s,
        )

    async def check_evidence(self, evidence: Evidence) -> CheckResult:
        """`check()` the call an `Evidence` records; raises `InvalidEvidence` when it does not hold together."""
        problem = evidence.problem()
        if problem is not None:
            raise InvalidEvidence(problem)
        return await self.check(evidence.profile, evidence.input, evidence.text)

    def _index(self) -> dict[str, LlamaCppRuntime]:
        if self._by_sha256 is None:
            self._by_sha256 = {runtime.model_sha256(): runtime for runtime in self._runtimes}
        return self._by_sha256
