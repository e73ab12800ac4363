"""The gateway checks an order's inputs against its workflow before anything is registered, signed or spent:
a missing, unknown or mistyped input is refused with 400 naming the field and what it expects."""

from __future__ import annotations

import json

import pytest
from support.gateway import bare_gateway

from motet.chain import Chain
from motet.payments import DelegationClient


@pytest.mark.slow
async def test_an_order_with_bad_inputs_is_refused_before_anything_is_spent(chain: Chain) -> None:
    async with bare_gateway(chain) as s:
        before = chain.balance(s.session_key.address)
        cases = {
            "missing": ({}, ["document: missing", "expected string", "A raw document"]),
            "unknown": (
                {"document": "text", "documnet": "typo"},
                ["documnet: not an input of this workflow", "did you mean 'document'?"],
            ),
            "mistyped": ({"document": 7}, ["document: expected string", "got 7"]),
        }
        for name, (inputs, expected) in cases.items():
            delegation, signed_delegation = s.delegation()
            _, signed_order = s.order(delegation, inputs=json.dumps(inputs))
            response = await s.post_order(signed_delegation, signed_order)
            assert response.status_code == 400, (name, response.text)
            error = response.json()["error"]
            assert error.startswith("the order's inputs: inputs of workflow 'research-brief'"), error
            for text in expected:
                assert text in error, (name, error)
            # Refused before anything: the delegation not registered, no gas, nothing reserved.
            delegation_id = delegation.digest(s.domain)
            assert DelegationClient(chain).state(delegation_id) is None, name
            assert s.gateway.orders.committed(delegation_id) == 0, name
        assert chain.balance(s.session_key.address) == before
        # The same order with its input given passes the check and goes on to be planned (this bare gateway has
        # no agents, so it is refused there, later, for another reason).
        delegation, signed_delegation = s.delegation()
        _, signed_order = s.order(delegation)
        response = await s.post_order(signed_delegation, signed_order)
        assert "inputs" not in response.json()["error"], response.text
