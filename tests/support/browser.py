"""A real headless Chromium for end-to-end tests, and an EIP-1193 wallet backed by a local key.

Chromium is Debian's ``/usr/bin/chromium`` (``make install`` installs it), never a browser that playwright
downloads. It is started once per test session as a plain process (:class:`Chromium`), and each test
connects to it with playwright's *async* API over the DevTools protocol (:func:`connect`), on the test's
own event loop: a playwright connection is bound to the loop that made it, and the suite's async tests
and fixtures run on function-scoped loops (pytest-asyncio), next to the servers they start.

:func:`inject_wallet` installs ``window.ethereum`` before the page's scripts run; every request goes to
Python, which answers it with the local key and records it in a :class:`WalletLog`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, async_playwright
from web3 import Web3

CHROMIUM = Path("/usr/bin/chromium")
# --disable-background-networking and friends keep Chromium off the (closed) network: without them it
# tries to reach Google's services at start and logs the refused connections.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
MISSING = (
    "the browser tests need Debian's chromium at {path}: run `make install`, it installs Debian's chromium "
    "(or: apt-get install -y --no-install-recommends chromium chromium-driver)"
)

log = logging.getLogger("browser")


def require_chromium(path: Path = CHROMIUM) -> None:
    """Skip the test when Chromium is missing; fail it instead under ``CI=true``, where it must be there."""
    if path.is_file() and os.access(path, os.X_OK):
        return
    message = MISSING.format(path=path)
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


class Chromium:
    """A headless Chromium process with a fresh, empty profile, listening for DevTools on 127.0.0.1."""

    def __init__(self, process: subprocess.Popen[bytes], profile: Path, endpoint: str, started_in: float):
        self.process = process
        self.profile = profile
        self.endpoint = endpoint  # ws://127.0.0.1:PORT/devtools/browser/ID, for connect_over_cdp
        self.started_in = started_in  # seconds from spawning the process to its DevTools endpoint

    @classmethod
    def start(cls, executable: Path = CHROMIUM, timeout: float = 30.0) -> Chromium:
        profile = Path(tempfile.mkdtemp(prefix="motet-chromium-"))
        stderr = (profile / "chromium.log").open("wb")
        started = time.perf_counter()
        process = subprocess.Popen(
            [str(executable), *CHROMIUM_ARGS, f"--user-data-dir={profile}", "--remote-debugging-port=0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        stderr.close()
        # Chromium writes the port it picked, and the browser target's path, to DevToolsActivePort.
        port_file = profile / "DevToolsActivePort"
        while True:
            lines = port_file.read_text().split() if port_file.exists() else []
            if len(lines) >= 2:
                endpoint = f"ws://127.0.0.1:{lines[0]}{lines[1]}"
                return cls(process, profile, endpoint, time.perf_counter() - started)
            if process.poll() is not None or time.perf_counter() - started > timeout:
                output = cls._log_tail(profile)
                cls._stop(process, profile)
                raise RuntimeError(f"{executable} did not start (exit code {process.returncode}):\n{output}")
            time.sleep(0.02)

    @staticmethod
    def _log_tail(profile: Path) -> str:
        try:
            return "\n".join((profile / "chromium.log").read_text(errors="replace").splitlines()[-30:])
        except OSError:
            return ""

    @staticmethod
    def _stop(process: subprocess.Popen[bytes], profile: Path) -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(profile, ignore_errors=True)

    def close(self) -> None:
        self._stop(self.process, self.profile)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@asynccontextmanager
async def connect(chromium: Chromium) -> AsyncIterator[Browser]:
    """A playwright ``Browser`` on the running Chromium, on the current event loop; closed on exit.

    Closing it closes the contexts made through it and disconnects; Chromium itself keeps running.
    """
    async with async_playwright() as playwright:
        browser = await playwright.chromium.connect_over_cdp(chromium.endpoint)
        try:
            yield browser
        finally:
            await browser.close()


def log_page(page: Page) -> None:
    """Send the page's console and uncaught errors to the ``browser`` logger, shown with a failed test."""

    def console(message: ConsoleMessage) -> None:
        log.warning("console.%s: %s (%s)", message.type, message.text, message.location.get("url", ""))

    def page_error(error: Exception) -> None:
        log.warning("uncaught page error: %s", error)

    page.on("console", console)
    page.on("pageerror", page_error)


