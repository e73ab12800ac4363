"""`AgentClient`: call an agent over HTTP, check what comes back, and say what is owed.

The client does not pay by itself: it returns a `PaidInvocation` (typed output, verified receipt, price, and
the cumulative amount owed), and the caller (the composer, or code like the example below) signs a voucher
for `owed` once it accepts the result, and hands it over with `pay()` or with the next call.

Example (with a running agent and an open channel):

    async with AgentClient("http://127.0.0.1:8000") as client:
        call = await client.invoke("summarize", {"text": "..."}, channel=channel_id)
        voucher = payer.sign(channel_id, call.owed)
        await client.pay(channel_id, voucher)
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import httpx
from pydantic import BaseModel, JsonValue

from motet.agents._cards import AgentCard
from motet.agents._define import Invocation
from motet.agents._fetch import fetch_card
from motet.agents._schemas import first_mismatch
from motet.errors import (
    AgentCallFailed,
    InvalidAgentInput,
    InvalidReceipt,
    PaymentRequired,
    UnknownCapability,
)
from motet.payments import (
    Receipt,
    ReceiptDomain,
    Voucher,
    content_hash,
    model_ref_hash,
    request_hash,
    verify_receipt,
)
from motet.runtimes import ModelRef, Usage

MAX_ANSWER_BYTES = 4 * 1024 * 1024
"""The largest answer the client reads from an agent."""


@dataclass(frozen=True)
class PaidInvocation(Invocation):
    """One delivered call of a remote agent: an `Invocation`, its price, and the agent's receipt for it."""

    price: int
    owed: int
    """The cumulative amount the next voucher on this channel must carry to pay for this call."""
    seq: int
    """The call's number on its channel (1 for the first), as the receipt names it."""
    receipt: Receipt


class AgentClient:
    """Calls one agent at `url` (its base URL, or the card's `/invoke` endpoint).

    Args:
        url: the agent's base URL.
        timeout: seconds for a whole call, model included.
        card: the agent's card, when already known (from the registry); otherwise fetched on first use.
    """

    def __init__(self, url: str, *, timeout: float = 120.0, card: AgentCard | None = None) -> None:
        self.url = url.rstrip("/").removesuffix("/invoke")
        self._card = card
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=10.0))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def card(self) -> AgentCard:
        """The agent's card, fetched once from `/.well-known/agent-registration.json`."""
        if self._card is None:
            self._card = await fetch_card(f"{self.url}/.well-known/agent-registration.json")
        return self._card

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
    ) -> PaidInvocation:
        """Call `capability` on `channel`, paying the previous call with `payment` if given.

        The output is validated against the card's output schema (and `output_type` when given), and the
        receipt is checked: signed by the card's signer, for this request, this output and this price.
        With `idempotency_key`, a repeated call gets the answer the agent already delivered for that key.
        Raises `PaymentRequired` (402), `UnknownCapability`, `InvalidAgentInput`, `AgentCallFailed`,
        `InvalidReceipt`.
        """
        card = await self.card()
        spec = card.capability(capability)
        value: JsonValue = input.model_dump(mode="json") if isinstance(input, BaseModel) else input
        body: dict[str, Any] = {"capability": capability, "input": value, "channel": hex(channel)}
        if payment is not None:
            body["payment"] = payment.to_dict()
        if idempotency_key is not None:
            body["idempotencyKey"] = idempotency_key
        if on_token is not None:
            body["stream"] = True
            answer = await self._stream(body, on_token)
        else:
            answer = await self._post("/invoke", body)
        invocation = self._check(card, capability, value, channel, answer)
        _validate(spec.output_schema, invocation.output, capability)
        if output_type is not None:
            output_type.model_validate(invocation.output)
        return invocation

    async def pay(self, channel: int, voucher: Voucher) -> int:
        """Hand over a voucher for delivered calls; returns what the agent now holds as paid."""
        answer = await self._post("/pay", {"channel": hex(channel), "payment": voucher.to_dict()})
        return int(answer["paid"])

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            async with self._http.stream("POST", self.url + path, json=body) as response:
                data = await _read(response, self.url)
                status = response.status_code
        except httpx.HTTPError as exc:
            raise AgentCallFailed(self.url, f"{type(exc).__name__}: {exc}") from exc
        answer = _json(data, self.url, status)
        if status != 200:
            raise _error(self.url, status, answer, body.get("capability"))
        return answer

    async def _stream(self, body: dict[str, Any], on_token: Callable[[str], None]) -> dict[str, Any]:
        try:
            async with self._http.stream("POST", self.url + "/invoke", json=body) as response:
                if response.status_code != 200:
                    answer = _json(await _read(response, self.url), self.url, response.status_code)
                    raise _error(self.url, response.status_code, answer, body.get("capability"))
                async for name, data in _events(response.aiter_lines()):
                    if name == "token":
                        on_token(str(data["text"]))
                    elif name == "result":
                        return data
                    elif name == "error":
                        raise _error(self.url, int(data.get("status", 500)), data, body.get("capability"))
        except httpx.HTTPError as exc:
            raise AgentCallFailed(self.url, f"{type(exc).__name__}: {exc}") from exc
        raise AgentCallFailed(self.url, "the stream ended without a result")

    def _check(
        self, card: AgentCard, capability: str, value: JsonValue, channel: int, answer: dict[str, Any]
    ) -> PaidInvocation:
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
        domain = _receipt_domain(receipt_data)
        receipt = Receipt.from_dict(receipt_data, domain)
        verify_receipt(receipt, card.signer)
        expected = {
            "request hash": request_hash(capability, value, channel, seq),
            "response hash": content_hash(output),
            "model reference": model_ref_hash(model_ref),
        }
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
        return PaidInvocation(capability, output, usage, model_ref, latency, price, owed, seq, receipt)


