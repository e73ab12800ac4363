"""The browser harness itself: a real page on 127.0.0.1, in Debian's Chromium, using the injected wallet."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from playwright.async_api import Page
from support.browser import Chromium, WalletRequest, inject_wallet, require_chromium, serve_html

ACCOUNT = Account.from_key("0x" + "11" * 32)
OTHER = Account.from_key("0x" + "22" * 32)
CHAIN_ID = 31337


def mail(chain_id: int = CHAIN_ID) -> dict[str, Any]:
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Mail": [{"name": "contents", "type": "string"}],
        },
        "primaryType": "Mail",
        "domain": {
            "name": "motet harness",
            "version": "1",
            "chainId": chain_id,
            "verifyingContract": "0x" + "cc" * 20,
        },
        "message": {"contents": "hello from the page"},
    }


# The page does what a dapp does: ask for the accounts and the chain, then for a signature. It writes
# what it got (or the error's code and message) into #out and marks it done with data-state.
PAGE = """<!doctype html>
<html><body><pre id="out">pending</pre><script>
const out = document.getElementById("out");
const typed = %(typed)s;
(async () => {
  try {
    const [account] = await window.ethereum.request({method: "eth_requestAccounts"});
    const chainId = await window.ethereum.request({method: "eth_chainId"});
    const signer = %(signer)s || account;
    const signature = await window.ethereum.request(
      {method: "eth_signTypedData_v4", params: [signer, JSON.stringify(typed)]});
    out.textContent = JSON.stringify({account, chainId, signature});
    out.dataset.state = "signed";
  } catch (error) {
    out.textContent = JSON.stringify({code: error.code, message: error.message, isError: error instanceof Error});
    out.dataset.state = "error";
  }
})();
</script></body></html>"""


def dapp(typed: dict[str, Any], signer: str | None = None) -> str:
    return PAGE % {"typed": json.dumps(typed), "signer": json.dumps(signer)}


async def outcome(page: Page) -> tuple[str, dict[str, Any]]:
    out = page.locator("#out[data-state]")
    await out.wait_for(timeout=10_000)
    state = await out.get_attribute("data-state")
    assert state is not None
    return state, json.loads(await out.inner_text())


async def test_page_signs_typed_data_with_the_local_key(page: Page) -> None:
    typed = mail()
    wallet = await inject_wallet(page, ACCOUNT, CHAIN_ID)
    with serve_html({"/": dapp(typed)}) as url:
        await page.goto(url + "/")
        state, seen = await outcome(page)

    assert state == "signed", seen
    assert seen["account"] == ACCOUNT.address
    assert seen["chainId"] == "0x7a69"
    recovered = Account.recover_message(encode_typed_data(full_message=typed), signature=seen["signature"])
    assert recovered == ACCOUNT.address

    assert wallet.methods == ["eth_requestAccounts", "eth_chainId", "eth_signTypedData_v4"]
    assert wallet.requests[0] == WalletRequest("eth_requestAccounts", None)
    assert isinstance(wallet.requests[2].params[1], str)  # the typed data travels as a JSON string
    assert wallet.signed == [typed]
    assert wallet.signatures == [seen["signature"]]
    # The test can sign what the page asked for independently: the same key gives the same signature.
    again = Account.sign_typed_data(ACCOUNT.key, full_message=wallet.signed[0])
    assert "0x" + bytes(again.signature).hex() == seen["signature"]


async def test_signing_for_another_address_is_unauthorized(page: Page) -> None:
    wallet = await inject_wallet(page, ACCOUNT, CHAIN_ID)
    with serve_html({"/": dapp(mail(), signer=OTHER.address)}) as url:
        await page.goto(url + "/")
        state, seen = await outcome(page)

    assert state == "error"
    assert seen["code"] == 4100
    assert seen["isError"] is True
    assert wallet.methods == ["eth_requestAccounts", "eth_chainId", "eth_signTypedData_v4"]
    assert wallet.requests[2].params[0] == OTHER.address
    assert wallet.signed == []


async def test_typed_data_for_another_chain_is_refused(page: Page) -> None:
    wallet = await inject_wallet(page, ACCOUNT, CHAIN_ID)
    with serve_html({"/": dapp(mail(chain_id=1))}) as url:
        await page.goto(url + "/")
        state, seen = await outcome(page)

    assert state == "error"
    assert seen["code"] == -32602
    assert "must match the active chainId" in seen["message"]
    assert wallet.signed == []


async def test_provider_shape_and_unsupported_methods(page: Page) -> None:
    wallet = await inject_wallet(page, ACCOUNT, CHAIN_ID)
    with serve_html({"/": "<!doctype html><title>blank</title>"}) as url:
        await page.goto(url + "/")
        seen = await page.evaluate(
            """async () => {
              const eth = window.ethereum;
              const listener = () => {};
              const chained = eth.on("accountsChanged", listener) === eth && eth.removeListener("accountsChanged", listener) === eth;
              let error;
              try { await eth.request({method: "personal_sign", params: ["0x00", "0x00"]}); }
              catch (e) { error = {code: e.code, message: e.message, isError: e instanceof Error}; }
              const accounts = await eth.request({method: "eth_accounts"});
              return {isMetaMask: eth.isMetaMask, chained, error, accounts};
            }"""
        )

    assert seen == {
        "isMetaMask": False,
        "chained": True,
        "error": {"code": 4200, "message": "unsupported method personal_sign", "isError": True},
        "accounts": [ACCOUNT.address],
    }
    assert wallet.requests == [
        WalletRequest("personal_sign", ["0x00", "0x00"]),
        WalletRequest("eth_accounts", None),
    ]


def test_chromium_was_started_once_with_a_fresh_profile(chromium: Chromium) -> None:
    assert chromium.process.poll() is None
    assert chromium.endpoint.startswith("ws://127.0.0.1:")
    assert chromium.profile.name.startswith("motet-chromium-")


@pytest.mark.parametrize(("ci", "raised"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_missing_chromium_skips_or_fails_under_ci(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ci: str, raised: type[BaseException]
) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(raised, match="make install"):
        require_chromium(tmp_path / "chromium")
