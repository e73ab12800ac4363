"""The wheel users install, not the editable checkout `make` uses: it carries the contracts, the signing page
and the TUI's styles, and its `motet` command starts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
_NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "node_modules", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis"
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built from a copy of the source without build isolation (nothing downloaded)."""
    source = tmp_path_factory.mktemp("source") / "motet"
    shutil.copytree(ROOT, source, ignore=_NOT_SOURCE)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            out,
            source,
        ],
        check=True,
        timeout=300,
    )
    (built,) = out.glob("motet-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh virtualenv with the wheel installed (--no-deps) that sees this environment's packages."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True, timeout=120)
    site = Path(
        subprocess.run(
            [venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
    )  # fmt: skip
    # The project's dependencies, seen as a plain path entry: the editable install's own .pth is not processed.
    (site / "project-packages.pth").write_text(sysconfig.get_path("purelib") + "\n")
    # Installed by the new environment's own interpreter (pip is seen through that path), so scripts run it.
    subprocess.run(
        [venv / "bin" / "python", "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", wheel],
        check=True, timeout=300,
    )  # fmt: skip
    yield venv
    # Installing there must leave this environment's own (editable) motet alone.
    assert (Path(sys.prefix) / "bin" / "motet").exists()


def test_the_wheel_carries_the_contracts_page_and_styles(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "motet/registry/AgentRegistry.vy",
        "motet/payments/PaymentChannels.vy",
        "motet/gateway/static/index.html",
        "motet/gateway/static/app.js",
        "motet/composer/workflow.schema.json",
        "motet/py.typed",
    ):
        assert needed in names, f"{needed} is not in {wheel.name}"
    assert any(name.startswith("motet/tui/") and name.endswith(".tcss") for name in names)
    assert not any(name.startswith("tests/") for name in names)


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "MOTET_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "200", "PYTHONPATH": ""}


def test_the_installed_motet_is_the_wheel_and_demo_help_runs(installed: Path, tmp_path: Path) -> None:
    where = subprocess.run(
        [installed / "bin" / "python", "-c", "import motet; print(motet.__file__)"],
        check=True, capture_output=True, text=True, cwd=tmp_path,
    ).stdout  # fmt: skip
    assert where.startswith(str(installed)), where
    shown = subprocess.run(
        [installed / "bin" / "motet", "demo", "--help"],
        capture_output=True, text=True, cwd=tmp_path, env=_env(tmp_path), timeout=120,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "Usage: motet demo" in shown.stdout


@pytest.mark.slow
def test_the_installed_gateway_deploys_its_contracts_and_serves_the_page(
    installed: Path, tmp_path: Path
) -> None:
    # As a context manager, Popen closes the pipes once the gateway has stopped.
    with subprocess.Popen(
        [installed / "bin" / "motet", "gateway", "--chain", "embedded", "--port", "0", "--threads", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=_env(tmp_path),
    ) as process:  # fmt: skip
        try:
            assert process.stdout is not None and process.stderr is not None
            first = process.stdout.readline()
            assert first.startswith("motet gateway on http://127.0.0.1:"), first + (
                process.stderr.read() or ""
            )
            url = first.split()[3]
            with httpx.Client(base_url=url, timeout=30) as http:
                page = http.get("/")
                assert page.status_code == 200 and "<title>motet gateway" in page.text
                assert http.get("/static/app.js").status_code == 200
                config = http.get("/api/config").json()
                assert config["workflows"] and config["contract"].startswith("0x")
        finally:
            process.terminate()
            process.wait(timeout=30)
