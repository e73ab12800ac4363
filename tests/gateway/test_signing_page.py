"""End to end in headless Chromium: the gateway's real signing page, a wallet injected before load (an EIP-1193
provider backed by a local key), a delegation and a task order signed, the run on the embedded chain with the
local market on the real model, the result on the page and the settlement on chain within the cap."""

from __future__ import annotations

import os

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import HexStr
from playwright.async_api import Page, expect
from support.browser import chain_sender, inject_wallet
from support.gateway import DOCUMENT, Setup

from motet.chain import Chain
from motet.gateway import Gateway
from motet.payments import Delegation, DelegationClient, TaskOrder
from motet.registry import Registry
from motet.units import GWEI

SCREENSHOT = os.environ.get("MOTET_PAGE_SCREENSHOT")
"""Set to a .png path to keep a picture of the page at the end (docs/gateway-page.png is made so)."""


async def test_the_page_delegates_runs_a_task_and_shows_the_settled_result(setup: Setup, page: Page) -> None:
    wallet = await inject_wallet(page, setup.wallet, setup.chain.chain_id)
    await page.goto(setup.url)
    await page.locator("body[data-ready]").wait_for()
    await expect(page.locator("#network")).to_contain_text(setup.session_key.address)

    await page.click("#connect")
    await expect(page.locator("#address")).to_have_text(setup.wallet.address)
    await expect(page.locator("#balance")).to_have_text("1,000,000 gwei")

    await page.fill("#cap", "500")
    await page.fill("#hours", "2")
    # Before signing, the page says what the signature allows under the contract's rules.
    meaning = page.locator("#delegation-meaning")
    await expect(meaning).to_contain_text("may place up to 500 gwei of your balance in payment channels")
    await expect(meaning).to_contain_text("money already placed in a channel stays payable to that agent")
    await page.click("#sign-delegation")

    delegation_id = await page.locator("#delegation-id").inner_text(timeout=30_000)

    await page.fill('[name="input-document"]', DOCUMENT)
    await page.fill("#budget", "150")
    # A deadline past the delegation's expiry is refused before the wallet is asked to sign anything.
    await page.fill("#minutes", "1440")
    await page.click("#run")
    await expect(page.locator("#error")).to_contain_text("after the delegation's expiry")
    assert len(wallet.signed) == 1
    await page.fill("#minutes", "15")
    await page.click("#run")
    await expect(page.locator("#run-status")).to_have_text("done", timeout=300_000)
    await expect(page.locator("#error")).to_be_hidden()

    # What the wallet signed is what the page showed: motet's types in this chain's domain, with the form's values.
    assert wallet.methods[:2] == ["eth_requestAccounts", "eth_chainId"]
    signed_delegation, signed_order = wallet.signed
    delegation = Delegation.from_typed_data(signed_delegation, setup.domain)
    order = TaskOrder.from_typed_data(signed_order, setup.domain)
    assert delegation_id == "0x" + delegation.digest(setup.domain).hex() == "0x" + order.delegation.hex()
    assert (delegation.cap, delegation.session_key, delegation.expiry - delegation.valid_after) == (
        500 * GWEI,
        setup.session_key.address,
        2 * 3600 + 60,
    )
    assert set(delegation.capabilities) >= {"extract_text", "summarize", "compose_report"}
    assert (order.workflow, order.budget, order.input_values()) == (
        "research-brief",
        150 * GWEI,
        {"document": DOCUMENT},
    )

    # The page shows the report, the receipts and the settlement.
    report = (
        await page.locator("#outputs h3", has_text="report")
        .locator("xpath=following-sibling::pre")
        .inner_text()
    )
    assert "Keywords:" in report  # the reporter agent's layout around the model's summary
    await expect(page.locator("#receipts tbody tr")).to_have_count(5)
    paid_text = await page.locator("#settlement dd.paid").inner_text()
    paid = int(paid_text.removesuffix(" gwei").replace(",", "")) * GWEI
    tx_hash = (await page.locator("#settlement dd.transactions").inner_text()).split()[0]

    # The chain agrees: the settlement transaction succeeded, and the delegation's cap counts the money placed in
    # its channels (what was paid, and what a channel holds unspent, refunded when it settles), within the cap.
    assert setup.chain.w3.eth.get_transaction_receipt(HexStr(tx_hash))["status"] == 1
    state = DelegationClient(setup.chain).state(delegation.digest(setup.domain))
    assert state is not None
    assert 0 < paid <= state.spent <= state.cap and paid <= order.budget
    # The account table on the page was refreshed after the run.
    await expect(page.locator("#delegations tbody tr")).to_have_count(1)
    whole, fraction = divmod(state.spent, GWEI)
    placed = f"{whole:,}" + (f".{fraction:09d}".rstrip("0") if fraction else "") + " gwei"
    await expect(page.locator("#delegations tbody tr td").nth(2)).to_have_text(placed)
    if SCREENSHOT:
        await page.screenshot(path=SCREENSHOT, full_page=True)


