"""The agent server's wire format: reading `/invoke` and `/pay` bodies within bounds, and writing answers,
problems (any status but 200, with a JSON body) and server-sent events."""

from __future__ import annotations

import base64
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from motet._json import loads
from motet.runtimes import Usage
from motet.units import UINT256_MAX

UINT64_MAX = 2**64 - 1

MAX_BODY_BYTES = 512 * 1024
"""The largest request body `/invoke` and `/pay` read."""

MAX_IDEMPOTENCY_KEY = 128
"""The longest idempotency key, in characters."""


class HTTPProblem(Exception):
    """An answer other than 200: its status and JSON body."""

    def __init__(self, status: int, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.status = status
        self.body: dict[str, Any] = {"error": error, **extra}
        self.headers: dict[str, str] = {}


async def json_body(request: Request) -> dict[str, Any]:
    """The body as a JSON object, read no further than `MAX_BODY_BYTES`."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise HTTPProblem(413, f"the body is {int(length):,} bytes, at most {MAX_BODY_BYTES:,} are read")
    data = bytearray()
    async for piece in request.stream():
        data += piece
        if len(data) > MAX_BODY_BYTES:
            raise HTTPProblem(413, f"the body is over {MAX_BODY_BYTES:,} bytes")
    try:
        body = loads(data)
    except ValueError as exc:
        raise HTTPProblem(400, f"the body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise HTTPProblem(400, "the body must be a JSON object")
    return body


def channel_id_of(value: object) -> int:
    """A channel id given as 0x-hex or decimal: a string or an integer (never a float, which JSON numbers
    like 1.5 or Infinity would be)."""
    try:
        if isinstance(value, str) and len(value) <= 80:
            channel_id = int(value, 0)
        elif isinstance(value, int) and not isinstance(value, bool):
            channel_id = value
        else:
            raise ValueError
        if not 0 <= channel_id <= UINT256_MAX:
            raise ValueError
        return channel_id
    except ValueError:
        raise HTTPProblem(
            400, f"channel {value!r} is not a channel id (0x-hex or decimal)", field="channel"
        ) from None


def call_seq(value: object) -> int:
    """The call number the caller signed: an integer from 1 to 2**64 - 1 (a number or a decimal string)."""
    if isinstance(value, str) and value.isdigit() and len(value) <= 20:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= UINT64_MAX:
        raise HTTPProblem(400, "seq must be the channel's next call number (an integer from 1)", field="seq")
    return value


def call_signature(value: object) -> bytes:
    """The caller's EIP-712 `Call` signature: `0x` and 65 bytes of hex."""
    if not isinstance(value, str) or len(value) != 132 or not value.startswith("0x"):
        raise HTTPProblem(
            400,
            "signature must be the payer's EIP-712 Call(channelId, seq, requestHash) signature: 0x and 130 "
            "hex digits",
            field="signature",
        )
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise HTTPProblem(400, "signature is not hex", field="signature") from None


def idempotency_key(value: object) -> str | None:
    """The call's idempotency key, if it names one."""
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_IDEMPOTENCY_KEY:
        raise HTTPProblem(
            400,
            f"idempotencyKey must be a string of 1 to {MAX_IDEMPOTENCY_KEY} characters",
            field="idempotencyKey",
        )
    return value


def header_payment(request: Request) -> object:
    """The voucher in the `X-PAYMENT` header (JSON, or base64 of JSON), if there is one."""
    header = request.headers.get("x-payment")
    if header is None:
        return None
    try:
        text = header if header.lstrip().startswith("{") else base64.b64decode(header).decode()
        return loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HTTPProblem(400, f"the X-PAYMENT header is not a voucher: {exc}", field="X-PAYMENT") from exc


def client_of(request: Request) -> str:
    """Who sent the request, for the log."""
    return f"{request.client.host}:{request.client.port}" if request.client else "unknown"


def problem_response(problem: HTTPProblem) -> JSONResponse:
    return JSONResponse(problem.body, status_code=problem.status, headers=problem.headers)


def sse_event(name: str, data: dict[str, Any]) -> str:
    """One server-sent event."""
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


def usage_json(usage: Usage) -> dict[str, Any]:
    return {
        "promptTokens": usage.prompt_tokens,
        "completionTokens": usage.completion_tokens,
        "estimated": usage.estimated,
    }
