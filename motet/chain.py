"""The chain motet runs on: embedded py-evm (the default), a local anvil, or any JSON-RPC node.

Example:
    >>> chain = Chain.embedded()
    >>> channels = chain.contract("PaymentChannels")   # compiled, deployed on first use
    >>> chain.balance(chain.accounts[0].address) > 0
    True

Every transaction is signed locally with the sender's key and sent raw, on every backend, so the same
code path runs in tests and in production. Reverts surface as `TransactionReverted` carrying the
contract's revert string.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, ParamSpec, TypeVar
from urllib.parse import urlparse

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError
from web3.types import TxReceipt

from motet._anvil import start_anvil
from motet._build import compile_contract
from motet.errors import (
    AccountError,
    ChainConnectionError,
    ChainError,
    InsufficientFunds,
    TransactionReverted,
)
from motet.settings import Settings
from motet.units import Wei

P = ParamSpec("P")
T = TypeVar("T")

ChainKind = Literal["embedded", "anvil", "rpc"]

__all__ = [
    "NATIVE_ASSET",
    "Chain",
    "ChainKind",
    "Wei",
]

NATIVE_ASSET = "0x" + "00" * 20
"""How motet's contracts name the native coin where an ERC-20 address is expected."""


_CHANNELS_DOMAIN = ("motet-channels", "1")
"""The EIP-712 domain name and version `PaymentChannels` is deployed with."""


