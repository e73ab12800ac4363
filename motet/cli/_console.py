"""Where the commands write: results on stdout (`out`, for pipes), everything else on stderr (`err`)."""

from __future__ import annotations

from rich.console import Console

out = Console(highlight=False, soft_wrap=True)
"""A command's result: an id, JSON, a table; what a script reads."""
err = Console(stderr=True)
"""Progress, confirmations and hints for the person at the terminal."""