async def test_the_wallet_deposits_withdraws_and_revokes_from_the_page(setup: Setup, page: Page) -> None:
    # A wallet with coins but nothing in the channels contract yet; it sends its own transactions.
    holder = setup.chain.accounts[7]
    client = DelegationClient(setup.chain)
    assert client.balance(holder.address) == 0
    wallet = await inject_wallet(
        page, holder, setup.chain.chain_id, send=chain_sender(setup.chain.w3, holder)
    )
    await page.goto(setup.url)
    await page.locator("body[data-ready]").wait_for()
    await page.click("#connect")
    await expect(page.locator("#balance")).to_have_text("0 gwei")

    await page.fill("#amount", "1000")
    await page.click("#deposit")
    await expect(page.locator("#balance")).to_have_text("1,000 gwei")
    await page.fill("#amount", "400")
    await page.click("#withdraw")
    await expect(page.locator("#balance")).to_have_text("600 gwei")
    await expect(page.locator("#tx-status")).to_contain_text("withdrawing 400 gwei: done in transaction")
    assert client.balance(holder.address) == 600 * GWEI

    # Too much to withdraw: the wallet cannot send it, the page says so, and nothing moves.
    await page.fill("#amount", "601")
    await page.click("#withdraw")
    await expect(page.locator("#error")).to_contain_text("cannot send this transaction")
    assert client.balance(holder.address) == 600 * GWEI

    await page.fill("#cap", "300")
    await page.click("#sign-delegation")
    delegation_id = await page.locator("#delegation-id").inner_text(timeout=30_000)
    row = page.locator(f'#delegations tr[data-delegation="{delegation_id}"]')
    await expect(row.locator("td").nth(4)).to_have_text("active")
    await row.locator("button.revoke").click()
    await expect(row.locator("td").nth(4)).to_have_text("revoked")
    await expect(row.locator("button.revoke")).to_have_count(0)

    state = client.state(bytes.fromhex(delegation_id[2:]))
    assert state is not None and state.revoked
    assert len(wallet.sent) == 3  # deposit, withdraw, revoke: each sent by the wallet, none by the gateway
    for tx_hash in wallet.sent:
        receipt = setup.chain.w3.eth.get_transaction_receipt(HexStr(tx_hash))
        assert receipt["status"] == 1 and receipt["from"] == holder.address


@pytest.mark.anvil
async def test_a_wallet_on_another_chain_is_switched_and_the_chain_added_when_unknown(
    anvil_chain: Chain, page: Page
) -> None:
    holder: LocalAccount = Account.create()
    gateway = Gateway(anvil_chain, Registry(anvil_chain), session_key=Account.create(), workflows={})
    async with gateway.running() as url:
        wallet = await inject_wallet(page, holder, chain_id=1)  # on mainnet, and knows no other chain
        await page.goto(url)
        await page.locator("body[data-ready]").wait_for()
        await page.click("#connect")
        await expect(page.locator("#connect")).to_have_text("Connected")
        await expect(page.locator("#balance")).to_have_text("0 gwei")
    assert wallet.methods[:5] == [
        "eth_requestAccounts",
        "eth_chainId",
        "wallet_switchEthereumChain",  # refused with 4902: unknown
        "wallet_addEthereumChain",
        "eth_chainId",
    ]
    (added,) = wallet.added_chains
    assert (added["chainId"], added["rpcUrls"]) == (hex(anvil_chain.chain_id), [anvil_chain.url])
    assert wallet.chain_id == anvil_chain.chain_id


async def test_the_embedded_chain_is_out_of_a_wallets_reach_unless_it_knows_it(
    setup: Setup, page: Page
) -> None:
    wallet = await inject_wallet(page, setup.wallet, chain_id=1)
    await page.goto(setup.url)
    await page.locator("body[data-ready]").wait_for()
    await page.click("#connect")
    await expect(page.locator("#error")).to_contain_text("out of any wallet's reach")
    await expect(page.locator("#connect")).to_have_text("Connect wallet")
    await expect(page.locator("#step-delegation")).to_have_class("locked")
    assert "wallet_addEthereumChain" not in wallet.methods  # no RPC URL to give it

    wallet.known_chains.add(setup.chain.chain_id)  # a wallet that knows the chain switches to it
    await page.click("#connect")
    await expect(page.locator("#connect")).to_have_text("Connected")
    await expect(page.locator("#error")).to_be_hidden()
    assert wallet.chain_id == setup.chain.chain_id

    # The wallet switches accounts: what the page showed is no longer the wallet's, so it asks to connect again.
    await page.evaluate(
        "window.ethereum.emit('accountsChanged', ['0x000000000000000000000000000000000000dEaD'])"
    )
    await expect(page.locator("#error")).to_contain_text("changed its account or network: connect again")
    await expect(page.locator("#connect")).to_have_text("Connect wallet")
    await expect(page.locator("#step-delegation")).to_have_class("locked")
