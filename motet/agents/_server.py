"""The agent server: typed capabilities over HTTP, paid on delivery through a payment channel.

Routes:

- `POST /invoke` — `{"capability", "input", "channel", "seq", "signature", "payment"?, "stream"?,
  "idempotencyKey"?}`: validates the input, checks that the call is signed by the channel's payer (or its
  delegated session key) for the channel's next call number, checks the channel, runs the capability, and
  answers the typed output with an EIP-712 receipt and what the payer now owes (`owed`: the cumulative amount
  the next voucher must carry). With `"stream": true` the answer is server-sent events: `token` events, then
  one `result` event (or `error`). A call repeated with the same `idempotencyKey` (and the same capability and
  input) on the same channel gets the answer already delivered, not a second run or charge; a voucher sent
  again is accepted as already held. Together they let a payer that crashed mid-call resume without paying
  twice.
- `POST /pay` — `{"channel", "payment"}`: accept the voucher for delivered calls without making a call.
- `GET /.well-known/agent-registration.json` — the agent's card (ERC-8004 registration file).
- `GET /.well-known/agent-card.json` — the same agent as an A2A card.

Payment on delivery, one call of credit (DESIGN §7): before serving, the channel must exist, pay this agent
in the asset it prices in, be open, and have room for the call's worst-case price; a payer that owes a
delivered call gets `402` until its voucher arrives (in `payment`, or the `X-PAYMENT` header, or `/pay`).
Each channel serves one call at a time, so a payer can never hold more than one unpaid call. A failed or
invalid answer is not owed.

Callers are who they say (O6): a call is served only with the EIP-712 `Call(channelId, seq, requestHash)`
signature of the channel's payer, or of the session key of the delegation the channel was opened under, for
the channel's next call number; it is checked before any work and before any idempotency lookup. A wrong
call number is `409` with `nextSeq`.

Chain reads and transactions on a node run on worker threads, never on the event loop, so a slow node
delays only the requests that wait for it (the in-process embedded chain answers at once, on the loop). While serving, the agent redeems on its own: at once for a channel whose payer
started closing it, and for every channel once what it holds unredeemed passes `redeem_above` or has waited
`redeem_after` seconds.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from eth_account.signers.local import LocalAccount
from pydantic import BaseModel, JsonValue
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from motet._http import serve
from motet._json import dumps
from motet.agents._a2a import a2a_card
from motet.agents._cards import AgentCard
from motet.agents._define import Agent, Capability, run_capability
from motet.agents._tab import Tab
from motet.agents._verifiable import profile_hash, render_messages, response_hash
from motet.agents._wire import (
    HTTPProblem,
    call_seq,
    call_signature,
    channel_id_of,
    client_of,
    header_payment,
    idempotency_key,
    json_body,
    problem_response,
    sse_event,
    usage_json,
)
from motet.chain import Chain
from motet.errors import (
    ChainError,
    ChannelNotFound,
    ContextOverflow,
    InvalidAgentDefinition,
    InvalidAgentInput,
    InvalidCallSignature,
    InvalidModelOutput,
    InvalidVoucher,
    ModelRuntimeError,
    MotetError,
    UnknownCapability,
)
from motet.payments import (
    CALL_TYPE,
    VOUCHER_TYPE,
    ChannelClient,
    ChannelState,
    Ledger,
    ReceiptDomain,
    ReceiptSigner,
    Redemption,
    Voucher,
    content_hash,
    model_ref_hash,
    recover_call_signer,
    request_hash,
)
from motet.payments._delegation import read_delegation
from motet.registry import Registry
from motet.runtimes import ModelRef
from motet.settings import Settings

log = logging.getLogger("motet.agents.server")

T = TypeVar("T")


class AgentServer:
    """Serves one `Agent` over HTTP for `account`, which receives payments and signs receipts.

    Args:
        agent: what to serve.
        chain: where the payment channels live.
        account: the payee of channels and the signer of receipts (the agent's payout address).
        url: the public base URL written into the card; default the address it listens on.
        ledger: where received vouchers are kept (redeem them with `ChannelClient.redeem`).
        tab: SQLite path for deliveries owed; default in memory.
        channel_ttl: seconds a channel's on-chain state is trusted before it is read again. What can change
            on chain is safe to trust late (a deposit only grows, and a short one is read again at once) except
            a payer starting to close: the watcher sees its `ChannelClosing` event within `watch_interval` and
            forgets the state, so the next call reads it and is refused.
        agent_id, registry: the agent's registration, shown in the card once known.
        redeem_above, redeem_after, watch_interval: when a running server redeems on its own; default the
            chain's `Settings` (`redeem_above`, `redeem_after`, `watch_interval`).
    """

    def __init__(
        self,
        agent: Agent,
        *,
        chain: Chain,
        account: LocalAccount,
        url: str | None = None,
        ledger: Ledger | None = None,
        tab: str | Path = ":memory:",
        channel_ttl: float = 30.0,
        agent_id: int | None = None,
        registry: str | None = None,
        redeem_above: int | None = None,
        redeem_after: float | None = None,
        watch_interval: float | None = None,
    ) -> None:
        settings: Settings = chain.settings
        self.agent = agent
        self.chain = chain
        self.account = account
        self.url = url
        self.channels = ChannelClient(chain, account, ledger)
        self.receipts = ReceiptSigner(
            bytes(account.key), ReceiptDomain(chain.chain_id, self.channels.contract.address)
        )
        self.tab = Tab(tab, chain.chain_id, self.channels.contract.address)
        self.channel_ttl = channel_ttl
        self.agent_id = agent_id
        self.registry = registry
        self.redeem_above = settings.redeem_above if redeem_above is None else redeem_above
        self.redeem_after = settings.redeem_after if redeem_after is None else redeem_after
        self.watch_interval = settings.watch_interval if watch_interval is None else watch_interval
        self.redemptions: list[Redemption] = []
        """Every redeem transaction the running server sent on its own."""
        self._states: dict[int, tuple[float, ChannelState]] = {}
        self._session_keys: dict[bytes, str] = {}
        self._busy: set[int] = set()
        self._unredeemed_since: dict[int, float] = {}
        self._redeeming = asyncio.Lock()
        self.app = Starlette(
            routes=[
                Route("/invoke", self._invoke, methods=["POST"]),
                Route("/pay", self._pay, methods=["POST"]),
                Route("/.well-known/agent-registration.json", self._card, methods=["GET"]),
                Route("/.well-known/agent-card.json", self._a2a_card, methods=["GET"]),
            ]
        )

    # -- the card -------------------------------------------------------------------------------------

    def card(self) -> AgentCard:
        """The agent's card as this server publishes it."""
        if self.url is None:
            raise RuntimeError("the server has no URL yet: pass url= or start it with `running()`")
        registrations = []
        if self.agent_id is not None and self.registry is not None:
            registrations.append(
                {"agentId": self.agent_id, "agentRegistry": f"eip155:{self.chain.chain_id}:{self.registry}"}
            )
        return self.agent.card(
            self.url, signer=self.account.address, registrations=registrations, model_ref=self._model_ref()
        )

    def _model_ref(self) -> ModelRef | None:
        ref = getattr(self.agent.runtime, "model_ref", None)
        return ref if isinstance(ref, ModelRef) else None

    async def _card(self, request: Request) -> Response:
        return Response(self.card().to_json(), media_type="application/json")

    async def _a2a_card(self, request: Request) -> Response:
        assert self.url is not None
        return JSONResponse(a2a_card(self.card(), self.url))

    async def register(self, registry: Registry, *, stake: int = 0) -> int:
        """Register the served agent (its card names this server's URL and model) with `stake` (wei), and
        return its id. A coroutine like `Agent.register`: `agent_id = await server.register(registry)`."""
        if self.url is None:
            raise RuntimeError("start the server (`running()`) or pass url= before registering")
        await self._load()
        try:
            self.agent_id = await self.agent.register(
                registry, url=self.url, account=self.account, stake=stake, model_ref=self._model_ref()
            )
        except MotetError:
            raise
        except Exception as exc:
            raise ChainError(f"the node failed: {type(exc).__name__}: {exc}") from exc
        self.registry = registry.contract.address
        return self.agent_id

    async def _load(self) -> None:
        load = getattr(self.agent.runtime, "load", None)
        if load is not None:
            await load()  # the card names the model's hash: load it before the first visitor

    # -- serving --------------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
        """Serve on `host:port` (0: a free port) in this event loop; yields the base URL.

        While it serves, a background task redeems what the agent holds when a payer starts closing a
        channel, or when the unredeemed total passes `redeem_above` or `redeem_after` seconds."""
        await self._load()
        now = time.monotonic()
        for voucher in self.channels.ledger.unredeemed(self.channels.domain):
            self._unredeemed_since.setdefault(voucher.channel_id, now)  # held from before: counts from now
        async with serve(self.app, host, port, "agent server") as base:
            if self.url is None:
                self.url = base
            watcher = asyncio.create_task(self._watch())
            try:
                yield base
            finally:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher

    async def _chain(self, call: Callable[[], T]) -> T:
        """Run a blocking chain read or transaction on a worker thread, not on the event loop; a failure of
        the node (not a motet error) is a `ChainError`."""
        try:
            return await self.chain.off_loop(call)
        except MotetError:
            raise
        except Exception as exc:
            raise ChainError(f"the node failed: {type(exc).__name__}: {exc}") from exc

    # -- redeeming on its own -------------------------------------------------------------------------

    async def _watch(self) -> None:
        """Poll the chain for channels starting to close, and redeem past the amount or age thresholds."""
        block: int | None = None
        while True:
            try:
                if block is None:
                    start = await self._chain(lambda: int(self.chain.w3.eth.block_number))
                    await self._redeem_closing(None)  # channels that started closing while it was down
                    block = start
                else:
                    block = await self._watch_once(block)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("watching channels failed; trying again in %ss", self.watch_interval)
            await asyncio.sleep(self.watch_interval)

    async def _watch_once(self, from_block: int) -> int:
        """One poll: `ChannelClosing` events since `from_block`, then the thresholds. Returns the next block."""
        latest = await self._chain(lambda: int(self.chain.w3.eth.block_number))
        closing: set[int] = set()
        if latest >= from_block:
            events = await self._chain(
                lambda: self.channels.contract.events.ChannelClosing().get_logs(
                    from_block=from_block, to_block=latest
                )
            )
            closing = {int(event["args"]["channel_id"]) for event in events}
        for channel_id in closing:  # read again at the next call, which is then refused
            self._states.pop(channel_id, None)
        if closing:
            await self._redeem_closing(closing)
        await self._redeem_if_due()
        return latest + 1

    def _held(self) -> list[Voucher]:
        return self.channels.ledger.unredeemed(self.channels.domain)

    async def _redeem_closing(self, closing: set[int] | None) -> None:
        """Redeem what is held on channels that are closing (`None`: read the state of every held channel)."""
        held = self._held()
        if closing is None:
            closing = set()
            for voucher in held:
                state = await self._state(voucher.channel_id, refresh=True)
                if state.closing:
                    closing.add(voucher.channel_id)
        due = [voucher for voucher in held if voucher.channel_id in closing]
        if due:
            log.info(
                "channels %s are closing: redeeming what they owe", sorted(hex(v.channel_id) for v in due)
            )
            await self._redeem(due)

    async def _redeem_if_due(self) -> None:
        held = self._held()
        if not held:
            return
        now = time.monotonic()
        oldest = min(self._unredeemed_since.get(v.channel_id, now) for v in held)
        total = 0
        for voucher in held:
            cached = self._states.get(voucher.channel_id)
            total += voucher.cumulative_amount - (cached[1].redeemed if cached else 0)
        if total >= self.redeem_above or now - oldest >= self.redeem_after:
            log.info("redeeming %d vouchers (%d held, the oldest for %.0fs)", len(held), total, now - oldest)
            await self._redeem(held)

    async def _redeem(self, vouchers: list[Voucher]) -> list[Redemption]:
        async with self._redeeming:
            done = await self._chain(lambda: self.channels.redeem(vouchers))
        for voucher in vouchers:
            self._unredeemed_since.pop(voucher.channel_id, None)
            self._states.pop(voucher.channel_id, None)
        self.redemptions.extend(done)
        return done

    # -- payment checks -------------------------------------------------------------------------------

    async def _state(self, channel_id: int, *, refresh: bool = False) -> ChannelState:
        cached = self._states.get(channel_id)
        now = time.monotonic()
        if cached is not None and not refresh and now - cached[0] < self.channel_ttl:
            return cached[1]
        state = await self._chain(lambda: self.channels.channel(channel_id))
        self._states[channel_id] = (now, state)
        return state

    def _paid(self, channel_id: int) -> int:
        voucher = self.channels.ledger.highest_received(self.channels.domain, channel_id)
        return voucher.cumulative_amount if voucher is not None else 0

    def _owed(self, channel_id: int) -> int:
        """The cumulative amount the payer owes on this channel for delivered calls."""
        return max(self.tab.last(channel_id)[1], self._paid(channel_id))

    def _requirements(self, reason: str, price: int, channel_id: int | None) -> HTTPProblem:
        owed = self._owed(channel_id) if channel_id is not None else 0
        accepts = {
            "scheme": "motet-channel",
            "network": f"eip155:{self.chain.chain_id}",
            "maxAmountRequired": str(price),
            "resource": f"{self.url}/invoke",
            "description": f"one call to {self.agent.name}, paid on delivery by a voucher",
            "mimeType": "application/json",
            "payTo": self.account.address,
            "asset": self.agent.asset,
            "maxTimeoutSeconds": 300,
            "extra": {
                "channels": self.channels.contract.address,
                "channel": None if channel_id is None else hex(channel_id),
                "owed": str(owed),
                "paid": str(self._paid(channel_id)) if channel_id is not None else "0",
                "voucher": {"domain": self.channels.domain.typed_data_domain(), "type": VOUCHER_TYPE},
                "call": {"domain": self.channels.domain.typed_data_domain(), "type": CALL_TYPE},
            },
        }
        problem = HTTPProblem(402, reason, x402Version=1, accepts=[accepts])
        encoded = base64.b64encode(json.dumps(problem.body, separators=(",", ":")).encode()).decode()
        problem.headers["PAYMENT-REQUIRED"] = encoded
        return problem

    async def _accept_payment(self, channel_id: int, payment: object, payer_hint: str) -> None:
        """Verify and record a voucher paying this agent on `channel_id`; 400 when it is not valid."""
        if not isinstance(payment, dict):
            raise HTTPProblem(400, "payment must be a voucher object (chainId, contract, channelId, ...)")
        try:
            voucher = Voucher.from_dict(payment)
            if voucher.channel_id != channel_id:
                raise InvalidVoucher(
                    f"the voucher is for channel {hex(voucher.channel_id)}, the call for {hex(channel_id)}"
                )
            if voucher.domain != self.channels.domain:
                raise InvalidVoucher(
                    f"the voucher is for chain {voucher.domain.chain_id} contract {voucher.domain.contract}, "
                    f"this agent is paid on chain {self.chain.chain_id} contract {self.channels.contract.address}"
                )
            held = self.channels.ledger.highest_received(self.channels.domain, channel_id)
            if held is not None and held == voucher:
                return  # the same voucher again (a payer resuming after a crash): already held
            if self.channels.verifies_offline(voucher):
                self.channels.receive(voucher)  # no chain read: a signature check and a commit, on the loop
            else:
                await self._chain(lambda: self.channels.receive(voucher))
            self._unredeemed_since.setdefault(channel_id, time.monotonic())
        except InvalidVoucher as exc:
            log.warning("rejected a voucher on channel %s from %s: %s", hex(channel_id), payer_hint, exc)
            raise HTTPProblem(400, f"invalid voucher: {exc}", field="payment") from exc

    async def _payable(self, channel_id: int, price: int) -> ChannelState:
        """The channel's state; 402 unless it exists, pays this agent, and pays in the agent's asset."""
        try:
            state = await self._state(channel_id)
        except ChannelNotFound:
            raise self._requirements(
                f"no channel {hex(channel_id)}: open one to {self.account.address}", price, None
            ) from None
        if state.payee != self.account.address:
            raise self._requirements(
                f"channel {hex(channel_id)} pays {state.payee}, not this agent ({self.account.address})",
                price,
                None,
            )
        if state.asset.lower() != self.agent.asset.lower():
            raise self._requirements(
                f"channel {hex(channel_id)} holds the asset {state.asset}; this agent is paid in "
                f"{self.agent.asset}: open a channel in that asset",
                price,
                None,
            )
        return state

    async def _check_caller(self, state: ChannelState, seq: int, digest: bytes, signature: bytes) -> None:
        """403 unless the call is signed by the channel's payer, or its delegation's session key."""
        try:
            signer = recover_call_signer(self.channels.domain, state.channel_id, seq, digest, signature)
        except InvalidCallSignature as exc:
            raise HTTPProblem(400, f"invalid call signature: {exc}", field="signature") from exc
        if state.delegation is None:
            expected = state.payer
        else:
            expected = await self._session_key(state.delegation)
        if signer != expected:
            raise HTTPProblem(
                403,
                f"the call is not signed by the payer of channel {hex(state.channel_id)} (or its session key)",
                field="signature",
            )

    async def _session_key(self, delegation_id: bytes) -> str:
        known = self._session_keys.get(delegation_id)
        if known is None:  # a delegation's session key never changes: read it once
            delegation = await self._chain(lambda: read_delegation(self.channels.contract, delegation_id))
            if delegation is None:
                raise HTTPProblem(403, f"delegation 0x{delegation_id.hex()} is not registered")
            known = self._session_keys[delegation_id] = delegation.session_key
        return known

    async def _check_channel(self, channel_id: int, price: int) -> ChannelState:
        """402 unless the channel owes nothing, is open and has room for `price`."""
        state = await self._state(channel_id)
        owed, paid = self._owed(channel_id), self._paid(channel_id)
        if owed > paid:
            raise self._requirements(
                f"channel {hex(channel_id)} owes {owed - paid:,} wei for a delivered call: send a voucher for {owed:,} wei",
                price,
                channel_id,
            )
        if state.settled or state.closing or state.deposit - owed < price:
            state = await self._state(channel_id, refresh=True)  # a top-up may have landed
        if state.settled or state.closing:
            raise self._requirements(
                f"channel {hex(channel_id)} is closing or settled: open a new one", price, None
            )
        if state.deposit - owed < price:
            raise self._requirements(
                f"channel {hex(channel_id)} has {state.deposit - owed:,} wei left, a call costs up to {price:,} wei: top it up",
                price,
                channel_id,
            )
        return state

    # -- routes ---------------------------------------------------------------------------------------

    async def _pay(self, request: Request) -> Response:
        try:
            body = await json_body(request)
            unknown = set(body) - {"channel", "payment"}
            if unknown:
                raise HTTPProblem(400, f"unknown field {sorted(unknown)[0]!r}", field=sorted(unknown)[0])
            channel_id = channel_id_of(body.get("channel"))
            await self._accept_payment(channel_id, body.get("payment"), client_of(request))
            return JSONResponse({"paid": str(self._paid(channel_id)), "owed": str(self._owed(channel_id))})
        except HTTPProblem as problem:
            return problem_response(problem)
        except Exception as exc:
            return _unexpected(exc, "/pay")

    async def _invoke(self, request: Request) -> Response:
        try:
            call = await self._admit(request)
        except HTTPProblem as problem:
            return problem_response(problem)
        except Exception as exc:
            return _unexpected(exc, "/invoke")
        if isinstance(call, Response):
            return call
        if call.stream:
            return StreamingResponse(self._stream(call), media_type="text/event-stream")
        try:
            return Response(dumps(await self._deliver(call, None)), media_type="application/json")
        except HTTPProblem as problem:
            return problem_response(problem)
        finally:
            self._busy.discard(call.channel_id)

    async def _admit(self, request: Request) -> _Call | Response:
        """Every check of a call, in order, before any work: its body and input, the channel, the caller's
        signature and call number, the voucher, the idempotency key, and room on the channel.

        Returns the call to run (its channel then marked busy) or the answer already delivered for its key."""
        body = await json_body(request)
        unknown = set(body) - _INVOKE_FIELDS
        if unknown:
            raise HTTPProblem(400, f"unknown field {sorted(unknown)[0]!r}", field=sorted(unknown)[0])
        name = body.get("capability")
        if not isinstance(name, str):
            raise HTTPProblem(400, "capability must be a capability name", field="capability")
        try:
            capability = self.agent.get(name)
            parsed = capability.parse_input(body.get("input"))
        except UnknownCapability as exc:
            raise HTTPProblem(404, str(exc), field="capability") from exc
        except InvalidAgentInput as exc:
            raise HTTPProblem(422, str(exc), field=f"input.{exc.field}", problem=exc.problem) from exc
        if capability.verifiable is not None:
            _check_verifiable_input(capability, parsed, body.get("input"))
        price = self.agent.worst_case_price(name)
        if body.get("channel") is None:
            raise self._requirements(
                f"no channel: open one to {self.account.address} and name it", price, None
            )
        channel_id = channel_id_of(body["channel"])
        stream = body.get("stream")
        if stream is not None and not isinstance(stream, bool):
            raise HTTPProblem(400, "stream must be true or false", field="stream")
        key = idempotency_key(body.get("idempotencyKey"))
        seq, signature = call_seq(body.get("seq")), call_signature(body.get("signature"))
        payment = body.get("payment") or header_payment(request)
        state = await self._payable(channel_id, price)
        try:
            digest = request_hash(name, body["input"], channel_id, seq)
        except (TypeError, ValueError) as exc:
            raise HTTPProblem(400, f"the input cannot be hashed: {exc}", field="input") from exc
        await self._check_caller(state, seq, digest, signature)
        if payment is not None:
            await self._accept_payment(channel_id, payment, client_of(request))
        # From here to marking the channel busy nothing awaits: the call number cannot move under us.
        next_seq = self.tab.last(channel_id)[0] + 1
        if seq != next_seq:
            raise HTTPProblem(
                409, f"call number {seq} is not the channel's next: sign call {next_seq}", nextSeq=next_seq
            )
        if key is not None and (delivered := self.tab.answer(channel_id, key)) is not None:
            bound, answer = delivered
            if bound is not None and bound != _binding(name, body["input"]):
                raise HTTPProblem(
                    409,
                    "this idempotencyKey was used for another request on the channel: use a new key",
                    field="idempotencyKey",
                )
            # Delivered before: the same answer, not a second run or charge.
            if stream:
                return StreamingResponse(iter([sse_event("result", answer)]), media_type="text/event-stream")
            return Response(dumps(answer), media_type="application/json")
        if channel_id in self._busy:
            raise HTTPProblem(409, f"a call on channel {hex(channel_id)} is in progress: wait for its answer")
        self._busy.add(channel_id)
        try:
            await self._check_channel(channel_id, price)
        except BaseException:
            self._busy.discard(channel_id)
            raise
        return _Call(capability, parsed, body["input"], channel_id, seq, key, bool(stream), digest)

    async def _stream(self, call: _Call) -> AsyncIterator[str]:
        tokens: asyncio.Queue[str | None] = asyncio.Queue()
        job = asyncio.create_task(self._deliver(call, tokens.put_nowait))
        job.add_done_callback(lambda _: tokens.put_nowait(None))
        try:
            while (text := await tokens.get()) is not None:
                yield sse_event("token", {"text": text})
            try:
                yield sse_event("result", job.result())
            except HTTPProblem as problem:
                yield sse_event("error", {"status": problem.status, **problem.body})
        finally:
            job.cancel()
            self._busy.discard(call.channel_id)

    async def _deliver(self, call: _Call, on_token: Callable[[str], None] | None) -> dict[str, Any]:
        """Run the call, sign its receipt and add it to the tab; an answer that fails is not owed."""
        capability = call.capability
        try:
            done = await run_capability(capability, call.parsed, self.agent.runtime, on_token=on_token)
        except ContextOverflow as exc:
            problem = f"too long for the model: {exc}"
            raise HTTPProblem(413, f"input {problem}", field="input", problem=problem) from exc
        except InvalidModelOutput as exc:
            log.warning("%s produced invalid output; not charged: %s", capability.name, exc)
            if exc.cut_off:  # the caller cannot raise max_tokens: say what they can do
                raise HTTPProblem(
                    502,
                    f"the answer was cut off at {capability.name}'s limit of {capability.max_tokens:,} tokens "
                    "before it was complete, so nothing is owed: choose another agent for it, or ask this "
                    "agent's operator to raise its max_tokens",
                ) from exc
            raise HTTPProblem(502, f"the model's answer was not valid, nothing is owed: {exc}") from exc
        except ModelRuntimeError as exc:
            raise HTTPProblem(503, f"the model failed, nothing is owed: {exc}") from exc
        except Exception as exc:
            incident = secrets.token_hex(6)
            log.exception("%s failed (incident %s); not charged", capability.name, incident)
            raise HTTPProblem(
                500, f"the agent failed, nothing is owed (incident {incident})", incident=incident
            ) from exc
        model_ref_digest, response_digest = model_ref_hash(done.model_ref), content_hash(done.output)
        if capability.verifiable is not None:
            # The receipt commits to the profile on the model that really answered, and to the raw text.
            try:
                profile = capability.profile(done.model_ref)
            except InvalidAgentDefinition as exc:
                incident = secrets.token_hex(6)
                log.error("%s cannot be verifiable (incident %s): %s", capability.name, incident, exc)
                raise HTTPProblem(
                    500, f"the agent failed, nothing is owed (incident {incident})", incident=incident
                ) from exc
            assert profile is not None
            model_ref_digest, response_digest = profile_hash(profile), response_hash(done.output, done.text)
        price = self.agent.price_of(done.usage)
        last_seq, total = self.tab.last(call.channel_id)
        assert last_seq + 1 == call.seq, "one call at a time per channel"
        total = max(total, self._paid(call.channel_id)) + price
        receipt = self.receipts.sign(
            call.request_hash,
            response_digest,
            price,
            call.channel_id,
            call.seq,
            model_ref_digest,
        )
        answer = {
            "capability": capability.name,
            "output": done.output,
            "price": str(price),
            "owed": str(total),
            "seq": call.seq,
            "usage": usage_json(done.usage),
            "model": dict(_model_fields(done.model_ref)),
            "latencyS": round(done.latency_s, 4),
            "receipt": receipt.to_dict(),
            **({"text": done.text} if done.text is not None else {}),
        }
        binding = _binding(capability.name, call.raw_input)
        self.tab.record(call.channel_id, call.seq, price, total, call.key, binding, answer)
        return answer


_INVOKE_FIELDS = frozenset(
    {"capability", "input", "channel", "seq", "signature", "payment", "stream", "idempotencyKey"}
)


def _check_verifiable_input(capability: Capability[Any, Any], parsed: BaseModel, raw: object) -> None:
    """422 unless the input as sent renders the same prompt as the validated input: a checker rebuilds the
    prompt from the input the receipt's request hash commits to, so defaults and coercions must not change it."""
    parts = capability.verifiable
    assert parts is not None
    canonical = parsed.model_dump(mode="json")
    problem = "send the input as a JSON object"
    if isinstance(raw, dict):
        expected = render_messages(parts.instructions, parts.template, canonical)
        try:
            sent = render_messages(parts.instructions, parts.template, raw)
        except InvalidAgentInput as exc:
            problem = f"{exc.field} is {exc.problem}"
        else:
            if sent == expected:
                return
            problem = "a verifiable capability's prompt is rebuilt from the input as sent, which differs"
    shown = json.dumps(canonical, ensure_ascii=False)[:300]
    raise HTTPProblem(
        422,
        f"invalid input for {capability.name!r}: input: {problem}; send it complete as its schema "
        f"writes it: {shown}",
        field="input",
        problem=f"{problem}; send it complete as its schema writes it",
    )


@functools.lru_cache(maxsize=64)
def _model_fields(ref: ModelRef) -> tuple[tuple[str, Any], ...]:
    return tuple(asdict(ref).items())


def _binding(capability: str, input: object) -> str:
    """What an idempotency key is bound to: the capability and its input (the call number changes when a
    payer resumes, the request does not)."""
    return "0x" + content_hash({"capability": capability, "input": input}).hex()


def _unexpected(exc: Exception, route: str) -> Response:
    """An error no check expected: logged in full with an incident id, answered without its text."""
    incident = secrets.token_hex(6)
    if isinstance(exc, ChainError):
        log.warning("%s: the chain could not be read (incident %s): %s", route, incident, exc)
        return problem_response(
            HTTPProblem(
                503, f"the chain could not be read: try again (incident {incident})", incident=incident
            )
        )
    if not isinstance(exc, MotetError):
        log.exception("%s failed (incident %s)", route, incident)
    else:
        log.warning("%s failed (incident %s): %s", route, incident, exc)
    return problem_response(HTTPProblem(500, f"the agent failed (incident {incident})", incident=incident))


@dataclass(frozen=True)
class _Call:
    """A paid call that passed the checks: what to run, on which channel, as which call number, under which
    idempotency key."""

    capability: Capability[Any, Any]
    parsed: BaseModel
    raw_input: JsonValue
    channel_id: int
    seq: int
    key: str | None
    stream: bool
    request_hash: bytes
    """What the caller signed and the receipt commits to."""
