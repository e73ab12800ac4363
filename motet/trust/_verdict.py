"""The three answers a check, a verifier agent and a validator can give about one paid call."""

from __future__ import annotations

from enum import IntEnum


class Verdict(IntEnum):
    """What re-running a verifiable call says about the agent's answer.

    The values are the codes the validation contract records (`reveal(dispute, verdict, salt)`); 0 is "no
    verdict" on chain and never a `Verdict`.

    Example:
        >>> Verdict.CHEAT.label, int(Verdict.CHEAT)
        ('cheat', 2)
        >>> Verdict.parse("consistent")
        <Verdict.CONSISTENT: 1>
    """

    CONSISTENT = 1
    """The declared model, re-run under the declared profile, gives the answer (near-ties allowed)."""
    CHEAT = 2
    """The answer departs from the declared model's decisive choice: the agent did not run what it signed."""
    INCONCLUSIVE = 3
    """The check cannot decide (no runtime for the model, evidence that cannot be re-run): never a slash."""

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: str | int) -> Verdict:
        """A verdict from its label or its on-chain code; `ValueError` names the allowed ones."""
        if isinstance(value, int):
            return cls(value)
        try:
            return cls[value.upper()]
        except KeyError:
            raise ValueError(
                f"{value!r} is not a verdict: use one of {', '.join(v.label for v in cls)}"
            ) from None
