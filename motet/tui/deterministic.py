"""A deterministic runtime whose answers fit the built-in agents' output schemas: for tests, screenshots and
`MOTET_TUI_RUNTIME=function motet tui` (a fast TUI with no model)."""

from __future__ import annotations

from typing import Any

from motet.runtimes import Message
from motet.runtimes.testing import CallInfo, FunctionRuntime


def _answer(messages: tuple[Message, ...], info: CallInfo) -> str | dict[str, Any]:
    words = [w.strip(".,;:!?\"'") for w in messages[-1].content.split()]
    words = [w for w in words if w]
    fields = set((info.schema or {}).get("properties", {}))
    if "summary" in fields:
        return {"summary": "A new public library opened downtown and visitors praised it."}
    if "keywords" in fields:
        return {"keywords": ["library", "reading rooms", "children", "membership", "downtown"]}
    if "sentiment" in fields:
        return {"sentiment": "positive"}
    if "translation" in fields:
        return {"translation": " ".join(words[:20])}
    if "strengths" in fields:
        return {"strengths": ["clear"], "weaknesses": ["short"]}
    if "answer" in fields:
        return {"answer": " ".join(words[:10])}
    return " ".join(words[:20])


def deterministic_runtime() -> FunctionRuntime:
    """Answers every built-in capability with fixed, schema-valid output, streamed word by word."""
    return FunctionRuntime(_answer)
