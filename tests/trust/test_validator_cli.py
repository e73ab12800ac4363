"""`motet validator serve` from the command line: its help, what it refuses, and (on anvil) three validator
processes deciding a dispute on their own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def motet(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "motet", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "160", **(env or {})},
    )


def test_the_cli_lists_the_validator_group() -> None:
    done = motet("--help")
    assert done.returncode == 0, done.stderr
    assert "validator" in done.stdout
    group = motet("validator", "--help")
    assert group.returncode == 0, group.stderr
    assert "serve" in group.stdout


def test_serve_help_names_every_option_and_what_it_does() -> None:
    done = motet("validator", "serve", "--help")
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    for option in ("--chain", "--model", "--stake", "--key-file", "--poll", "--threads", "--state-dir"):
        assert option in text, option
    assert "commit" in text and "reveal" in text
    assert "smollm2" in text and "GGUF" in text


def test_serve_refuses_the_embedded_chain() -> None:
    done = motet("validator", "serve", "--chain", "embedded")
    assert done.returncode != 0
    assert "disputes are on a node" in done.stderr


def test_serve_refuses_an_unknown_model_before_loading_anything(tmp_path: Path) -> None:
    done = motet(
        "validator", "serve", "--chain", "anvil", "--model", "no-such-model",
        env={"MOTET_HOME": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 1
    assert "no-such-model" in done.stderr and "bundled model" in done.stderr
