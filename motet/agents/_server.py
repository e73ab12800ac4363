"""The agent server: typed capabilities over HTTP, paid on delivery through a payment channel.

Routes:

- `POST /invoke` — `{"capability", "input", "channel", "payment"?, "stream"?, "idempotencyKey"?}`: validates the
  input, checks the payer's channel, runs the capability, and answers the typed output with an EIP-712
  receipt and what the payer now owes (`owed`: the cumulative amount the next voucher must carry). With
  `"stream": true` the answer is server-sent events: `token` events, then one `result` event (or `error`).
  A call repeated with the same `idempotencyKey` on the same channel gets the answer already delivered, not
  a second run or charge; a voucher sent again is accepted as already held. Together they let a payer that
  crashed mid-call resume without paying twice.
- `POST /pay` — `{"channel", "payment"}`: accept the voucher for delivered calls without making a call.
- `GET /.well-known/agent-registration.json` — the agent's card (ERC-8004 registration file).
- `GET /.well-known/agent-card.json` — the same agent as an A2A card.

Payment on delivery, one call of credit (DESIGN §7): before serving, the channel must exist, pay this agent,
be open, and have room for the call's worst-case price; a payer that owes a delivered call gets `402` until
its voucher arrives (in `payment`, or the `X-PAYMENT` header, or `/pay`). Each channel serves one call at a
time, so a payer can never hold more than one unpaid call. A failed or invalid answer is not owed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from pydantic import BaseModel, JsonValue
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from motet._http import serve
from motet.agents._a2a import a2a_card
from motet.agents._cards import AgentCard
from motet.agents._define import Agent, Capability, run_capability
from motet.agents._tab import Tab
from motet.agents._wire import (
    HTTPProblem,
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
    ChannelNotFound,
    ContextOverflow,
    InvalidAgentInput,
    InvalidModelOutput,
    InvalidVoucher,
    ModelRuntimeError,
    UnknownCapability,
)
from motet.payments import (
    VOUCHER_TYPE,
    ChannelClient,
    ChannelState,
    Ledger,
    ReceiptDomain,
    ReceiptSigner,
    Voucher,
    content_hash,
    model_ref_hash,
    request_hash,
)
from motet.registry import Registry
from motet.runtimes import ModelRef

log = logging.getLogger("motet.agents.server")


class AgentServer:
    """Serves one `Agent` over HTTP for `account`, which receives payments and signs receipts.

    Args:
        agent: what to serve.
        chain: where the payment channels live.
        account: the payee of channels and the signer of receipts (the agent's payout address).
        url: the public base URL written into the card; default the address it listens on.
        ledger: where received vouchers are kept (redeem them with `ChannelClient.redeem`).
        tab: SQLite path for deliveries owed; default in memory.
        channel_ttl: seconds a channel's on-chain state is trusted before it is read again.
        agent_id, registry: the agent's registration, shown in the card once known.
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
        channel_ttl: float = 5.0,
        agent_id: int | None = None,
        registry: str | None = None,
    ) -> None:
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
        self._states: dict[int, tuple[float, ChannelState]] = {}
        self._busy: set[int] = set()
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
        """Register the served agent (its card names this server's URL and model) and return its id."""
        if self.url is None:
            raise RuntimeError("start the server (`running()`) or pass url= before registering")
        await self._load()
        self.agent_id = self.agent.register(
            registry, url=self.url, account=self.account, stake=stake, model_ref=self._model_ref()
        )
        self.registry = registry.contract.address
        return self.agent_id

    async def _load(self) -> None:
        load = getattr(self.agent.runtime, "load", None)
        if load is not None:
            await load()  # the card names the model's hash: load it before the first visitor

    # -- serving --------------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
        """Serve on `host:port` (0: a free port) in this event loop; yields the base URL."""
        await self._load()
        async with serve(self.app, host, port, "agent server") as base:
            if self.url is None:
                self.url = base
            yield base

    # -- payment checks -------------------------------------------------------------------------------

    def _state(self, channel_id: int, *, refresh: bool = False) -> ChannelState:
        cached = self._states.get(channel_id)
        now = time.monotonic()
        if cached is not None and not refresh and now - cached[0] < self.channel_ttl:
            return cached[1]
        state = self.channels.channel(channel_id)
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
            },
        }
        problem = HTTPProblem(402, reason, x402Version=1, accepts=[accepts])
        encoded = base64.b64encode(json.dumps(problem.body, separators=(",", ":")).encode()).decode()
        problem.headers["PAYMENT-REQUIRED"] = encoded
        return problem

    def _accept_payment(self, channel_id: int, payment: object, payer_hint: str) -> None:
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
            self.channels.receive(voucher)
        except InvalidVoucher as exc:
            log.warning("rejected a voucher on channel %s from %s: %s", hex(channel_id), payer_hint, exc)
            raise HTTPProblem(400, f"invalid voucher: {exc}", field="payment") from exc

    def _check_channel(self, channel_id: int, price: int) -> ChannelState:
        """402 unless the channel pays this agent, is open, owes nothing and has room for `price`."""
        try:
            state = self._state(channel_id)
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
        owed, paid = self._owed(channel_id), self._paid(channel_id)
        if owed > paid:
            raise self._requirements(
                f"channel {hex(channel_id)} owes {owed - paid} for a delivered call: send a voucher for {owed}",
                price,
                channel_id,
            )
        if state.settled or state.closing or state.deposit - owed < price:
            state = self._state(channel_id, refresh=True)  # a top-up may have landed
        if state.settled or state.closing:
            raise self._requirements(
                f"channel {hex(channel_id)} is closing or settled: open a new one", price, None
            )
        if state.deposit - owed < price:
            raise self._requirements(
                f"channel {hex(channel_id)} has {state.deposit - owed} left, a call costs up to {price}: top it up",
                price,
                channel_id,
            )
        return state

    # -- routes ---------------------------------------------------------------------------------------

    async def _pay(self, request: Request) -> Response:
        try:
            body = await json_body(request)
            channel_id = channel_id_of(body.get("channel"))
            self._accept_payment(channel_id, body.get("payment"), client_of(request))
            return JSONResponse({"paid": str(self._paid(channel_id)), "owed": str(self._owed(channel_id))})
        except HTTPProblem as problem:
            return problem_response(problem)

    async def _invoke(self, request: Request) -> Response:
        try:
            body = await json_body(request)
            unknown = set(body) - {"capability", "input", "channel", "payment", "stream", "idempotencyKey"}
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
            price = self.agent.worst_case_price(name)
            if body.get("channel") is None:
                raise self._requirements(
                    f"no channel: open one to {self.account.address} and name it", price, None
                )
            channel_id = channel_id_of(body["channel"])
            payment = body.get("payment") or header_payment(request)
            if payment is not None:
                self._accept_payment(channel_id, payment, client_of(request))
            key = idempotency_key(body.get("idempotencyKey"))
            if key is not None and (delivered := self.tab.answer(channel_id, key)) is not None:
                # Delivered before: the same answer, not a second run or charge.
                if body.get("stream"):
                    return StreamingResponse(
                        iter([sse_event("result", delivered)]), media_type="text/event-stream"
                    )
                return JSONResponse(delivered)
            if channel_id in self._busy:
                raise HTTPProblem(
                    409, f"a call on channel {hex(channel_id)} is in progress: wait for its answer"
                )
            self._check_channel(channel_id, price)
        except HTTPProblem as problem:
            return problem_response(problem)
        call = _Call(capability, parsed, body["input"], channel_id, key)
        self._busy.add(channel_id)
        if body.get("stream"):
            return StreamingResponse(self._stream(call), media_type="text/event-stream")
        try:
            return JSONResponse(await self._deliver(call, None))
        except HTTPProblem as problem:
            return problem_response(problem)
        finally:
            self._busy.discard(channel_id)

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
            raise HTTPProblem(502, f"the model's answer was not valid, nothing is owed: {exc}") from exc
        except ModelRuntimeError as exc:
            raise HTTPProblem(503, f"the model failed, nothing is owed: {exc}") from exc
        except Exception as exc:
            log.exception("%s failed; not charged", capability.name)
            raise HTTPProblem(500, f"the agent failed, nothing is owed: {type(exc).__name__}: {exc}") from exc
        price = self.agent.price_of(done.usage)
        seq, total = self.tab.last(call.channel_id)
        seq += 1
        total = max(total, self._paid(call.channel_id)) + price
        receipt = self.receipts.sign(
            request_hash(capability.name, call.raw_input, call.channel_id, seq),
            content_hash(done.output),
            price,
            call.channel_id,
            seq,
            model_ref_hash(done.model_ref),
        )
        answer = {
            "capability": capability.name,
            "output": done.output,
            "price": str(price),
            "owed": str(total),
            "seq": seq,
            "usage": usage_json(done.usage),
            "model": asdict(done.model_ref),
            "latencyS": round(done.latency_s, 4),
            "receipt": receipt.to_dict(),
        }
        self.tab.record(call.channel_id, seq, price, total, call.key, answer)
        return answer


@dataclass(frozen=True)
class _Call:
    """A paid call that passed the checks: what to run, on which channel, under which idempotency key."""

    capability: Capability[Any, Any]
    parsed: BaseModel
    raw_input: JsonValue
    channel_id: int
    key: str | None