class Chain:
    """A connection to an EVM chain, with the accounts motet may sign for."""

    def __init__(
        self,
        w3: Web3,
        accounts: Sequence[LocalAccount],
        *,
        kind: ChainKind,
        settings: Settings | None = None,
        process: subprocess.Popen[bytes] | None = None,
        url: str | None = None,
    ) -> None:
        self.w3 = w3
        self.accounts = list(accounts)
        self.kind: ChainKind = kind
        self.settings = settings or Settings()
        self.url = url
        self.chain_id: int = w3.eth.chain_id
        self._process = process
        self._contracts: dict[str, Contract] = {}
        self.last_receipt: TxReceipt | None = None
        """The receipt of the last transaction sent through this object (for gas figures)."""
        self._sending: dict[str, threading.Lock] = {}
        self._sending_lock = threading.Lock()

    # -- constructors ---------------------------------------------------------------------------------

    @classmethod
    def embedded(cls, *, accounts: int = 10, settings: Settings | None = None) -> Chain:
        """An in-process py-evm chain with `accounts` funded dev accounts (1,000,000 ETH each)."""
        from eth_tester import EthereumTester, PyEVMBackend
        from web3 import EthereumTesterProvider

        state = PyEVMBackend.generate_genesis_state(num_accounts=accounts)
        backend = PyEVMBackend(genesis_state=state)
        tester = EthereumTester(backend)
        w3 = Web3(EthereumTesterProvider(tester))
        keys = [Account.from_key(k.to_bytes()) for k in backend.account_keys]
        return cls(w3, keys, kind="embedded", settings=settings)

    @classmethod
    def anvil(
        cls,
        *,
        binary: str | Path | None = None,
        accounts: int = 10,
        settings: Settings | None = None,
        startup_timeout: float = 20.0,
    ) -> Chain:
        """Start anvil on 127.0.0.1 at a free port; `close()` (or leaving a `with` block) stops it."""
        proc, url, w3, keys = start_anvil(binary, accounts=accounts, startup_timeout=startup_timeout)
        return cls(w3, keys, kind="anvil", settings=settings, process=proc, url=url)

    @classmethod
    def connect(
        cls,
        url: str | None = None,
        key: str | None = None,
        *,
        settings: Settings | None = None,
        timeout: float = 10.0,
    ) -> Chain:
        """Connect to any JSON-RPC node.

        `url` defaults to `MOTET_RPC_URL`; `key` to `MOTET_PRIVATE_KEY` (hex), or a keystore file in
        `MOTET_KEYSTORE` unlocked with `MOTET_KEYSTORE_PASSWORD`.
        """
        url = url or os.environ.get("MOTET_RPC_URL")
        if not url:
            raise ChainConnectionError(
                "no RPC URL: pass url=... or set MOTET_RPC_URL (e.g. http://127.0.0.1:8545)"
            )
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ChainConnectionError(
                f"RPC URL {url!r} is not an http(s) URL: use the form http://host:port", url=url
            )
        w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": timeout}))
        try:
            w3.eth.chain_id  # noqa: B018 - the first request proves the node answers
        except Exception as exc:
            raise ChainConnectionError(
                f"no JSON-RPC node answers at {url} ({type(exc).__name__}: {exc}): check the URL and that "
                "the node is running",
                url=url,
            ) from exc
        return cls(w3, [_load_key(key)], kind="rpc", settings=settings, url=url)

    # -- lifecycle ------------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the anvil process this chain started, if any."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process is not None:
            for pipe in (self._process.stdout, self._process.stderr):
                if pipe is not None:
                    pipe.close()
        self._process = None

    def __enter__(self) -> Chain:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Chain(kind={self.kind!r}, chain_id={self.chain_id}, url={self.url!r})"

    # -- accounts and time ----------------------------------------------------------------------------

    @property
    def default_account(self) -> LocalAccount:
        return self.accounts[0]

    def balance(self, address: str) -> Wei:
        return Wei(self.w3.eth.get_balance(Web3.to_checksum_address(address)))

    async def off_loop(self, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`call(*args, **kwargs)` without holding up the event loop: on a worker thread for a node, whose
        reads and transactions wait on the network, so a slow node delays only what waits for it; at once for
        the in-process embedded chain, which answers at once and is not safe to use from two threads."""
        if self.kind == "embedded":
            return call(*args, **kwargs)
        return await asyncio.to_thread(call, *args, **kwargs)

    def _sender_lock(self, address: str) -> threading.Lock:
        """One lock per sending account: its next nonce is read and used by one thread at a time."""
        with self._sending_lock:
            return self._sending.setdefault(address.lower(), threading.Lock())

    def timestamp(self) -> int:
        """The timestamp of the latest block."""
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def set_next_timestamp(self, timestamp: int) -> None:
        """Make the next transaction land in a block with exactly this timestamp (dev chains only)."""
        if self.kind == "embedded":
            tester = self.w3.provider.ethereum_tester  # type: ignore[attr-defined]
            # eth-tester's time_travel makes the pending block's timestamp exactly `timestamp`.
            tester.time_travel(timestamp)
        elif self.kind == "anvil":
            self.w3.provider.make_request("evm_setNextBlockTimestamp", [timestamp])  # type: ignore[arg-type]
        else:
            raise ChainError("only dev chains (embedded, anvil) can move time")

    def wait_for_block_after(self, number: int, *, timeout: float = 120.0, poll: float = 0.5) -> int:
        """Wait until the chain's latest block is after block `number`, and return the latest block number.

        The embedded chain mines a block per transaction and anvil mines only on demand, so on both a block
        is mined when needed; a node is polled (`ChainError` after `timeout` seconds without a new block)."""
        latest = int(self.w3.eth.block_number)
        if latest > number:
            return latest
        if self.kind == "anvil":
            self.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        elif self.kind == "embedded":
            self.w3.provider.ethereum_tester.mine_blocks(1)  # type: ignore[attr-defined]
        else:
            deadline = time.monotonic() + timeout
            while int(self.w3.eth.block_number) <= number:
                if time.monotonic() > deadline:
                    raise ChainError(f"no block after {number} in {timeout:.0f} s: is the node still mining?")
                time.sleep(poll)
        return int(self.w3.eth.block_number)

    def advance_time(self, seconds: int) -> None:
        """Move the chain's clock forward (dev chains only)."""
        self.set_next_timestamp(self.timestamp() + seconds)
        if self.kind == "anvil":
            self.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

    def snapshot(self) -> Any:
        """Save the chain state (dev chains only); give the result to `revert`."""
        if self.kind == "embedded":
            return self.w3.provider.ethereum_tester.take_snapshot()  # type: ignore[attr-defined]
        return self.w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]

    def revert(self, snapshot: Any) -> None:
        if self.kind == "embedded":
            self.w3.provider.ethereum_tester.revert_to_snapshot(snapshot)  # type: ignore[attr-defined]
        else:
            self.w3.provider.make_request("evm_revert", [snapshot])  # type: ignore[arg-type]

    # -- contracts ------------------------------------------------------------------------------------

    def contract(self, name: str) -> Contract:
        """motet's contract `name` on this chain, deployed on first use and recorded per chain id."""
        if name in self._contracts:
            return self._contracts[name]
        artifact = compile_contract(name, self.settings.cache_dir)
        record = self._deployments().get(name)
        if record and record.get("source_hash") == artifact.source_hash:
            # Vyper appends immutables to the runtime code, so the deployed code starts with it; the
            # immutables themselves (challenge period, registry, domain) are read back and compared.
            onchain = bytes(self.w3.eth.get_code(Web3.to_checksum_address(record["address"])))
            if onchain.startswith(artifact.runtime_bytecode):
                found = self.w3.eth.contract(
                    address=Web3.to_checksum_address(record["address"]), abi=artifact.abi
                )
                if self._immutables_problem(name, found) is None:
                    self._contracts[name] = found
                    return found
        if name == "Validation":
            # The registry names its slasher once: when it names one already, that is this chain's.
            named = self._registry_validation()
            if named is not None:
                return self.use(name, named)
        deployed = self.deploy(name, *self._constructor_args(name))
        if name == "Validation":
            self.send(
                self.contract("AgentRegistry").functions.set_validation(deployed.address),
                action="naming the validation contract in the agent registry",
            )
        self._record_deployment(name, deployed.address, artifact.source_hash)
        self._contracts[name] = deployed
        return deployed

    def _registry_validation(self) -> str | None:
        """The validation contract this chain's agent registry names, or None while it names none."""
        named = Web3.to_checksum_address(self.contract("AgentRegistry").functions.validation().call())
        return None if int(named, 16) == 0 else named

    def _constructor_args(self, name: str) -> tuple[Any, ...]:
        if name == "PaymentChannels":
            return (self.settings.challenge_period, self.contract("AgentRegistry").address)
        if name == "AgentRegistry":
            return (self.settings.unbonding_delay,)
        if name == "Reputation":
            return (self.contract("AgentRegistry").address, self.contract("PaymentChannels").address)
        if name == "Validation":
            d = self.settings.disputes
            return (
                self.contract("AgentRegistry").address,
                self.contract("PaymentChannels").address,
                d.bond,
                d.slash_bps,
                d.reward_bps,
                d.validator_fee,
                d.validators_per_dispute,
                d.no_reveal_bps,
                d.minority_bps,
                d.min_validator_stake,
                d.commit_window,
                d.reveal_window,
            )
        return ()

    def _immutables_problem(self, name: str, contract: Contract) -> str | None:
        """Why the immutables of motet's contract `name` at `contract` are not what motet deploys it with
        (the code alone does not say: Vyper keeps them after the runtime code), or None when they are."""
        address = contract.address
        try:
            if name == "AgentRegistry":
                delay = int(contract.functions.UNBONDING_DELAY().call())
                if delay != self.settings.unbonding_delay:
                    return (
                        f"its unbonding delay is {delay} s, but motet's is {self.settings.unbonding_delay} s "
                        "(settings.unbonding_delay)"
                    )
            elif name == "PaymentChannels":
                period = int(contract.functions.CHALLENGE_PERIOD().call())
                if period != self.settings.challenge_period:
                    return (
                        f"its challenge period is {period} s, but motet's is {self.settings.challenge_period} s "
                        "(settings.challenge_period)"
                    )
                separator = bytes(contract.functions.domain_separator().call())
                if separator != _domain_separator(*_CHANNELS_DOMAIN, self.chain_id, address):
                    return "its EIP-712 domain is not motet-channels version 1 on this chain at this address"
                registry = Web3.to_checksum_address(contract.functions.REGISTRY().call())
                known = self._contracts.get("AgentRegistry")
                if known is not None and registry != known.address:
                    return f"it pays agents of the registry {registry}, but this chain's registry is {known.address}"
                if known is None:
                    self.use("AgentRegistry", registry)
            elif name == "Reputation":
                for immutable, bound in (("REGISTRY", "AgentRegistry"), ("CHANNELS", "PaymentChannels")):
                    found = Web3.to_checksum_address(contract.functions[immutable]().call())
                    mine = self._contracts.get(bound)
                    if mine is not None and found != mine.address:
                        return f"it reads the {bound} at {found}, but this chain's is at {mine.address}"
                    if mine is None:
                        try:
                            self.use(bound, found)
                        except ChainError as exc:
                            return f"the {bound} it reads is not motet's: {exc}"
            elif name == "Validation":
                problem = self._validation_problem(contract)
                if problem is not None:
                    return problem
        except ChainError as exc:
            return f"its agent registry is not motet's: {exc}"
        except Exception as exc:  # a getter that is missing or reverts: not motet's contract
            return f"its settings cannot be read ({type(exc).__name__}: {exc})"
        return None

    def _validation_problem(self, contract: Contract) -> str | None:
        """Why the Validation contract at `contract` is not what motet deploys (settings.disputes, this chain's
        registry and channels, named by the registry as its slasher), or None when it is."""
        d = self.settings.disputes
        expected = {
            "BOND": d.bond,
            "SLASH_BPS": d.slash_bps,
            "REWARD_BPS": d.reward_bps,
            "VALIDATOR_FEE": d.validator_fee,
            "VALIDATORS_PER_DISPUTE": d.validators_per_dispute,
            "NO_REVEAL_BPS": d.no_reveal_bps,
            "MINORITY_BPS": d.minority_bps,
            "MIN_VALIDATOR_STAKE": d.min_validator_stake,
            "COMMIT_WINDOW": d.commit_window,
            "REVEAL_WINDOW": d.reveal_window,
        }
        for immutable, value in expected.items():
            found = int(contract.functions[immutable]().call())
            if found != value:
                return f"its {immutable} is {found}, but motet's is {value} (settings.disputes.{immutable.lower()})"
        for immutable, bound in (("REGISTRY", "AgentRegistry"), ("CHANNELS", "PaymentChannels")):
            at = Web3.to_checksum_address(contract.functions[immutable]().call())
            mine = self._contracts.get(bound)
            if mine is not None and at != mine.address:
                return f"it reads the {bound} at {at}, but this chain's is at {mine.address}"
            if mine is None:
                try:
                    self.use(bound, at)
                except ChainError as exc:
                    return f"the {bound} it reads is not motet's: {exc}"
        named = self._registry_validation()
        if named != contract.address:
            return f"the agent registry names {named or 'no validation contract'} as its slasher, not this contract"
        return None

    def use(self, name: str, address: str) -> Contract:
        """Use motet's contract `name` already deployed at `address` (say, the channels contract an agent's
        402 names), after checking that the code there is that contract, deployed with the settings motet
        expects (challenge period, unbonding delay, EIP-712 domain, the agent registry it trusts); later
        `contract(name)` returns it. Raises `ChainError` naming what differs."""
        artifact = compile_contract(name, self.settings.cache_dir)
        try:
            checksum = Web3.to_checksum_address(address)
        except ValueError as exc:
            raise ChainError(f"{address!r} is not a contract address") from exc
        if not bytes(self.w3.eth.get_code(checksum)).startswith(artifact.runtime_bytecode):
            raise ChainError(
                f"the code at {checksum} is not motet's {name} contract (version {artifact.source_hash[:8]})"
            )
        found = self.w3.eth.contract(address=checksum, abi=artifact.abi)
        problem = self._immutables_problem(name, found)
        if problem is not None:
            raise ChainError(
                f"the {name} contract at {checksum} has motet's code but not motet's settings: {problem}; "
                "motet refuses to use it"
            )
        self._contracts[name] = found
        return found

    def deploy(
        self, source: str | Path, *args: Any, sender: LocalAccount | None = None, value: int = 0
    ) -> Contract:
        """Compile (cached) and deploy a contract by name or .vy path; returns the bound contract."""
        artifact = compile_contract(source, self.settings.cache_dir)
        factory = self.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        receipt = self.send(
            factory.constructor(*args), sender=sender, value=value, action=f"deploying {artifact.name}"
        )
        address = receipt["contractAddress"]
        assert address is not None
        return self.w3.eth.contract(address=address, abi=artifact.abi)

    def at(self, source: str | Path, address: str) -> Contract:
        """Bind a deployed contract by name or .vy path."""
        artifact = compile_contract(source, self.settings.cache_dir)
        return self.w3.eth.contract(address=Web3.to_checksum_address(address), abi=artifact.abi)

    def _deployments(self) -> dict[str, dict[str, str]]:
        if self.kind != "rpc":
            return {}  # dev chains start empty every time
        path = self.settings.deployments_file
        if not path.is_file():
            return {}
        data: dict[str, dict[str, dict[str, str]]] = json.loads(path.read_text())
        return data.get(str(self.chain_id), {})

    def _record_deployment(self, name: str, address: str, source_hash: str) -> None:
        if self.kind != "rpc":
            return
        path = self.settings.deployments_file
        data: dict[str, dict[str, dict[str, str]]] = json.loads(path.read_text()) if path.is_file() else {}
        data.setdefault(str(self.chain_id), {})[name] = {"address": address, "source_hash": source_hash}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(path)

    # -- transactions ---------------------------------------------------------------------------------

    def send(
        self,
        call: ContractFunction | Any,
        *,
        sender: LocalAccount | None = None,
        value: int = 0,
        action: str | None = None,
    ) -> TxReceipt:
        """Sign `call` (a contract function or constructor) with `sender`'s key, send it, wait for it.

        Raises `TransactionReverted` with the contract's reason, or `InsufficientFunds` naming the account.
        """
        account = sender or self.default_account
        action = action or f"{getattr(call, 'fn_name', 'transaction')}"
        balance = self.balance(account.address)
        if balance <= value:
            raise InsufficientFunds(account.address, balance, value + 21_000, action)
        with self._sender_lock(account.address):  # from reading the nonce to handing the transaction over
            try:
                tx = call.build_transaction(
                    {  # type: ignore[arg-type]
                        "from": account.address,
                        "value": value,
                        "nonce": self.w3.eth.get_transaction_count(account.address, "pending"),
                    }
                )
            except ContractLogicError as exc:
                raise TransactionReverted(action, _revert_reason(str(exc.message or exc))) from exc
            except Exception as exc:
                # eth-tester raises its own TransactionFailed("execution reverted: <reason>") on estimate.
                if "execution reverted" in str(exc):
                    raise TransactionReverted(action, _revert_reason(str(exc))) from exc
                self._raise_if_unfunded(account.address, value, action, exc)
                raise ChainError(f"{action} failed: {exc}") from exc
            needed = value + int(tx["gas"]) * int(tx.get("maxFeePerGas", tx.get("gasPrice", 0)))
            if balance < needed:
                raise InsufficientFunds(account.address, balance, needed, action)
            signed = account.sign_transaction(tx)  # type: ignore[arg-type]
            tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
        self.last_receipt = receipt
        if receipt["status"] != 1:
            raise TransactionReverted(action, "reverted on chain after a successful estimate")
        return receipt

    def transfer(self, to: str, value: int, *, sender: LocalAccount | None = None) -> TxReceipt:
        """Send `value` wei of the native coin."""
        account = sender or self.default_account
        with self._sender_lock(account.address):
            tx: dict[str, Any] = {
                "from": account.address,
                "to": Web3.to_checksum_address(to),
                "value": value,
                "gas": 21_000,
                "nonce": self.w3.eth.get_transaction_count(account.address, "pending"),
                "chainId": self.chain_id,
                "maxFeePerGas": 2 * self.w3.eth.gas_price,
                "maxPriorityFeePerGas": 1,
            }
            balance = self.balance(account.address)
            needed = value + 21_000 * tx["maxFeePerGas"]
            if balance < needed:
                raise InsufficientFunds(account.address, balance, needed, f"sending {value} wei to {to}")
            tx_hash = self.w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
        self.last_receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
        return self.last_receipt

    def approve(self, token: str, spender: str, amount: int, *, sender: LocalAccount | None = None) -> None:
        """Let `spender` take `amount` of the ERC-20 `token` from `sender`."""
        erc20 = self.w3.eth.contract(address=Web3.to_checksum_address(token), abi=_ERC20_APPROVE_ABI)
        self.send(
            erc20.functions.approve(Web3.to_checksum_address(spender), amount),
            sender=sender,
            action="approving the deposit",
        )

    def wallet_accepts(self, wallet: str, digest: bytes, signature: bytes) -> bool:
        """Whether the contract wallet at `wallet` accepts `signature` over `digest` (ERC-1271's
        `isValidSignature`); a wallet that reverts or answers anything but the magic value does not."""
        contract = self.w3.eth.contract(address=Web3.to_checksum_address(wallet), abi=_ERC1271_ABI)
        try:
            answer = contract.functions.isValidSignature(digest, signature).call()
        except Exception:
            return False
        return bytes(answer) == _ERC1271_MAGIC

    def _raise_if_unfunded(self, address: str, value: int, action: str, exc: Exception) -> None:
        text = str(exc).lower()
        if any(hint in text for hint in ("insufficient funds", "insufficient balance", "cannot afford")):
            raise InsufficientFunds(address, self.balance(address), value, action) from exc


