"""The examples in the runtimes' docstrings run (the llama.cpp ones, which load a model, are covered by
test_llama_cpp)."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

from motet.runtimes import _base, _openai_endpoint, _protocol, _schema, gguf, testing


@pytest.mark.parametrize(
    "module",
    [_protocol, _base, _schema, gguf, _openai_endpoint, testing],
    ids=lambda module: module.__name__,
)
def test_docstring_examples_run(module: ModuleType) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0
