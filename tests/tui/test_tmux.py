"""`motet tui` in a real terminal (tmux): start it, compose, run, and read the screen back."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed: apt-get install tmux"),
]

MOTET = Path(sys.executable).parent / "motet"


def capture(session: str) -> str:
    return subprocess.run(
        ["tmux", "capture-pane", "-t", session, "-p"], capture_output=True, text=True, check=True
    ).stdout


def wait_for_text(session: str, text: str, seconds: float = 60.0) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        screen = capture(session)
        if text in screen:
            return screen
        time.sleep(0.3)
    raise AssertionError(f"{text!r} never appeared; the screen was:\n{capture(session)}")


def keys(session: str, *names: str) -> None:
    subprocess.run(["tmux", "send-keys", "-t", session, *names], check=True)


def test_motet_tui_runs_the_brief_to_settlement_in_a_terminal(motet_home: Path) -> None:
    session = f"motet-tui-{uuid.uuid4().hex[:8]}"
    subprocess.run(
        [
            "tmux",
            "new-session",
            "-d",
            "-s",
            session,
            "-x",
            "120",
            "-y",
            "40",
            f"env MOTET_TUI_RUNTIME=function MOTET_HOME={motet_home} TERM=xterm-256color {MOTET} tui",
        ],
        check=True,
    )
    try:
        wait_for_text(session, "7 agents")
        keys(session, "F3")
        wait_for_text(session, "Compile")
        keys(session, "c")
        wait_for_text(session, "worst case 120 gwei")
        keys(session, "r")
        wait_for_text(session, "settled 75 gwei for 5 paid calls")
        screen = wait_for_text(session, "per paid call")  # the gas figure may land a refresh later
        assert "settled 75 gwei for 5 paid calls" in screen
        wait_for_text(session, "spent 75 gwei of 1,000 gwei · 925 gwei left")  # the budget as money spent
        keys(session, "C-q")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False, capture_output=True)
