"""The package a user installs: built as a wheel, installed WITHOUT extras in a fresh venv
outside the checkout, it runs `s284 --version` and the whole `s284 demo` (exit 0).

This catches a runtime import that only a test dependency satisfies, and a file the code
reads at run time that the wheel does not ship.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.slow, pytest.mark.nats]


def _run(*cmd: str | Path, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    return subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    built = _run(sys.executable, "-m", "build", "--wheel", "--outdir", out, ROOT, cwd=out)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    (whl,) = out.glob("s284_broker-*.whl")
    return whl


def test_wheel_ships_what_the_code_reads_at_run_time(wheel: Path):
    """Templates, the demo's routing table and the policy bundle are inside the wheel."""
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "broker/http/templates/inbox.css",
        "broker/demo/routing-table.yaml",
        "policies/bundle/schema.cedarschema.json",
        "broker/py.typed",
    ):
        assert needed in names, needed
    assert not any(n.startswith("tests/") for n in names)


def test_plain_install_runs_version_and_demo(wheel: Path, tmp_path: Path):
    """`pip install s284_broker-*.whl` (no extras) in a fresh venv, then `s284 demo` exits 0."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    installed = _run(py, "-m", "pip", "install", "--quiet", wheel, cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr[-3000:]
    s284 = env_dir / "bin" / "s284"

    version = _run(s284, "--version", cwd=tmp_path)
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("s284, version ")

    imported = _run(py, "-c", "import broker, httpx; print(broker.__file__)", cwd=tmp_path)
    assert str(env_dir) in imported.stdout, "the venv must use the wheel, not the checkout"

    docs = _run(
        py, "-c", "from broker.http.docs import assets_dir; print(assets_dir())", cwd=tmp_path
    )
    assert docs.returncode == 0, docs.stderr  # /docs works offline: its assets are installed

    demo = _run(s284, "demo", cwd=tmp_path)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "expectations held" in demo.stdout
    assert "Traceback" not in demo.stderr
