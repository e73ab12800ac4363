"""Fixtures for the registry tests: one embedded chain per session, rolled back after each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from web3.contract import Contract

from motet.chain import Chain
from motet.registry import Registry
from motet.settings import Settings

UNBONDING_DELAY = 7 * 24 * 3600


@pytest.fixture(scope="session")
def registry_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Default settings (the shared compile cache keeps the suite fast), a fixed delay, a private home."""
    return Settings(home=tmp_path_factory.mktemp("registry-home"), unbonding_delay=UNBONDING_DELAY)


@pytest.fixture(scope="session")
def _registry_session_chain(registry_settings: Settings) -> Chain:
    chain = Chain.embedded(settings=registry_settings)
    chain.contract("AgentRegistry")  # deployed once, before the snapshot every test returns to
    return chain


@pytest.fixture
def registry_chain(_registry_session_chain: Chain) -> Iterator[Chain]:
    """The embedded chain with a fresh AgentRegistry and no agents; changes are undone after the test."""
    chain = _registry_session_chain
    snapshot = chain.snapshot()
    yield chain
    chain.revert(snapshot)


@pytest.fixture
def registry_contract(registry_chain: Chain) -> Contract:
    return registry_chain.contract("AgentRegistry")


@pytest.fixture
def registry(registry_chain: Chain) -> Iterator[Registry]:
    """A `Registry` on `registry_chain` with an in-memory index."""
    with Registry(registry_chain) as client:
        yield client


@pytest.fixture
def index_file(tmp_path: Path) -> Path:
    return tmp_path / "index" / "registry.sqlite"