@contextmanager
def serve_html(pages: Mapping[str, str]) -> Iterator[str]:
    """Serve ``{path: html}`` over HTTP on 127.0.0.1 from a thread; yields the base URL (no trailing /)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            html = pages.get(self.path.split("?", 1)[0])
            body = (html if html is not None else "not found").encode()
            self.send_response(200 if html is not None else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# EIP-1193 provider errors (https://eips.ethereum.org/EIPS/eip-1193#provider-errors) and JSON-RPC's.
UNAUTHORIZED = 4100
UNSUPPORTED_METHOD = 4200
INVALID_PARAMS = -32602


@dataclass(frozen=True)
class WalletRequest:
    method: str
    params: Any  # as the page sent them: usually a list, None when it sent none


@dataclass
class WalletLog:
    """What the page asked the wallet: every request, in order, and every typed data it signed."""

    address: str
    chain_id: int  # the wallet's active chain: wallet_switchEthereumChain changes it
    known_chains: set[int] = field(
        default_factory=set
    )  # those it can switch to (wallet_addEthereumChain adds)
    added_chains: list[dict[str, Any]] = field(default_factory=list)  # what wallet_addEthereumChain was given
    requests: list[WalletRequest] = field(default_factory=list)
    signed: list[dict[str, Any]] = field(default_factory=list)  # parsed typed data, one per signature
    signatures: list[str] = field(default_factory=list)  # 0x-hex, in the order of `signed`
    sent: list[str] = field(default_factory=list)  # hashes of the transactions it sent, in order

    @property
    def methods(self) -> list[str]:
        return [request.method for request in self.requests]


class WalletError(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


BINDING = "__motetWalletRequest"

# The provider answers nothing itself: every request goes to Python through the binding, which returns
# {result} or {error: {code, message}}; an error becomes a rejected Promise of an Error with `code`.
PROVIDER_JS = """
(() => {
  const binding = "%(binding)s";
  const listeners = {};
  const provider = {
    isMetaMask: false,
    isMotetTestWallet: true,
    request(args) {
      if (!args || typeof args !== "object" || typeof args.method !== "string") {
        const error = new Error("request() takes {method: string, params?}");
        error.code = -32600;
        return Promise.reject(error);
      }
      return window[binding](args.method, args.params === undefined ? null : args.params).then((reply) => {
        if (reply.error) {
          const error = new Error(reply.error.message);
          error.code = reply.error.code;
          throw error;
        }
        return reply.result;
      });
    },
    on(event, listener) {
      (listeners[event] = listeners[event] || []).push(listener);
      return provider;
    },
    removeListener(event, listener) {
      listeners[event] = (listeners[event] || []).filter((l) => l !== listener);
      return provider;
    },
    emit(event, ...args) {
      for (const listener of listeners[event] || []) listener(...args);
      return (listeners[event] || []).length > 0;
    },
  };
  Object.defineProperty(window, "ethereum", {value: provider, configurable: true, enumerable: true});
  window.dispatchEvent(new Event("ethereum#initialized"));
})();
"""


SendTransaction = Callable[[dict[str, Any]], str]
"""Signs a transaction request (``from``, ``to``, ``data``, ``value`` as the page sent them) with the wallet's
key, sends it to the chain and returns its hash (0x-hex), as a wallet does for ``eth_sendTransaction``."""


def chain_sender(w3: Web3, account: LocalAccount) -> SendTransaction:
    """A :data:`SendTransaction` that fills nonce, gas and fees from ``w3``'s node, like a wallet would."""

    def send(request: dict[str, Any]) -> str:
        tx: dict[str, Any] = {
            "from": account.address,
            "to": Web3.to_checksum_address(request["to"]),
            "data": request.get("data", "0x"),
            "value": int(str(request.get("value", "0x0")), 0),
            "nonce": w3.eth.get_transaction_count(account.address, "pending"),
            "chainId": w3.eth.chain_id,
            "maxFeePerGas": 2 * w3.eth.gas_price,
            "maxPriorityFeePerGas": 1,
        }
        tx["gas"] = w3.eth.estimate_gas(tx)  # type: ignore[arg-type]
        return "0x" + bytes(w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)).hex()

    return send


# EIP-3326: the error a wallet answers wallet_switchEthereumChain with for a chain it does not know.
UNRECOGNIZED_CHAIN = 4902


def _chain_param(params: Any, method: str) -> tuple[int, dict[str, Any]]:
    if not isinstance(params, list) or len(params) != 1 or not isinstance(params[0], dict):
        raise WalletError(INVALID_PARAMS, f"{method} takes [{{chainId, ...}}]")
    chain = params[0].get("chainId")
    if not isinstance(chain, str) or not chain.startswith("0x"):
        raise WalletError(INVALID_PARAMS, f"{method}: chainId must be a 0x-hex string, not {chain!r}")
    return int(chain, 16), params[0]


