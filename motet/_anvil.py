"""anvil, started by motet: found in the project's `tools/node_modules` (npm's `@foundry-rs/anvil`), run on
127.0.0.1 at a free port with the standard dev mnemonic, and waited for until it answers."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from motet.errors import ChainConnectionError

ANVIL_RELATIVE = Path("tools/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
MNEMONIC = "test test test test test test test test test test test junk"
"""anvil's (and Foundry's) dev mnemonic: its accounts are funded on every anvil chain, and known to everyone."""


def start_anvil(
    binary: str | Path | None, *, accounts: int, startup_timeout: float
) -> tuple[subprocess.Popen[bytes], str, Web3, list[LocalAccount]]:
    """Start anvil and wait until it answers: the process, its URL, a `Web3` on it, its funded dev accounts."""
    path = find_anvil(binary)
    port = free_port()
    arguments = ["--host", "127.0.0.1", "--port", str(port), "--accounts", str(accounts), "--silent"]
    proc = subprocess.Popen(
        [str(path), *arguments, "--mnemonic", MNEMONIC],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 30}))
    deadline = time.monotonic() + startup_timeout
    try:
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise ChainConnectionError(
                    f"anvil exited at start ({proc.returncode}): {err.strip()}", url=url
                )
            try:
                if w3.is_connected():
                    break
            except Exception:  # noqa: S110 - not up yet; retried until the deadline
                pass
            if time.monotonic() > deadline:
                proc.kill()
                raise ChainConnectionError(
                    f"anvil did not answer on {url} within {startup_timeout}s", url=url
                )
            time.sleep(0.05)
    except BaseException:  # interrupted (ctrl+c, SIGTERM) or given up: no anvil left behind
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
        raise
    Account.enable_unaudited_hdwallet_features()
    keys = [Account.from_mnemonic(MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}") for i in range(accounts)]
    return proc, url, w3, keys


def find_anvil(binary: str | Path | None) -> Path:
    """`binary`, `$MOTET_ANVIL`, the project's `tools/node_modules`, or `anvil` on the PATH, in that order."""
    candidates: list[Path] = []
    if binary:
        candidates.append(Path(binary))
    if env := os.environ.get("MOTET_ANVIL"):
        candidates.append(Path(env))
    here = Path(__file__).resolve().parent.parent
    candidates.append(here / ANVIL_RELATIVE)
    candidates.append(Path.cwd() / ANVIL_RELATIVE)
    if found := shutil.which("anvil"):
        candidates.append(Path(found))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ChainConnectionError(
        "anvil not found: run `make install` (installs @foundry-rs/anvil-linux-amd64 into tools/node_modules) "
        "or set MOTET_ANVIL to the binary"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