def _function_abi(name: str, mutability: str, inputs: dict[str, str], output: str) -> list[dict[str, Any]]:
    """The ABI of one function of a standard interface, enough to call it on a contract motet did not build."""
    return [
        {
            "name": name,
            "type": "function",
            "stateMutability": mutability,
            "inputs": [{"name": arg, "type": kind} for arg, kind in inputs.items()],
            "outputs": [{"name": "", "type": output}],
        }
    ]


_ERC20_APPROVE_ABI = _function_abi(
    "approve", "nonpayable", {"spender": "address", "amount": "uint256"}, "bool"
)
_ERC1271_ABI = _function_abi("isValidSignature", "view", {"hash": "bytes32", "signature": "bytes"}, "bytes4")
_ERC1271_MAGIC = bytes.fromhex("1626ba7e")


def _domain_separator(name: str, version: str, chain_id: int, contract: str) -> bytes:
    """The EIP-712 domain separator of `(name, version, chain_id, contract)`."""
    typehash = Web3.keccak(
        text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
    )
    return bytes(
        Web3.keccak(
            typehash
            + Web3.keccak(text=name)
            + Web3.keccak(text=version)
            + chain_id.to_bytes(32, "big")
            + bytes(12)
            + bytes.fromhex(contract[2:])
        )
    )