def _answer(
    account: LocalAccount,
    wallet: WalletLog,
    send: SendTransaction | None,
    method: str,
    params: Any,
) -> Any:
    chain_id = wallet.chain_id
    if method in ("eth_requestAccounts", "eth_accounts"):
        return [account.address]
    if method == "eth_chainId":
        return hex(chain_id)
    if method == "wallet_switchEthereumChain":
        target, _ = _chain_param(params, method)
        if target not in wallet.known_chains:
            raise WalletError(
                UNRECOGNIZED_CHAIN, f"Unrecognized chain ID {hex(target)}. Try adding the chain."
            )
        wallet.chain_id = target
        return None
    if method == "wallet_addEthereumChain":  # EIP-3085: as MetaMask does, adding also switches
        target, spec = _chain_param(params, method)
        urls = spec.get("rpcUrls")
        if not isinstance(urls, list) or not urls or not all(isinstance(u, str) for u in urls):
            raise WalletError(
                INVALID_PARAMS, "wallet_addEthereumChain: rpcUrls must be a non-empty list of URLs"
            )
        wallet.added_chains.append(spec)
        wallet.known_chains.add(target)
        wallet.chain_id = target
        return None
    if method == "eth_signTypedData_v4":
        if not isinstance(params, list) or len(params) != 2 or not isinstance(params[0], str):
            raise WalletError(INVALID_PARAMS, "eth_signTypedData_v4 takes [address, typed data JSON]")
        if params[0].lower() != account.address.lower():
            raise WalletError(UNAUTHORIZED, f"{params[0]} is not an account of this wallet")
        try:
            # MetaMask takes the typed data as a JSON string (the standard) or an object.
            typed = json.loads(params[1]) if isinstance(params[1], str) else params[1]
            domain_chain = typed.get("domain", {}).get("chainId")
            if domain_chain is not None and int(str(domain_chain), 0) != chain_id:
                # As MetaMask does: a wallet signs only for the chain it is on.
                raise WalletError(
                    INVALID_PARAMS,
                    f'Provided chainId "{domain_chain}" must match the active chainId "{chain_id}"',
                )
            signed = Account.sign_typed_data(account.key, full_message=typed)
        except WalletError:
            raise
        except Exception as exc:
            raise WalletError(INVALID_PARAMS, f"cannot sign this typed data: {exc}") from exc
        signature = "0x" + bytes(signed.signature).hex()
        wallet.signed.append(typed)
        wallet.signatures.append(signature)
        return signature
    if method == "eth_sendTransaction" and send is not None:
        if not isinstance(params, list) or len(params) != 1 or not isinstance(params[0], dict):
            raise WalletError(INVALID_PARAMS, "eth_sendTransaction takes [transaction]")
        request = params[0]
        if str(request.get("from", "")).lower() != account.address.lower():
            raise WalletError(UNAUTHORIZED, f"{request.get('from')} is not an account of this wallet")
        try:
            tx_hash = send(request)
        except Exception as exc:  # a wallet reports a failed estimate or a refused send to the page
            raise WalletError(INVALID_PARAMS, f"cannot send this transaction: {exc}") from exc
        wallet.sent.append(tx_hash)
        return tx_hash
    raise WalletError(UNSUPPORTED_METHOD, f"unsupported method {method}")


async def inject_wallet(
    page: Page | BrowserContext, account: LocalAccount, chain_id: int, send: SendTransaction | None = None
) -> WalletLog:
    """Give ``page`` (or every page of a context) a ``window.ethereum`` that signs with ``account``'s key.

    Call it before ``page.goto``: the provider is installed before any script of the documents loaded
    after it. It answers ``eth_requestAccounts``/``eth_accounts`` with ``[account.address]``,
    ``eth_chainId`` with ``hex(chain_id)``, and ``eth_signTypedData_v4`` ``[address, JSON]`` with the
    signature of ``Account.sign_typed_data(account.key, full_message=...)``; a different address is
    rejected with code 4100, a typed data for another ``domain.chainId`` or a malformed one with
    -32602. With ``send`` (e.g. :func:`chain_sender`) it also answers ``eth_sendTransaction`` with the hash
    ``send`` returns. ``wallet_switchEthereumChain`` switches to a chain it knows (at first only ``chain_id``)
    and answers 4902 for any other; ``wallet_addEthereumChain`` adds a chain and switches to it. Any other
    method is rejected with 4200 ``unsupported method <name>``.
    """
    wallet = WalletLog(address=account.address, chain_id=chain_id, known_chains={chain_id})

    def request(method: str, params: Any) -> dict[str, Any]:
        wallet.requests.append(WalletRequest(method, params))
        try:
            return {"result": _answer(account, wallet, send, method, params)}
        except WalletError as error:
            return {"error": {"code": error.code, "message": error.message}}

    await page.expose_function(BINDING, request)
    await page.add_init_script(script=PROVIDER_JS % {"binding": BINDING})
    return wallet
