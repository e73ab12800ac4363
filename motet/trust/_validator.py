"""A validator: a staked account that re-runs the disputes it is drawn for and votes on them, on its own.

Each poll it asks the validation contract which unresolved disputes drew it (`Disputes.assigned`) and moves
each one step on, as far as the chain's clock allows:

    check     fetch the evidence from the dispute's URI, check that it is the disputed call (agent, model,
              receipt), and re-run it with its `Checker`: CONSISTENT, CHEAT or INCONCLUSIVE. Evidence that
              does not hold together, a capability that is not verifiable, a model it cannot run and a model
              that fails are INCONCLUSIVE: a validator never calls a cheat it did not see.
    commit    a random salt, kept in a file (mode 0600) before the commitment is sent, so a validator that
              restarts between commit and reveal can still reveal (not revealing costs stake)
    reveal    the same verdict and salt once the reveal window opens
    resolve   once the dispute can be decided; anyone may, the first to try pays the gas

One failing step (a node that does not answer, a reverted transaction) is logged and tried again at the next
poll; the other disputes go on.

Example:
    >>> validator = Validator(chain, account, Checker([LlamaCppRuntime()]))
    >>> validator.register([sha256_of_smollm2], stake=10**15)
    >>> task = asyncio.create_task(validator.run())
    >>> ...
    >>> validator.stop(); await task
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from motet.chain import Chain
from motet.errors import CheckUnavailable, DisputeError, InvalidEvidence, ModelRuntimeError
from motet.payments import ReceiptDomain
from motet.trust._check import Checker, CheckResult
from motet.trust._disputes import Disputes, DisputeState
from motet.trust._evidence import Evidence
from motet.trust._verdict import Verdict

__all__ = ["Validator", "ValidatorEvent"]

log = logging.getLogger("motet.trust.validator")


@dataclass(frozen=True)
class ValidatorEvent:
    """One thing a validator did (or failed to do) about one dispute, for a log or a screen.

    `step` is `drawn`, `checked`, `committed`, `revealed`, `resolved` (by this validator), `decided`
    (resolved by another) or `failed` (`dispute` is None for a failure that is not about one dispute, such as
    the node not answering).
    """

    step: str
    dispute: int | None
    detail: str
    verdict: Verdict | None = None

    def __str__(self) -> str:
        where = f"dispute #{self.dispute}" if self.dispute is not None else "validator"
        return f"{where}: {self.step}: {self.detail}"


@dataclass
class _Vote:
    """What this validator decided on one dispute, kept on disk until the dispute is resolved."""

    verdict: Verdict
    salt: bytes
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.label,
            "salt": "0x" + self.salt.hex(),
            "detail": self.detail,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _Vote:
        return cls(
            Verdict.parse(data["verdict"]),
            bytes.fromhex(str(data["salt"]).removeprefix("0x")),
            str(data.get("detail", "")),
        )


class _VoteStore:
    """Votes by dispute id in one JSON file only its owner may read (the salts are secret until revealed)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._votes: dict[int, _Vote] = {}
        if path.is_file():
            data = json.loads(path.read_text())
            self._votes = {int(key): _Vote.from_json(value) for key, value in data.items()}

    def get(self, dispute: int) -> _Vote | None:
        return self._votes.get(dispute)

    def put(self, dispute: int, vote: _Vote) -> None:
        self._votes[dispute] = vote
        self._save()

    def disputes(self) -> list[int]:
        return list(self._votes)

    def drop(self, dispute: int) -> None:
        if self._votes.pop(dispute, None) is not None:
            self._save()

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_suffix(".tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({str(k): v.to_json() for k, v in self._votes.items()}, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(self.path)


class Validator:
    """Watches for the disputes `account` is drawn for, re-runs them with `checker`, commits, reveals and
    resolves them.

    Args:
        chain: where the validation contract is.
        account: the validator's staked account (see `register`).
        checker: re-runs the models the validator declared; one runtime per model.
        state_dir: where its votes (verdicts and salts) are kept between commit and reveal; default
            `chain.settings.home / "validator"`. One file per chain and account, mode 0600.
        poll_interval: seconds between looks at the chain in `run()`.
        on_event: called with each `ValidatorEvent` as it happens (the command line prints them).
    """

    def __init__(
        self,
        chain: Chain,
        account: LocalAccount,
        checker: Checker,
        *,
        state_dir: Path | None = None,
        poll_interval: float = 2.0,
        on_event: Callable[[ValidatorEvent], None] | None = None,
    ) -> None:
        self.chain = chain
        self.account = account
        self.checker = checker
        self.disputes = Disputes(chain, account)
        self.poll_interval = poll_interval
        self.events: list[ValidatorEvent] = []
        """Everything this validator did, in order."""
        self._on_event = on_event
        folder = state_dir if state_dir is not None else chain.settings.home / "validator"
        self._store = _VoteStore(folder / f"{chain.chain_id}-{account.address.lower()}.json")
        self._domain: ReceiptDomain | None = None
        self._stopping = threading.Event()
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._seen: set[int] = set()

    def __repr__(self) -> str:
        return f"Validator({self.account.address}, {self.chain!r})"

    @property
    def address(self) -> str:
        return self.account.address

    # -- set up --------------------------------------------------------------------------------------------

    def register(self, models: Sequence[str], stake: int) -> None:
        """Stake `stake` wei and declare `models` (hex GGUF sha256s) as the ones this validator can re-run."""
        unknown = [model for model in models if not self.checker.can_check(model)]
        if unknown:
            raise CheckUnavailable(
                unknown[0],
                f"this validator's checker runs no model with sha256 {unknown[0]}: declare only models it "
                "loads, or give it a runtime for this one",
            )
        self.disputes.register_validator(models, stake)

    # -- the loop ------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Poll every `poll_interval` seconds until `stop()`; a failing poll is logged and tried again."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._stopping.clear()
        while not self._stopping.is_set():
            await self.poll()
            if self._stopping.is_set():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
            self._wake.clear()

    def stop(self) -> None:
        """End `run()` after the step in progress (safe to call from any thread or a signal handler)."""
        self._stopping.set()
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wake.set)

    async def poll(self) -> None:
        """Move every dispute this validator was drawn for one step on, as far as the chain allows.

        Never raises for a failing step: it is reported as a `failed` event and tried again next poll."""
        try:
            assigned = await self.chain.off_loop(self.disputes.assigned, self.account.address)
        except Exception as exc:
            self._failed(None, "looking for disputes", exc)
            return
        for settled in sorted(set(self._store.disputes()) - set(assigned)):
            await self._settled(settled)
        for dispute in assigned:
            if self._stopping.is_set():
                return
            try:
                await self.advance(dispute)
            except Exception as exc:
                self._failed(dispute, "advancing", exc)

    async def advance(self, dispute: int) -> DisputeState:
        """Do what dispute `dispute` is ready for: check and commit, reveal, or resolve. Raises what fails."""
        me = self.account.address
        state = await self.chain.off_loop(self.disputes.state, dispute)
        if dispute not in self._seen:
            self._seen.add(dispute)
            self._emit("drawn", dispute, f"against agent #{state.agent_id}, model {state.model[:12]}…")
        if state.status in ("resolved", "cancelled"):
            # Resolved (by another) between the poll's look at what is assigned and this read: say how it ended
            # now, as the next poll would have if it still held the vote.
            if self._store.get(dispute) is not None:
                self._store.drop(dispute)
                if state.resolved:
                    self._emit("decided", dispute, state.summary(), state.outcome)
            return state
        now = await self.chain.off_loop(self.chain.timestamp)
        vote = self._store.get(dispute)
        if me not in state.committed and state.commit_open(now):
            if vote is None:
                verdict, detail = await self._check(state)
                vote = _Vote(verdict, secrets.token_bytes(32), detail)
                self._store.put(dispute, vote)  # before the commitment: a restart must still reveal it
                self._emit("checked", dispute, detail, verdict)
            await self.chain.off_loop(self.disputes.commit, dispute, vote.verdict, vote.salt)
            self._emit("committed", dispute, f"a hidden {vote.verdict.label}", vote.verdict)
            state = await self.chain.off_loop(self.disputes.state, dispute)
        if vote is not None and me in state.committed and me not in state.revealed and state.reveal_open(now):
            await self.chain.off_loop(self.disputes.reveal, dispute, vote.verdict, vote.salt)
            self._emit("revealed", dispute, vote.verdict.label, vote.verdict)
            state = await self.chain.off_loop(self.disputes.state, dispute)
        if state.resolvable(now):
            try:
                state = await self.chain.off_loop(self.disputes.resolve, dispute)
            except DisputeError:
                state = await self.chain.off_loop(self.disputes.state, dispute)
                if not state.resolved:
                    raise
                return state  # another validator resolved it first
            self._store.drop(dispute)
            self._emit("resolved", dispute, state.summary(), state.outcome)
        return state

    async def _settled(self, dispute: int) -> None:
        """Forget the vote on a dispute that no longer needs it (resolved by another, or cancelled), saying how
        it ended."""
        try:
            state = await self.chain.off_loop(self.disputes.state, dispute)
        except Exception as exc:
            self._failed(dispute, "reading how it ended", exc)
            return
        self._store.drop(dispute)  # its salt is no secret any more
        if state.resolved:
            self._emit("decided", dispute, state.summary(), state.outcome)

    # -- the check -----------------------------------------------------------------------------------------

    async def _check(self, state: DisputeState) -> tuple[Verdict, str]:
        """The verdict on the disputed call and a sentence saying why."""
        try:
            evidence = Evidence.from_uri(state.evidence_uri, self._receipt_domain())
        except InvalidEvidence as exc:
            return Verdict.INCONCLUSIVE, f"the evidence cannot be used: {exc}"
        mismatch = _mismatch(evidence, state)
        if mismatch is not None:
            return Verdict.INCONCLUSIVE, f"the evidence is not of the disputed call: {mismatch}"
        try:
            result: CheckResult = await self.checker.check_evidence(evidence)
        except InvalidEvidence as exc:
            return Verdict.INCONCLUSIVE, f"the evidence does not hold together: {exc}"
        except CheckUnavailable as exc:
            return Verdict.INCONCLUSIVE, f"this validator cannot run the model: {exc}"
        except ModelRuntimeError as exc:
            return Verdict.INCONCLUSIVE, f"this validator's model failed to re-run the call: {exc}"
        return result.verdict, result.detail

    def _receipt_domain(self) -> ReceiptDomain:
        if self._domain is None:
            channels = self.chain.contract("PaymentChannels")
            self._domain = ReceiptDomain(self.chain.chain_id, channels.address)
        return self._domain

    # -- reporting -----------------------------------------------------------------------------------------

    def _emit(self, step: str, dispute: int | None, detail: str, verdict: Verdict | None = None) -> None:
        event = ValidatorEvent(step, dispute, detail, verdict)
        self.events.append(event)
        log.info("%s", event)
        if self._on_event is not None:
            self._on_event(event)

    def _failed(self, dispute: int | None, doing: str, exc: Exception) -> None:
        log.warning("validator %s: %s dispute %s failed", self.account.address, doing, dispute, exc_info=exc)
        self._emit("failed", dispute, f"{doing} failed ({type(exc).__name__}: {exc}); trying again next poll")


def _mismatch(evidence: Evidence, state: DisputeState) -> str | None:
    """Why `evidence` is not the call the dispute is about (None when it is)."""
    if evidence.agent_id != state.agent_id:
        return f"it names agent #{evidence.agent_id}, the dispute agent #{state.agent_id}"
    if evidence.model_sha256.lower() != state.model.lower():
        return f"it names model {evidence.model_sha256}, the dispute {state.model}"
    if evidence.receipt.digest() != state.receipt_digest:
        return "its receipt is not the disputed receipt (another EIP-712 digest)"
    return None
