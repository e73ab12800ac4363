"""`motet run` of a workflow that fails after one paid call: what was paid to whom, what is still to settle and
how to resume are printed before the error, which is one line, and the exit status is not zero."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

WORKFLOW = """
name = "translated-brief"

[inputs]
document = { type = "string" }
language = { type = "string" }

[[nodes]]
id = "extract"
capability = "extract_text"

[[nodes]]
id = "translate"
capability = "translate"
after = ["extract"]
inputs = { text = "extract.text", target_language = "input.language" }

[[nodes]]
id = "summarize"
capability = "summarize"
after = ["translate"]
inputs = { text = "translate.translation" }
"""
"""Three nodes: `extract` is paid (5 gwei to the extractor); `translate` cannot take the language given
(`x`: the capability wants at least two characters), so the run fails there."""


@pytest.mark.slow
def test_a_failed_run_says_what_it_paid_to_whom_what_is_unsettled_and_how_to_resume(tmp_path: Path) -> None:
    flow = tmp_path / "translated.toml"
    flow.write_text(WORKFLOW)
    inputs = ["-i", "document=<p>The library opened downtown.</p>", "-i", "language=x"]
    done = subprocess.run(
        [sys.executable, "-m", "motet", "run", str(flow), "--chain", "embedded", "--threads", "1", *inputs],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200", "MOTET_HOME": str(tmp_path / "home")},
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""  # no outputs: the run did not finish
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    run_id = re.fullmatch(r"run ([0-9a-f]{16})", lines[0])
    assert run_id is not None, lines[0]
    text = " ".join(done.stderr.split())
    assert f"run failed · run id {run_id.group(1)}" in text
    paid = re.search(
        r"paid extractor \(#\d+\) 5 gwei for 1 call · to (0x[0-9a-fA-F]{40}) · channel 0x1", text
    )
    assert paid is not None, text
    assert "still to settle 5 gwei" in text and "spent 5 gwei of a 0.01 ETH budget" in text
    assert "paid polyglot" not in text and "paid summarizer" not in text  # the failed node paid no one
    assert (
        f"motet run --resume {run_id.group(1)}" in text
    )  # ... and how a kept run resumes (embedded: it is not)
    assert lines[-1].startswith("error: node 'translate'")  # the error, once, as the last line
    assert sum(line.startswith("error:") for line in lines) == 1
