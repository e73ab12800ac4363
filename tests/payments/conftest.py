"""Fixtures for the PaymentChannels tests: one embedded chain per session, reset between tests.

`deployed` builds the chain once and takes a snapshot; `env` reverts to it after each test, so tests are
independent and the session pays for the deployments only once. `Env` is in `support.channels`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.channels import CHALLENGE_PERIOD, CONTRACTS_DIR, MAX_UINT256, TOKEN_SUPPLY, Env

from motet.chain import Chain


@pytest.fixture(scope="session")
def deployed() -> Iterator[Env]:
    chain = Chain.embedded(accounts=10)
    accounts = chain.accounts
    deployer = accounts[0]
    channels = chain.contract("PaymentChannels")
    assert channels.functions.CHALLENGE_PERIOD().call() == CHALLENGE_PERIOD
    registry = chain.contract("AgentRegistry")
    other_channels = chain.deploy("PaymentChannels", CHALLENGE_PERIOD, registry.address, sender=deployer)
    tokens = {
        name: chain.deploy(CONTRACTS_DIR / f"{name}.vy", sender=deployer)
        for name in ("TestToken", "NoReturnToken", "FalseReturnToken", "ReentrantToken", "FeeToken")
    }
    env = Env(
        chain=chain,
        channels=channels,
        other_channels=other_channels,
        token=tokens["TestToken"],
        no_return=tokens["NoReturnToken"],
        false_return=tokens["FalseReturnToken"],
        reentrant=tokens["ReentrantToken"],
        fee=tokens["FeeToken"],
        lens=chain.deploy(CONTRACTS_DIR / "ChannelsLens.vy", sender=deployer),
        registry=registry,
        deployer=deployer,
        payer=accounts[1],
        payee=accounts[2],
        relayer=accounts[3],
        payer2=accounts[4],
        payee2=accounts[5],
        stranger=accounts[6],
    )
    # Payers 1, 4 and 7 hold every token and have approved the channels contract for all of it.
    for payer in (accounts[1], accounts[4], accounts[7]):
        for token in env.tokens:
            chain.send(token.functions.mint(payer.address, TOKEN_SUPPLY), sender=deployer)
            chain.send(token.functions.approve(channels.address, MAX_UINT256), sender=payer)
    for payee in (env.payee, env.payee2):
        env.agents[payee.address] = env.register_agent(payee.address)
    env.snapshot = chain.snapshot()
    yield env
    chain.close()


@pytest.fixture
def env(deployed: Env) -> Iterator[Env]:
    """The session's chain, as `deployed` left it; reverted after the test."""
    snapshot = deployed.chain.snapshot()
    yield deployed
    deployed.chain.revert(snapshot)
