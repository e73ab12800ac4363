"""`motet run`: a goal planned through the registry, on local agents and the real model (a workflow file run as
its comment says is in tests/test_examples.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parents[1] / "examples" / "research_brief.toml"
DOCUMENT = "The new bridge opened today. Commuters are delighted: trips are ten minutes shorter."


def motet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "motet", *args], capture_output=True, text=True, timeout=300)


def test_run_a_goal_plans_the_cheapest_compatible_path() -> None:
    done = motet(
        "run",
        "--goal",
        "compose_report",
        "--chain",
        "embedded",
        "--threads",
        "1",
        "-i",
        f"document={DOCUMENT}",
    )
    assert done.returncode == 0, done.stderr
    plan = done.stdout + done.stderr
    assert "plan for 'compose_report'" in plan
    for capability in ("extract_text", "summarize", "extract_keywords", "classify_sentiment"):
        assert capability in plan
    assert "settlement:" in plan


def test_run_explains_bad_arguments() -> None:
    neither = motet("run", "--chain", "embedded")
    assert neither.returncode != 0 and "give a workflow file or --goal" in neither.stdout + neither.stderr
    bad_input = motet("run", str(EXAMPLE), "-i", "document")
    assert bad_input.returncode != 0 and "is not name=value" in bad_input.stdout + bad_input.stderr
