"""Every program in examples/ runs to completion, and every workflow file's documented command works."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from motet.composer import Workflow

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
WORKFLOWS = sorted(
    path for path in (ROOT / "examples").iterdir() if path.suffix in (".toml", ".yaml", ".yml")
)
_COMMAND = re.compile(r"^#\s+(motet run .+)$", re.MULTILINE)


def test_there_are_examples() -> None:
    assert EXAMPLES


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(example: Path) -> None:
    result = subprocess.run([sys.executable, str(example)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip(), "an example should print what it did"
    assert "Traceback" not in result.stderr, "an example's deliberate failure is a line, never a traceback"
    if example.name == "quickstart.py":  # its flaky agent fails on purpose: one line of the report says so
        failover = (
            "failover: summarize: flaky-summarizer (#7) failed (the model failed, nothing is owed: CUDA error"
        )
        assert failover in result.stdout, result.stdout


def test_there_are_workflow_files() -> None:
    assert WORKFLOWS


@pytest.mark.slow
@pytest.mark.parametrize("example", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_file_runs_as_its_comment_says(example: Path) -> None:
    """The command in the file's own comment, run as written from the repository root, pays every node."""
    commands = _COMMAND.findall(example.read_text())
    assert len(commands) == 1, f"{example.name} should document one `motet run ...` command in a comment"
    args = shlex.split(commands[0])
    assert "--chain" in args, "the documented command names its chain, so that it runs anywhere"
    done = subprocess.run(
        [sys.executable, "-m", "motet", *args[1:]],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    outputs = json.loads(done.stdout)  # the outputs are all it prints on stdout
    assert set(outputs) == set(Workflow.load(example).nodes)
    if (
        example.name == "research_brief.toml"
    ):  # the brief's own facts: a label from its enum, a composed report
        assert outputs["sentiment"]["sentiment"] in ("positive", "negative", "neutral")
        assert outputs["report"]["report"].startswith(outputs["summarize"]["summary"])
