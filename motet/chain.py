"""The chain motet runs on: embedded py-evm (the default), a local anvil, or any JSON-RPC node.

Example:
    >>> chain = Chain.embedded()
    >>> channels = chain.contract("PaymentChannels")   # at its deterministic address, created there on first use
    >>> channels.address == deterministic_addresses(chain.settings)["PaymentChannels"]
    True
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, ParamSpec, TypeVar
from urllib.parse import urlparse

from eth_abi.abi import encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import HexStr
from web3 import Web3
from web3._utils.transactions import fill_transaction_defaults
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError
from web3.types import TxParams, TxReceipt

from motet._anvil import start_anvil
from motet._build import Artifact, compile_contract
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
DEV_CHAIN_ID = 31337
"""The chain id anvil and Hardhat give a local development chain."""

__all__ = [
    "CONTRACTS_VERSION",
    "DEPLOYMENT_PROXY",
    "NATIVE_ASSET",
    "Chain",
    "ChainKind",
    "Wei",
    "deterministic_addresses",
]

NATIVE_ASSET = "0x" + "00" * 20
"""How motet's contracts name the native coin where an ERC-20 address is expected."""


_CHANNELS_DOMAIN = ("motet-channels", "1")
"""The EIP-712 domain name and version `PaymentChannels` is deployed with."""

DEPLOYMENT_PROXY = "0x4e59b44847b379578588920cA78FbF26c0B4956C"
"""The standard deterministic-deployment proxy (github.com/Arachnid/deterministic-deployment-proxy), which anvil
and most chains carry: called with `salt ++ init code`, it creates the contract with CREATE2, so its address
follows from the salt and the code alone. motet's contracts are created through it (docs/protocol.md)."""

_PROXY_RUNTIME = bytes.fromhex(
    "7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffe03601600081602082378035828234f58015156039"
    "578182fd5b8082525050506014600cf3"
)
_PROXY_DEPLOYER = "0x3fab184622dc19b6109349b94811493bf2a45362"
_PROXY_DEPLOYMENT_TX = bytes.fromhex(
    "f8a58085174876e800830186a08080b853604580600e600039806000f350fe7fffffffffffffffffffffffffffffffffffffffffffffff"
    "ffffffffffffffffe03601600081602082378035828234f58015156039578182fd5b8082525050506014600cf31ba0222222222222222222"
    "2222222222222222222222222222222222222222222222a02222222222222222222222222222222222222222222222222222222222222222"
)
"""The proxy's presigned deployment (no chain id: the same transaction on every chain), sent from `_PROXY_DEPLOYER`
at nonce 0."""

CONTRACTS_VERSION = 1
"""The version in the CREATE2 salts of motet's contracts (`keccak256("motet/<Name>/<version>")`). The init code is
in the address too, so a contract whose code changes moves anyway; this number moves them all on purpose."""

_BOUND = ("AgentRegistry", "PaymentChannels", "Validation")
"""The contracts `Deployer` creates together, in the order they are checked."""
_MOTET_CONTRACTS = (*_BOUND, "Reputation")


def _salt(name: str) -> bytes:
    """The CREATE2 salt of motet's contract `name` (its blueprint and `Deployer` use the same scheme)."""
    return bytes(Web3.keccak(text=f"motet/{name}/{CONTRACTS_VERSION}"))


def _create2_address(creator: str, salt: bytes, initcode: bytes) -> str:
    """The address CREATE2 gives `initcode` created by `creator` with `salt` (EIP-1014)."""
    digest = Web3.keccak(b"\xff" + bytes.fromhex(creator[2:]) + salt + Web3.keccak(initcode))
    return Web3.to_checksum_address(digest[12:])


def _encode_args(artifact: Artifact, args: Sequence[Any]) -> bytes:
    """`args` ABI-encoded for `artifact`'s constructor, as they follow its init code."""
    (constructor,) = (item for item in artifact.abi if item["type"] == "constructor")
    return encode([arg["type"] for arg in constructor["inputs"]], list(args))


@dataclass(frozen=True)
class _Layout:
    """Where motet's contracts live for one set of settings, and what creates them there."""

    addresses: dict[str, str]
    """AgentRegistry, PaymentChannels, Validation and Deployer by name."""
    create2: dict[str, tuple[str, bytes, bytes]]
    """What the proxy creates, in order: label → (address, salt, init code)."""
    deploy_args: tuple[int, ...]
    """The arguments of `Deployer.deploy`."""


