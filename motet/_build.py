"""Compile motet's Vyper contracts with the `vyper` package, cached by source hash.

The cache key covers the contract source, every module it imports (snekmate's included) and the compiler
version, so an upgrade of any of them recompiles.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from motet.errors import ContractBuildError

_PACKAGE_ROOT = Path(__file__).resolve().parent

CONTRACTS: dict[str, Path] = {
    "AgentRegistry": _PACKAGE_ROOT / "registry" / "AgentRegistry.vy",
    "PaymentChannels": _PACKAGE_ROOT / "payments" / "PaymentChannels.vy",
    "Reputation": _PACKAGE_ROOT / "trust" / "Reputation.vy",
    "Validation": _PACKAGE_ROOT / "trust" / "Validation.vy",
    "Deployer": _PACKAGE_ROOT / "registry" / "Deployer.vy",
}
"""The contracts motet deploys, by name (`Deployer` creates the registry, the channels and the validation contract
together; docs/protocol.md, "Where the contracts live")."""


@dataclass(frozen=True)
class Artifact:
    """A compiled contract."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: bytes
    runtime_bytecode: bytes
    source_hash: str

    @property
    def blueprint_initcode(self) -> bytes:
        """The init code that deploys this contract as an ERC-5202 blueprint (what Vyper's
        `create_from_blueprint` creates from): the preamble `0xFE7100` then `bytecode`, which is what Vyper's own
        `blueprint_bytecode` output holds."""
        blueprint = b"\xfe\x71\x00" + self.bytecode
        # PUSH2 len, RETURNDATASIZE, DUP2, PUSH1 10, RETURNDATASIZE, CODECOPY, RETURN: return the code after it.
        return b"\x61" + len(blueprint).to_bytes(2, "big") + bytes.fromhex("3d81600a3d39f3") + blueprint


def _search_paths() -> list[Path]:
    # motet's own modules resolve as `motet.<package>.<module>` from the package's parent (the repository or
    # site-packages); snekmate is an installed package: its modules resolve from site-packages.
    return [_PACKAGE_ROOT.parent, *(Path(p) for p in sys.path if p and Path(p).is_dir())]


def _source_hash(path: Path) -> str:
    import vyper

    digest = hashlib.sha256()
    digest.update(vyper.__version__.encode())
    digest.update(path.read_bytes())
    # Imported modules: hash every snekmate module the sources may use, cheaply, by their bytes.
    import snekmate

    for module in sorted(Path(snekmate.__path__[0]).rglob("*.vy")):
        digest.update(module.read_bytes())
    # And motet's own modules (e.g. motet/trust/receipts.vy), which contracts import.
    for module in sorted(_PACKAGE_ROOT.rglob("*.vy")):
        digest.update(module.read_bytes())
    return digest.hexdigest()


def compile_contract(source: str | Path, cache_dir: Path) -> Artifact:
    """Compile a contract by name (see `CONTRACTS`) or path, using the cache when the hash matches."""
    path = CONTRACTS.get(str(source), Path(source))
    if not path.is_file():
        known = ", ".join(CONTRACTS)
        raise ContractBuildError(f"no contract source at {path}: give a .vy path or one of {known}")
    source_hash = _source_hash(path)
    cached = cache_dir / "vyper" / f"{path.stem}-{source_hash[:32]}.json"
    if cached.is_file():
        data = json.loads(cached.read_text())
    else:
        data = _compile(path)
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(cached)
    return Artifact(
        name=path.stem,
        abi=data["abi"],
        bytecode=bytes.fromhex(data["bytecode"].removeprefix("0x")),
        runtime_bytecode=bytes.fromhex(data["bytecode_runtime"].removeprefix("0x")),
        source_hash=source_hash,
    )


def _compile(path: Path) -> dict[str, Any]:
    from vyper.compiler import compile_code
    from vyper.compiler.input_bundle import FilesystemInputBundle
    from vyper.exceptions import VyperException

    try:
        out: dict[str, Any] = compile_code(
            path.read_text(),
            contract_path=path,
            input_bundle=FilesystemInputBundle([path.parent, *_search_paths()]),
            output_formats=["abi", "bytecode", "bytecode_runtime"],
        )
    except VyperException as exc:
        raise ContractBuildError(f"{path.name} does not compile: {exc}") from exc
    return {k: out[k] for k in ("abi", "bytecode", "bytecode_runtime")}
