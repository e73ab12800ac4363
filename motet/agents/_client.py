"""`AgentClient`: call an agent over HTTP, check what comes back, and say what is owed.

Every call is signed (O6): the client holds the channel's signing key (the payer's, or a delegation's session
key) as a `CallSigner`, signs `Call(channelId, seq, requestHash)` for the channel's next call number, and keeps
that number per channel (learning it from the agent's `409` with `nextSeq` when it does not know it).

The client does not pay by itself: it returns a `PaidInvocation` (typed output, verified receipt, price, and
the cumulative amount owed), and the caller (the composer, or code like the example below) signs a voucher
for `owed` once it accepts the result, and hands it over with `pay()` or with the next call. An answer that
breaks a bound (a stream that stalls or never ends, more bytes than `max_answer_bytes`, tokens past
`max_tokens`, a price above `max_price` or above what the card charges for the usage, a receipt that is not
the agent's for this call on this chain) raises, so nothing is signed for it.

Example (with a running agent and an open channel):

    signer = CallSigner(payer_key, payer.domain)
    async with AgentClient("http://127.0.0.1:8000", signer=signer) as client:
        call = await client.invoke("summarize", {"text": "..."}, channel=channel_id)
        voucher = payer.sign(channel_id, call.owed)
        await client.pay(channel_id, voucher)
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Generic, Self, overload

import aiohttp
from pydantic import BaseModel, JsonValue, ValidationError
from typing_extensions import TypeVar

from motet._json import dumps, loads
from motet.agents._cards import AgentCard
from motet.agents._define import Invocation
from motet.agents._fetch import fetch_card
from motet.agents._schemas import first_mismatch
from motet.agents._verifiable import profile_hash, response_hash
from motet.errors import (
    AgentCallFailed,
    AgentConnectionLost,
    AgentLimitExceeded,
    AgentOutputMismatch,
    AgentTimeout,
    InvalidAgentInput,
    InvalidCallSignature,
    InvalidReceipt,
    PaymentRequired,
    UnknownCapability,
)
from motet.payments import (
    CallSigner,
    ChannelDomain,
    Receipt,
    ReceiptDomain,
    Voucher,
    canonical_json,
    content_hash,
    model_ref_hash,
    request_hash,
    verify_receipt,
)
from motet.runtimes import ModelRef, Usage

MAX_ANSWER_BYTES = 50 * 1024 * 1024
"""The most bytes the client reads from an agent for one call, streamed or not (the endpoint runtime's
bound)."""
IDLE_TIMEOUT = 30.0
"""Seconds an agent may stay silent: before its response headers, or between two pieces of a stream."""
CONNECT_TIMEOUT = 10.0
"""Seconds to get a connection to an agent (from the pool, or a new one)."""

_JSON_HEADERS = {"Content-Type": "application/json"}


class ConnectionPool:
    """Persistent HTTP connections to agents (keep-alive, one pool for every agent a payer calls): share one
    between `AgentClient`s with `AgentClient(url, pool=pool)`, and `await pool.aclose()` when done.

    The session is made on first use in the running event loop (aiohttp's are bound to one); used from
    another loop (a second `asyncio.run`), it starts a new one there.
    """

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            if self._session is not None and not self._session.closed:
                # Made in a loop that has ended: its connections cannot be closed from this one, only dropped.
                self._session.connector._close()  # type: ignore[union-attr]
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
            self._loop = loop
        return self._session

    async def aclose(self) -> None:
        if (
            self._session is not None
            and not self._session.closed
            and self._loop is asyncio.get_running_loop()
        ):
            await self._session.close()
        elif self._session is not None and not self._session.closed:
            self._session.connector._close()  # type: ignore[union-attr]
        self._session = None


Parsed = TypeVar("Parsed", bound=BaseModel | None, default=None)
Model = TypeVar("Model", bound=BaseModel)


@dataclass(frozen=True)
class PaidInvocation(Invocation, Generic[Parsed]):
    """One delivered call of a remote agent: an `Invocation`, its price (wei, or the asset's smallest unit),
    and the agent's receipt for it. `output` is the JSON the receipt commits to; `parsed` is that output as
    the `output_type` model the call asked for (None without one)."""

    price: int
    owed: int
    """The cumulative amount the next voucher on this channel must carry to pay for this call."""
    seq: int
    """The call's number on its channel (1 for the first), as the receipt names it."""
    receipt: Receipt
    parsed: Parsed = field(default=None, kw_only=True)  # type: ignore[assignment]
    """The output validated as the call's `output_type` (`invoke(..., output_type=Summary).parsed` is a
    `Summary`); None when the call gave no `output_type`."""
    # `text` (from `Invocation`): the raw generated text of a verifiable capability, checked to be the output
    # and committed to by the receipt; None for any other capability.


class AgentClient:
    """Calls one agent at `url` (its base URL, or the card's `/invoke` endpoint).

    Args:
        url: the agent's base URL.
        signer: signs calls with the channel's key (the payer's, or the delegation's session key) in the
            channels' domain; receipts must be for that domain's chain and contract. Needed by `invoke`.
        timeout: seconds for a whole call, model included.
        idle_timeout: seconds the agent may stay silent (before headers, or inside a stream).
        max_answer_bytes: the most bytes one answer may take, streamed or not.
        card: the agent's card, when already known (from the registry); otherwise fetched on first use.
    """

    def __init__(
        self,
        url: str,
        *,
        signer: CallSigner | None = None,
        timeout: float = 120.0,
        idle_timeout: float = IDLE_TIMEOUT,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        card: AgentCard | None = None,
        pool: ConnectionPool | None = None,
    ) -> None:
        self.url = url.rstrip("/").removesuffix("/invoke")
        self.signer = signer
        self.timeout = timeout
        self.idle_timeout = idle_timeout
        self.max_answer_bytes = max_answer_bytes
        self._card = card
        self._next_seq: dict[int, int] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._own_pool = pool is None
        self._pool = pool if pool is not None else ConnectionPool()
        self._timeouts = aiohttp.ClientTimeout(
            total=None, connect=CONNECT_TIMEOUT, sock_connect=CONNECT_TIMEOUT, sock_read=idle_timeout
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client's connections (a shared `pool` is its owner's to close)."""
        if self._own_pool:
            await self._pool.aclose()

    async def card(self) -> AgentCard:
        """The agent's card, fetched once from `/.well-known/agent-registration.json`."""
        if self._card is None:
            # The caller named this URL, not a stranger: it may be on the local network.
            self._card = await fetch_card(
                f"{self.url}/.well-known/agent-registration.json", allow_private=True
            )
        return self._card

    @overload
    async def invoke(
        self,
        capability: str,
        input: BaseModel | dict[str, Any],
        *,
        channel: int,
        payment: Voucher | None = None,
        output_type: type[Model],
        on_token: Callable[[str], None] | None = None,
        idempotency_key: str | None = None,
        max_price: int | None = None,
        max_tokens: int | None = None,
    ) -> PaidInvocation[Model]: ...

    @overload
    async def invoke(
        self,
        capability: str,
        input: BaseModel | dict[str, Any],
        *,
        channel: int,
        payment: Voucher | None = None,
        output_type: None = None,
        on_token: Callable[[str], None] | None = None,
        idempotency_key: str | None = None,
        max_price: int | None = None,
        max_tokens: int | None = None,
    ) -> PaidInvocation: ...

    async def invoke(
        self,
        capability: str,
        input: BaseModel | dict[str, Any],
        *,
        channel: int,
        payment: Voucher | None = None,
        output_type: type[BaseModel] | None = None,
        on_token: Callable[[str], None] | None = None,
        idempotency_key: str | None = None,
        max_price: int | None = None,
        max_tokens: int | None = None,
    ) -> PaidInvocation[Any]:
        """Call `capability` on `channel`, signed for the channel's next call number, paying the previous
        call with `payment` if given.

        With `output_type=Model`, the answer's `parsed` is the output validated as `Model`
        (`(await client.invoke("summarize", text, channel=c, output_type=Summary)).parsed.summary`). A model
        that asks for a field the card's output schema does not have is refused before the call (nothing is
        signed or owed); an output that still does not fit raises `AgentOutputMismatch` naming the fields,
        after the call was delivered: that call is owed, and the error carries it (`.invocation`) to pay.

        The output is validated against the card's output schema (and `output_type` when given), and the
        receipt is checked: signed by the card's signer, for this chain and contract, this request, this output
        and this price, and the price is what the card's pricing charges for the reported usage. For a verifiable
        capability the answer's `text` must be exactly its output as JSON, and the receipt must commit to the
        card's profile (`profile_hash`) and to that text (`response_hash`).
        With `idempotency_key`, a repeated call gets the answer the agent already delivered for that key.
        `max_price` and `max_tokens` bound what the answer may charge and report.
        Raises `PaymentRequired` (402), `UnknownCapability`, `InvalidAgentInput`, `AgentCallFailed` (and its
        `AgentTimeout`, `AgentLimitExceeded`), `InvalidReceipt`, `InvalidCallSignature` (no signer).
        """
        signer = self.signer
        if signer is None:
            raise InvalidCallSignature(
                "AgentClient has no signer: pass signer=CallSigner(key, channel_domain) to sign calls"
            )
        card = await self.card()
        spec = card.capability(capability)
        if output_type is not None:
            _check_output_type(capability, spec.output_schema, output_type)
        value: JsonValue = input.model_dump(mode="json") if isinstance(input, BaseModel) else input
        lock = self._locks.setdefault(channel, asyncio.Lock())
        async with lock:  # one call at a time per channel: call numbers go up one by one
            for attempt in range(2):
                seq = self._next_seq.get(channel, 1)
                digest = request_hash(capability, value, channel, seq)
                body: dict[str, Any] = {
                    "capability": capability,
                    "input": value,
                    "channel": hex(channel),
                    "seq": seq,
                    "signature": "0x" + signer.sign(channel, seq, digest).hex(),
                }
                if payment is not None:
                    body["payment"] = payment.to_dict()
                if idempotency_key is not None:
                    body["idempotencyKey"] = idempotency_key
                try:
                    if on_token is not None:
                        body["stream"] = True
                        answer = await self._stream(body, on_token)
                    else:
                        answer = await self._post("/invoke", body)
                except _WrongSeq as wrong:
                    self._next_seq[channel] = wrong.next_seq
                    if attempt == 0:
                        continue  # nothing was done: sign again for the number the agent expects
                    raise AgentCallFailed(self.url, str(wrong), 409) from None
                break
            invocation = self._check(card, capability, value, channel, answer, signer, (seq, digest))
            if invocation.seq == seq:
                self._next_seq[channel] = seq + 1
            elif idempotency_key is None or invocation.seq > seq:
                raise InvalidReceipt(
                    f"the agent answered call {invocation.seq} to call {seq}, with no idempotency key to replay"
                )
        self._check_bounds(card, invocation, max_price, max_tokens)
        _validate(spec.output_schema, invocation.output, capability)
        if output_type is None:
            return invocation
        try:
            parsed = output_type.model_validate(invocation.output)
        except ValidationError as exc:
            raise AgentOutputMismatch(capability, output_type.__name__, _fields(exc), invocation) from exc
        return dataclasses.replace(invocation, parsed=parsed)

    async def pay(self, channel: int, voucher: Voucher) -> int:
        """Hand over a voucher for delivered calls; returns what the agent now holds as paid."""
        answer = await self._post("/pay", {"channel": hex(channel), "payment": voucher.to_dict()})
        try:
            return int(answer["paid"])
        except (KeyError, TypeError, ValueError) as exc:
            raise AgentCallFailed(self.url, f"/pay answered without what is paid: {exc!r}") from exc

    def _request(self, path: str, body: dict[str, Any]) -> Any:
        """POST `body` as JSON to `path`; redirects are not followed (an agent answers at its own URL)."""
        return self._pool.session().post(
            self.url + path,
            data=dumps(body),
            headers=_JSON_HEADERS,
            timeout=self._timeouts,
            allow_redirects=False,
        )

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        data = bytearray()
        async for piece in response.content.iter_any():
            data += piece
            if len(data) > self.max_answer_bytes:
                raise self._too_large()
        return bytes(data)

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            async with asyncio.timeout(self.timeout):
                async with self._request(path, body) as response:
                    status = response.status
                    data = await self._read(response)
        except aiohttp.ServerTimeoutError as exc:  # before TimeoutError, of which it is a kind
            raise self._silent(exc) from exc
        except TimeoutError as exc:
            raise AgentTimeout(self.url, f"no answer within the call's {self.timeout}s") from exc
        except aiohttp.ClientError as exc:
            raise AgentConnectionLost(self.url, f"{type(exc).__name__}: {exc}") from exc
        answer = _json(data, self.url, status)
        if status != 200:
            raise _error(self.url, status, answer, body.get("capability"))
        return answer

    async def _stream(self, body: dict[str, Any], on_token: Callable[[str], None]) -> dict[str, Any]:
        try:
            async with asyncio.timeout(self.timeout):
                async with self._request("/invoke", body) as response:
                    if response.status != 200:
                        answer = _json(await self._read(response), self.url, response.status)
                        raise _error(self.url, response.status, answer, body.get("capability"))
                    received = 0
                    buffer = bytearray()  # grows in place: one huge event costs linear time
                    async for piece in response.content.iter_any():
                        received += len(piece)
                        if received > self.max_answer_bytes:
                            raise self._too_large()
                        buffer += piece
                        # Split only when this piece may end an event: splitting the whole buffer on every
                        # piece would take quadratic time on one huge event.
                        if b"\n\n" not in bytes(buffer[-len(piece) - 3 :]).replace(b"\r\n", b"\n"):
                            continue
                        *events, rest = bytes(buffer).replace(b"\r\n", b"\n").split(b"\n\n")
                        buffer = bytearray(rest)
                        for raw in events:
                            name, event = _event(raw, self.url)
                            if name == "token":
                                text = event.get("text")
                                if not isinstance(text, str):
                                    raise AgentCallFailed(self.url, "a token event without text")
                                on_token(text)
                            elif name == "result":
                                return event
                            elif name == "error":
                                raise _error(self.url, _status(event), event, body.get("capability"))
        except aiohttp.ServerTimeoutError as exc:
            raise self._silent(exc) from exc
        except TimeoutError as exc:
            raise AgentTimeout(self.url, f"the stream did not end within the call's {self.timeout}s") from exc
        except aiohttp.ClientError as exc:
            raise AgentConnectionLost(self.url, f"{type(exc).__name__}: {exc}") from exc
        raise AgentCallFailed(self.url, "the stream ended without a result")

    def _too_large(self) -> AgentLimitExceeded:
        return AgentLimitExceeded(self.url, f"the answer is over {self.max_answer_bytes:,} bytes")

    def _silent(self, exc: aiohttp.ServerTimeoutError) -> AgentTimeout:
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            return AgentTimeout(self.url, f"could not connect: {type(exc).__name__}")
        return AgentTimeout(self.url, f"the agent fell silent for {self.idle_timeout}s")

    def _check(
        self,
        card: AgentCard,
        capability: str,
        value: JsonValue,
        channel: int,
        answer: dict[str, Any],
        signer: CallSigner,
        sent: tuple[int, bytes],
    ) -> PaidInvocation[Any]:
        """The answer checked against the call (`sent`: the call number and request hash signed)."""
        try:
            output = answer["output"]
            price, owed, seq = int(answer["price"]), int(answer["owed"]), int(answer["seq"])
            usage = Usage(
                int(answer["usage"]["promptTokens"]),
                int(answer["usage"]["completionTokens"]),
                bool(answer["usage"].get("estimated", False)),
            )
            model_ref = ModelRef(**answer["model"])
            receipt_data = answer["receipt"]
            latency = float(answer.get("latencyS", 0.0))
        except (KeyError, TypeError, ValueError) as exc:
            raise AgentCallFailed(self.url, f"the answer is missing or mangles a field: {exc!r}") from exc
        if not isinstance(output, dict):
            raise AgentCallFailed(self.url, "the answer's output is not a JSON object")
        if min(price, owed, seq, usage.prompt_tokens, usage.completion_tokens) < 0:
            raise AgentCallFailed(self.url, "the answer carries a negative number")
        if not isinstance(receipt_data, dict):
            raise InvalidReceipt("the answer's receipt is not a JSON object")
        # The receipt must be for the chain and contract of the channel, whatever domain it names.
        receipt = Receipt.from_dict(receipt_data, _receipt_domain_of(signer.domain))
        verify_receipt(receipt, card.signer)
        try:
            request = sent[1] if seq == sent[0] else request_hash(capability, value, channel, seq)
        except InvalidReceipt as exc:
            raise InvalidReceipt(f"the answer's call number is not one: {exc}") from exc
        text: str | None = None
        expected = {
            "request hash": request,
            "response hash": content_hash(output),
            "model reference": model_ref_hash(model_ref),
        }
        profile = card.capability(capability).verifiable
        if profile is not None:
            text = self._verifiable_text(capability, answer.get("text"), output)
            if model_ref != profile.model_ref():
                raise InvalidReceipt(
                    f"{capability} is verifiable on {profile.model_ref()}, but the answer names {model_ref}"
                )
            expected["response hash"] = response_hash(output, text)
            expected["model reference"] = profile_hash(profile)
        actual = {
            "request hash": receipt.request_hash,
            "response hash": receipt.response_hash,
            "model reference": receipt.model_ref,
        }
        for what, digest in expected.items():
            if actual[what] != digest:
                raise InvalidReceipt(f"the receipt's {what} does not match the call")
        if (receipt.price, receipt.channel_id, receipt.seq) != (price, channel, seq):
            raise InvalidReceipt("the receipt's price, channel or sequence does not match the answer")
        return PaidInvocation(
            capability, output, usage, model_ref, latency, price, owed, seq, receipt, text=text
        )

    def _verifiable_text(self, capability: str, text: object, output: dict[str, Any]) -> str:
        """The raw text of a verifiable capability's answer, which must be exactly its output as JSON."""
        if not isinstance(text, str):
            raise AgentCallFailed(
                self.url, f"{capability} is verifiable, but the answer has no text its output was parsed from"
            )
        try:
            same = canonical_json(loads(text)) == canonical_json(output)
        except (ValueError, TypeError, RecursionError):
            same = False
        if not same:
            raise AgentCallFailed(
                self.url, f"the answer's text is not its output: {capability}'s text parses to other JSON"
            )
        return text

    def _check_bounds(
        self, card: AgentCard, call: PaidInvocation, max_price: int | None, max_tokens: int | None
    ) -> None:
        """Refuse tokens past `max_tokens`, a price past `max_price`, and a price other than the card's for
        the usage the agent reports: none of them is owed."""
        usage = call.usage
        if max_tokens is not None and usage.total_tokens > max_tokens:
            raise AgentLimitExceeded(
                self.url, f"the answer reports {usage.total_tokens} tokens, above the bound of {max_tokens}"
            )
        if max_price is not None and call.price > max_price:
            raise AgentLimitExceeded(
                self.url, f"the answer charges {call.price:,} wei, above the bound of {max_price:,} wei"
            )
        charged = card.pricing.price(usage.prompt_tokens, usage.completion_tokens)
        if call.price > charged:
            raise AgentLimitExceeded(
                self.url,
                f"the answer charges {call.price:,} wei, but the card's pricing charges {charged:,} wei for the "
                f"{usage.total_tokens} tokens it reports",
            )


class _WrongSeq(AgentCallFailed):
    """The agent expects another call number (409 with `nextSeq`): nothing was done."""

    def __init__(self, url: str, message: str, next_seq: int) -> None:
        super().__init__(url, message, 409)
        self.next_seq = next_seq


@functools.lru_cache(maxsize=64)
def _receipt_domain_of(channels: ChannelDomain) -> ReceiptDomain:
    """The receipts' domain for a channels domain, made once (its checks and separator are not per call)."""
    return ReceiptDomain.for_channels(channels)


def _receipt_domain(data: object) -> ReceiptDomain:
    try:
        assert isinstance(data, dict)
        return ReceiptDomain(int(data["chainId"]), str(data["contract"]))
    except (AssertionError, KeyError, TypeError, ValueError) as exc:
        raise InvalidReceipt(f"the receipt does not name its domain: {exc!r}") from exc


def _json(data: bytes, url: str, status: int) -> dict[str, Any]:
    try:
        answer = loads(data)
    except ValueError as exc:
        raise AgentCallFailed(url, f"HTTP {status} with a body that is not JSON", status) from exc
    if not isinstance(answer, dict):
        raise AgentCallFailed(url, f"HTTP {status} with a body that is not a JSON object", status)
    return answer


def _error(url: str, status: int, answer: dict[str, Any], capability: object) -> Exception:
    message = str(answer.get("error", f"HTTP {status}"))[:1000]
    next_seq = answer.get("nextSeq")
    if status == 409 and isinstance(next_seq, int) and not isinstance(next_seq, bool) and next_seq >= 1:
        return _WrongSeq(url, message, next_seq)
    if status == 403 and answer.get("field") == "signature":
        return InvalidCallSignature(f"agent {url} refused the call's signature: {message}")
    if status == 402:
        return PaymentRequired(url, message, answer)
    if status == 404 and answer.get("field") == "capability":
        return UnknownCapability(str(capability), [])
    if status in (413, 422) and str(answer.get("field", "")).startswith("input"):
        field = str(answer["field"]).removeprefix("input").lstrip(".") or "input"
        return InvalidAgentInput(str(capability), field, str(answer.get("problem", message)))
    return AgentCallFailed(url, message, status)


def _event(raw: bytes, url: str) -> tuple[str, dict[str, Any]]:
    """One server-sent event's name and JSON data."""
    name, data = "message", ""
    for line in raw.decode("utf-8", errors="replace").split("\n"):
        if line.startswith("event:"):
            name = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data += line.removeprefix("data:").strip()
    if not data:
        return name, {}
    try:
        value = loads(data)
    except ValueError as exc:
        raise AgentCallFailed(url, f"a {name} event whose data is not JSON") from exc
    if not isinstance(value, dict):
        raise AgentCallFailed(url, f"a {name} event whose data is not a JSON object")
    return name, value


def _status(data: dict[str, Any]) -> int:
    status = data.get("status")
    return status if isinstance(status, int) and 400 <= status <= 599 else 502


def _check_output_type(capability: str, schema: dict[str, Any], output_type: type[BaseModel]) -> None:
    """Refuse, before any call, an `output_type` that requires a field the card's output schema does not
    have: no answer of this agent could fit it."""
    wanted = output_type.model_json_schema().get("required", [])
    offered = schema.get("properties")
    if not isinstance(offered, dict):
        return  # a schema without named properties: only the answer can tell
    missing = [name for name in wanted if name not in offered]
    if missing:
        raise AgentOutputMismatch(
            capability,
            output_type.__name__,
            {
                name: f"required by {output_type.__name__}, absent from the card's output schema, which has "
                f"{', '.join(sorted(offered))}"
                for name in missing
            },
            None,
        )


def _fields(exc: ValidationError) -> dict[str, str]:
    """Each bad field of a validation error (dotted path) and its problem."""
    fields: dict[str, str] = {}
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "output"
        fields.setdefault(where, error["msg"])
    return fields


def _validate(schema: dict[str, Any], value: JsonValue, capability: str) -> None:
    error = first_mismatch(schema, value)
    if error is not None:
        where = ".".join(str(part) for part in error.absolute_path) or "output"
        raise AgentCallFailed("agent", f"{capability}'s output breaks its schema at {where}: {error.message}")