def _layout(settings: Settings) -> _Layout:
    blueprints = {name: compile_contract(name, settings.cache_dir) for name in _BOUND}
    create2: dict[str, tuple[str, bytes, bytes]] = {}
    for name, artifact in blueprints.items():
        initcode = artifact.blueprint_initcode
        create2[f"{name} blueprint"] = (
            _create2_address(DEPLOYMENT_PROXY, _salt(name), initcode),
            _salt(name),
            initcode,
        )
    deployer = compile_contract("Deployer", settings.cache_dir)
    initcode = deployer.bytecode + _encode_args(deployer, [create2[f"{n} blueprint"][0] for n in _BOUND])
    create2["Deployer"] = (
        _create2_address(DEPLOYMENT_PROXY, _salt("Deployer"), initcode),
        _salt("Deployer"),
        initcode,
    )
    creator = create2["Deployer"][0]
    d = settings.disputes
    disputes = (
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
    deploy_args = (settings.unbonding_delay, settings.challenge_period, *disputes)
    settings_hash = bytes(Web3.keccak(encode(["uint256"] * len(deploy_args), list(deploy_args))))

    def created(name: str, *args: Any) -> str:
        """Where `Deployer.deploy` creates `name` from its blueprint with `args` (CREATE2, salted by the name and
        every argument of `deploy`)."""
        artifact = blueprints[name]
        salt = bytes(Web3.keccak(_salt(name) + settings_hash))
        return _create2_address(creator, salt, artifact.bytecode + _encode_args(artifact, args))

    registry = created("AgentRegistry", settings.unbonding_delay)
    channels = created("PaymentChannels", settings.challenge_period, registry)
    validation = created("Validation", registry, channels, *disputes)
    return _Layout(
        addresses={
            "AgentRegistry": registry,
            "PaymentChannels": channels,
            "Validation": validation,
            "Deployer": creator,
        },
        create2=create2,
        deploy_args=deploy_args,
    )


def deterministic_addresses(settings: Settings | None = None) -> dict[str, str]:
    """The addresses motet's contracts have on every chain for `settings` (the defaults when None), by name:
    `AgentRegistry`, `PaymentChannels`, `Validation`, `Reputation` and the `Deployer` that creates the first three.
    Computed from the compiled code and the settings alone; `settings.contracts` is not consulted.

    Example:
        >>> addresses = deterministic_addresses()
        >>> sorted(addresses)
        ['AgentRegistry', 'Deployer', 'PaymentChannels', 'Reputation', 'Validation']
        >>> addresses == deterministic_addresses(Settings())
        True
        >>> addresses["PaymentChannels"] == deterministic_addresses(Settings(challenge_period=60))["PaymentChannels"]
        False
    """
    settings = settings or Settings()
    layout = _layout(settings)
    reputation = compile_contract("Reputation", settings.cache_dir)
    initcode = reputation.bytecode + _encode_args(
        reputation, (layout.addresses["AgentRegistry"], layout.addresses["PaymentChannels"])
    )
    return {
        **layout.addresses,
        "Reputation": _create2_address(DEPLOYMENT_PROXY, _salt("Reputation"), initcode),
    }


class _RawCall:
    """A call with raw data, in the shape `Chain.send` signs (`build_transaction`)."""

    def __init__(self, w3: Web3, to: str, data: bytes) -> None:
        self.w3, self.to, self.data = w3, Web3.to_checksum_address(to), data
        self.fn_name = "create2"

    def build_transaction(self, transaction: TxParams) -> TxParams:
        filled: TxParams = {**transaction, "to": self.to, "data": HexStr("0x" + self.data.hex())}
        complete: TxParams = fill_transaction_defaults(self.w3, filled)
        return complete


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
        self._layout_cache: _Layout | None = None
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
        # The deployment proxy, as anvil carries it: motet's contracts are created through it (`contract`).
        state[bytes.fromhex(DEPLOYMENT_PROXY[2:])] = {
            "balance": 0,
            "storage": {},
            "code": _PROXY_RUNTIME,
            "nonce": 1,
        }
        backend = PyEVMBackend(genesis_state=state)
        tester = EthereumTester(backend)
        w3 = Web3(EthereumTesterProvider(tester))
        keys = [Account.from_key(k.to_bytes()) for k in backend.account_keys[:accounts]]  # the funded ones
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

    @property
    def development(self) -> bool:
        """A chain for development: embedded, an anvil this process started, or a node on chain id 31337 (the
        id anvil and Hardhat give their local chains, never a public one), such as the anvil another
        terminal's `motet agent serve --chain anvil` runs. Its agents serve on private addresses, and what is
        registered counts at once (`Settings.registry_confirmations`, `allow_private_endpoints`)."""
        return self.kind != "rpc" or self.chain_id == DEV_CHAIN_ID

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
        """motet's contract `name` on this chain: the one at the address `settings.contracts` names, else the one at
        its deterministic address (the same on every chain for the same settings: docs/protocol.md, "Where the
        contracts live"), created there when absent. Either is checked as `use` checks it, so code that is not
        motet's, or motet's with other settings, raises `ChainError` naming the address."""
        if name in self._contracts:
            return self._contracts[name]
        if name not in _MOTET_CONTRACTS:
            known = ", ".join(_MOTET_CONTRACTS)
            raise ChainError(f"motet has no contract named {name!r}: it has {known}")
        explicit = self.settings.contracts.get(name)
        if explicit:
            return self.use(name, explicit)
        if name == "Reputation":
            return self._reputation()
        if self._pinned():
            return self._bound(name)
        layout = self._layout()
        if not self._code(layout.addresses["AgentRegistry"]):
            self._install(layout)
        for member in _BOUND:
            if member not in self._contracts:
                self._use_deterministic(member, layout.addresses[member])
        return self._contracts[name]

    def _code(self, address: str) -> bytes:
        return bytes(self.w3.eth.get_code(Web3.to_checksum_address(address)))

    def _pinned(self) -> bool:
        """Whether the registry, channels or validation contract was named (`settings.contracts`, or `use`): then the
        others are the ones bound to it, not the ones at the deterministic addresses."""
        for member in _BOUND:
            address = self.settings.contracts.get(member)
            if address and member not in self._contracts:
                self.use(member, address)
        return any(member in self._contracts for member in _BOUND)

    def _bound(self, name: str) -> Contract:
        """The `name` contract bound to the registry this chain uses: the validation contract the registry names,
        and the channels contract that validation contract binds receipts to."""
        if name in self._contracts:
            return self._contracts[name]
        registry = self._contracts["AgentRegistry"]  # `use` of the channels or validation contract sets it
        named = self._registry_validation()
        if named is None:
            raise ChainError(
                f"the agent registry at {registry.address} names no validation contract, so motet cannot tell which "
                f"{name} contract goes with it: give its address too (settings.contracts[{name!r}]; --channels on "
                "the command line)"
            )
        self.use("Validation", named)  # checks, and uses the channels contract it reads
        return self._contracts[name]

    def _use_deterministic(self, name: str, address: str) -> Contract:
        try:
            return self.use(name, address)
        except ChainError as exc:
            raise ChainError(
                f"motet's {name} for these settings lives at {address} (CREATE2 through the deployment proxy at "
                f"{DEPLOYMENT_PROXY}), but {exc}: this chain's proxy or contracts are not the standard ones; name "
                "the contracts to use with settings.contracts (--registry and --channels on the command line)"
            ) from exc

    def _reputation(self) -> Contract:
        """The Reputation contract of this chain's registry and channels: at the CREATE2 address their addresses
        give, created there when absent."""
        registry = self.contract("AgentRegistry").address
        channels = self.contract("PaymentChannels").address
        artifact = compile_contract("Reputation", self.settings.cache_dir)
        initcode = artifact.bytecode + _encode_args(artifact, (registry, channels))
        address = _create2_address(DEPLOYMENT_PROXY, _salt("Reputation"), initcode)
        if not self._code(address):
            self._require_proxy()
            self._create2("Reputation", address, _salt("Reputation"), initcode)
        return self._use_deterministic("Reputation", address)

    def _layout(self) -> _Layout:
        """Where motet's contracts live for this chain's settings (computed, nothing read from the chain)."""
        if self._layout_cache is None:
            self._layout_cache = _layout(self.settings)
        return self._layout_cache

    def _install(self, layout: _Layout) -> None:
        """Create the blueprints, the deployer and, through it, the registry, channels and validation contract at
        their deterministic addresses; what another party created meanwhile is kept."""
        self._require_proxy()
        for label, (address, salt, initcode) in layout.create2.items():
            self._create2(label, address, salt, initcode)
        deployer = self.at("Deployer", layout.addresses["Deployer"])
        try:
            self.send(
                deployer.functions.deploy(*layout.deploy_args),
                action="creating motet's agent registry, payment channels and validation contracts",
            )
        except ChainError:
            if not self._code(layout.addresses["AgentRegistry"]):
                raise  # not another party's creation of the same contracts meanwhile

    def _require_proxy(self) -> None:
        code = bytes(self._code(DEPLOYMENT_PROXY))
        if code == _PROXY_RUNTIME:
            return
        if not code:
            raise ChainError(
                f"this chain has no deterministic-deployment proxy at {DEPLOYMENT_PROXY}, through which motet "
                "creates its contracts: on a dev node, `Chain.install_deployment_proxy()` installs it (its "
                f"deployer {_PROXY_DEPLOYER} needs 0.01 ETH); otherwise name motet's contracts with "
                "settings.contracts (--registry and --channels on the command line)"
            )
        raise ChainError(
            f"the code at {DEPLOYMENT_PROXY} is not the standard deterministic-deployment proxy, so motet's "
            "contracts cannot be at their usual addresses on this chain: name them with settings.contracts "
            "(--registry and --channels on the command line)"
        )

    def install_deployment_proxy(self) -> None:
        """Install the standard deterministic-deployment proxy on a chain that lacks it (a dev node): fund its
        one-time deployer with 0.01 ETH from the default account and send its well-known presigned transaction.
        Does nothing when the proxy is there already."""
        if self._code(DEPLOYMENT_PROXY):
            return
        cost = 100_000 * 100 * 10**9  # the presigned transaction's gas limit times its gas price
        missing = cost - self.balance(_PROXY_DEPLOYER)
        if missing > 0:
            self.transfer(_PROXY_DEPLOYER, missing)
        try:
            tx_hash = self.w3.eth.send_raw_transaction(_PROXY_DEPLOYMENT_TX)
            self.last_receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
        except Exception as exc:
            raise ChainError(
                f"installing the deployment proxy at {DEPLOYMENT_PROXY} failed ({type(exc).__name__}: {exc}); its "
                "presigned transaction has no chain id, which some nodes refuse (geth: --rpc.allow-unprotected-txs)"
            ) from exc
        if bytes(self._code(DEPLOYMENT_PROXY)) != _PROXY_RUNTIME:
            raise ChainError(f"installing the deployment proxy left no proxy code at {DEPLOYMENT_PROXY}")

    def _create2(self, label: str, address: str, salt: bytes, initcode: bytes) -> None:
        """Create `initcode` with `salt` at `address` through the deployment proxy, unless code is there already."""
        if self._code(address):
            return
        try:
            self.send(
                _RawCall(self.w3, DEPLOYMENT_PROXY, salt + initcode),
                action=f"creating motet's {label} at {address}",
            )
        except ChainError:
            if not self._code(address):
                raise  # not another party's creation of the same code meanwhile
        if not self._code(address):
            raise ChainError(f"creating motet's {label} through {DEPLOYMENT_PROXY} left no code at {address}")

    def _registry_validation(self) -> str | None:
        """The validation contract this chain's agent registry names, or None while it names none."""
        named = Web3.to_checksum_address(self.contract("AgentRegistry").functions.validation().call())
        return None if int(named, 16) == 0 else named

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

    # -- transactions ---------------------------------------------------------------------------------

    def send(
        self,
        call: ContractFunction | Any,
        *,
        sender: LocalAccount | None = None,
        value: int = 0,
        action: str | None = None,
        on_signed: Callable[[str, bytes], None] | None = None,
    ) -> TxReceipt:
        """Sign `call` (a contract function or constructor) with `sender`'s key, send it, wait for it.

        `on_signed(tx_hash, raw)` is called once it is signed, before it is sent: what a caller keeps to find
        the transaction again after a crash (mined, pending or dropped) instead of sending a second one.

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
            if on_signed is not None:
                on_signed("0x" + bytes(signed.hash).hex(), bytes(signed.raw_transaction))
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
