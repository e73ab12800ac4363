"""The agent as an A2A `AgentCard`, for A2A clients that look for `/.well-known/agent-card.json`."""

from __future__ import annotations

import json
from typing import Any, Final

from motet.agents._cards import AgentCard

A2A_EXTENSION_URI: Final = "urn:motet:a2a:capabilities:v1"
"""The A2A extension under which `a2a_card` publishes capability schemas, pricing and the receipt signer."""


def a2a_card(card: AgentCard, url: str, *, version: str = "1.0.0", streaming: bool = True) -> dict[str, Any]:
    """The agent as an A2A `AgentCard` (protocol 0.3.0), for `/.well-known/agent-card.json`.

    `url` is the agent server's base URL. The transport is motet's plain JSON over HTTP (`POST /invoke`),
    declared as `HTTP+JSON`; it is not A2A's JSON-RPC. Each capability is one skill, whose `examples` are its
    example inputs as JSON text. The schemas, pricing and receipt signer, which A2A has no fields for, travel
    in the `capabilities.extensions` entry with the URI `A2A_EXTENSION_URI`.

    Example:
        >>> from motet.agents import CapabilitySpec, Pricing, Service
        >>> card = AgentCard(
        ...     name="Summarizer",
        ...     description="Summarizes English text.",
        ...     services=[Service(name="motet", endpoint="https://agent.example/")],
        ...     capabilities=[CapabilitySpec(name="text.summarize", input_schema={}, output_schema={})],
        ...     pricing=Pricing(per_call=100),
        ...     signer="0x" + "11" * 20,
        ... )
        >>> [skill["id"] for skill in a2a_card(card, "https://agent.example")["skills"]]
        ['text.summarize']
    """
    modes = ["application/json"]
    result: dict[str, Any] = {
        "protocolVersion": "0.3.0",
        "name": card.name,
        "description": card.description,
        "url": url,
        "preferredTransport": "HTTP+JSON",
        "version": version,
        "capabilities": {
            "streaming": streaming,
            "pushNotifications": False,
            "extensions": [
                {
                    "uri": A2A_EXTENSION_URI,
                    "description": "motet capability schemas, per-call pricing and the receipt signer",
                    "required": False,
                    "params": {
                        "capabilities": {
                            spec.name: {"inputSchema": spec.input_schema, "outputSchema": spec.output_schema}
                            for spec in card.capabilities
                        },
                        "pricing": card.pricing.model_dump(mode="json"),
                        "signer": card.signer,
                    },
                }
            ],
        },
        "defaultInputModes": modes,
        "defaultOutputModes": modes,
        "skills": [
            {
                "id": spec.name,
                "name": spec.name,
                "description": spec.description or spec.name,
                "tags": spec.name.split("."),
                "examples": [json.dumps(example.input, separators=(",", ":")) for example in spec.examples],
                "inputModes": modes,
                "outputModes": modes,
            }
            for spec in card.capabilities
        ],
    }
    if card.image is not None:
        result["iconUrl"] = card.image
    return result
