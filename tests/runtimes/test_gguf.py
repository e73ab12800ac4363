"""Facts about model files: quantization from names and metadata, and the cached sha256."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from motet.runtimes.gguf import file_sha256, quantization_from_file_type, split_quantization


@pytest.mark.parametrize(
    ("stem", "expected"),
    [
        ("SmolLM2-135M-Instruct.Q4_1", ("SmolLM2-135M-Instruct", "Q4_1")),
        ("gemma-3-270m-q4_k_m", ("gemma-3-270m", "Q4_K_M")),
        ("Qwen2.5-0.5B-Instruct-IQ2_XXS", ("Qwen2.5-0.5B-Instruct", "IQ2_XXS")),
        ("phi-3-mini-f16", ("phi-3-mini", "F16")),
        ("model_bf16", ("model", "BF16")),
        ("Llama-3.2-1B", ("Llama-3.2-1B", None)),
    ],
)
def test_quantization_is_read_from_the_file_name(stem: str, expected: tuple[str, str | None]) -> None:
    assert split_quantization(stem) == expected


def test_quantization_falls_back_to_the_file_type_in_metadata() -> None:
    names = {3: "Q4_1", 15: "Q4_K_M"}
    assert quantization_from_file_type("15", names) == "Q4_K_M"
    assert quantization_from_file_type("99", names) == "unknown"
    assert quantization_from_file_type(None, names) == "unknown"


def test_sha256_is_cached_until_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"first")
    assert file_sha256(path) == hashlib.sha256(b"first").hexdigest()
    path.write_bytes(b"second, longer")
    os.utime(path, ns=(1, 1))
    assert file_sha256(path) == hashlib.sha256(b"second, longer").hexdigest()
