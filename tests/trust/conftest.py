"""The reputation tests' chain (`support.reputation.build_world`): deployed once per module, and returned to
its snapshot after every test. Test modules with a `world` of their own (the check's) override it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.reputation import World, build_world


@pytest.fixture(scope="module")
def deployed() -> Iterator[World]:
    world = build_world()
    yield world
    world.chain.close()


@pytest.fixture
def world(deployed: World) -> Iterator[World]:
    snapshot = deployed.chain.snapshot()
    yield deployed
    deployed.chain.revert(snapshot)
