"""The examples in the runtimes' docstrings run (the llama.cpp ones are covered by test_llama_cpp)."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

from motet.runtimes import _gguf, _protocol, _schema, testing


@pytest.mark.parametrize("module", [_protocol, _schema, _gguf, testing], ids=lambda module: module.__name__)
def test_docstring_examples_run(module: ModuleType) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0