def _receipt_domain(data: object) -> ReceiptDomain:
    try:
        assert isinstance(data, dict)
        return ReceiptDomain(int(data["chainId"]), str(data["contract"]))
    except (AssertionError, KeyError, TypeError, ValueError) as exc:
        raise InvalidReceipt(f"the receipt does not name its domain: {exc!r}") from exc


async def _read(response: httpx.Response, url: str) -> bytes:
    data = bytearray()
    async for piece in response.aiter_bytes():
        data += piece
        if len(data) > MAX_ANSWER_BYTES:
            raise AgentCallFailed(url, f"the answer is over {MAX_ANSWER_BYTES:,} bytes")
    return bytes(data)


def _json(data: bytes, url: str, status: int) -> dict[str, Any]:
    try:
        answer = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AgentCallFailed(url, f"HTTP {status} with a body that is not JSON", status) from exc
    if not isinstance(answer, dict):
        raise AgentCallFailed(url, f"HTTP {status} with a body that is not a JSON object", status)
    return answer


def _error(url: str, status: int, answer: dict[str, Any], capability: object) -> Exception:
    message = str(answer.get("error", f"HTTP {status}"))
    if status == 402:
        return PaymentRequired(url, message, answer)
    if status == 404 and answer.get("field") == "capability":
        return UnknownCapability(str(capability), [])
    if status in (413, 422) and str(answer.get("field", "")).startswith("input"):
        field = str(answer["field"]).removeprefix("input").lstrip(".") or "input"
        return InvalidAgentInput(str(capability), field, str(answer.get("problem", message)))
    return AgentCallFailed(url, message, status)


async def _events(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """Server-sent events as `(event name, JSON data)`."""
    name, data = "message", ""
    async for line in lines:
        if line.startswith("event:"):
            name = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data += line.removeprefix("data:").strip()
        elif not line and data:
            yield name, json.loads(data)
            name, data = "message", ""


def _validate(schema: dict[str, Any], value: JsonValue, capability: str) -> None:
    error = first_mismatch(schema, value)
    if error is not None:
        where = ".".join(str(part) for part in error.absolute_path) or "output"
        raise AgentCallFailed("agent", f"{capability}'s output breaks its schema at {where}: {error.message}")