def _revert_reason(message: str) -> str:
    for prefix in ("execution reverted: ", "execution reverted"):
        if message.startswith(prefix):
            return message[len(prefix) :].strip()
    return message


def _load_key(key: str | None) -> LocalAccount:
    key = key or os.environ.get("MOTET_PRIVATE_KEY")
    if key:
        try:
            account: LocalAccount = Account.from_key(key)
            return account
        except (ValueError, TypeError) as exc:
            raise AccountError(
                "the private key is not a 32-byte hex string (0x followed by 64 hex digits)"
            ) from exc
    keystore = os.environ.get("MOTET_KEYSTORE")
    if keystore:
        password = os.environ.get("MOTET_KEYSTORE_PASSWORD")
        if password is None:
            raise AccountError(f"MOTET_KEYSTORE is set ({keystore}) but MOTET_KEYSTORE_PASSWORD is not")
        try:
            data = json.loads(Path(keystore).read_text())
            unlocked: LocalAccount = Account.from_key(Account.decrypt(data, password))
            return unlocked
        except (OSError, ValueError) as exc:
            raise AccountError(f"cannot unlock keystore {keystore}: {exc}") from exc
    raise AccountError(
        "no signing key: pass key=..., or set MOTET_PRIVATE_KEY, or MOTET_KEYSTORE and MOTET_KEYSTORE_PASSWORD"
    )
