"""`motet validator serve` from the command line: its help, what it refuses, and (on anvil) three validator
processes deciding a dispute on their own."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner, Result

from motet.cli import app
from motet.errors import ModelNotFound


def motet(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "160", **(env or {})})


def test_the_cli_lists_the_validator_group() -> None:
    done = motet("--help")
    assert done.exit_code == 0, done.output
    assert "validator" in done.stdout
    group = motet("validator", "--help")
    assert group.exit_code == 0, group.output
    assert "serve" in group.stdout


def test_serve_help_names_every_option_and_what_it_does() -> None:
    done = motet("validator", "serve", "--help")
    assert done.exit_code == 0, done.output
    text = " ".join(done.stdout.split())
    for option in ("--chain", "--model", "--stake", "--key-file", "--poll", "--threads", "--state-dir"):
        assert option in text, option
    assert "commit" in text and "reveal" in text
    assert "smollm2" in text and "GGUF" in text


def test_serve_refuses_the_embedded_chain() -> None:
    done = motet("validator", "serve", "--chain", "embedded")
    assert done.exit_code == 2
    assert "disputes are on a node" in " ".join(done.output.split())


def test_serve_refuses_an_unknown_model_before_loading_anything(tmp_path: Path) -> None:
    done = motet(
        "validator", "serve", "--chain", "anvil", "--model", "no-such-model",
        env={"MOTET_HOME": str(tmp_path)},
    )  # fmt: skip
    assert isinstance(done.exception, ModelNotFound)  # `motet` prints it as one red line and exits 1
    assert "no-such-model" in str(done.exception) and "bundled model" in str(done.exception)
    assert not (tmp_path / "validator").exists()  # nothing started, nothing written
