"""The README's quick start runs as written: each command of its `bash` blocks, against a
fresh home with a running embedded broker, exits as the README says (0), with no
traceback. The install block (`./scripts/...`) and the benchmarks (minutes, not a test;
their durations are stated) are the only lines not run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.nats]

ROOT = Path(__file__).resolve().parents[1]
NOT_RUN = ("./scripts/", "s284 bench")


def quick_start_commands() -> list[str]:
    """The commands of the quick start's fenced bash blocks: continuation lines joined,
    trailing comments dropped."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.DOTALL)
    lines = "\n".join(blocks).replace("\\\n", " ").splitlines()
    commands = [re.sub(r"\s+#.*$", "", line).strip() for line in lines]
    return [c for c in commands if c and not c.startswith(NOT_RUN)]


def test_the_quick_start_has_commands():
    """The extraction finds the commands a newcomer types (a broken parse would pass)."""
    commands = quick_start_commands()
    assert any(c.startswith("s284 send") for c in commands)
    assert any(c.startswith("s284 inbox") for c in commands)


def test_every_quick_start_command_runs_as_written(running, tmp_path):
    """Each command, in a directory like a fresh clone's, with the broker up: exit 0 and
    no traceback."""
    home, _proc, _http = running
    work = tmp_path / "clone"
    work.mkdir()
    for shared in ("policies", "docs"):
        (work / shared).symlink_to(ROOT / shared)
    env = {
        **os.environ,
        "S284_HOME": str(home),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    for command in quick_start_commands():
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert "Traceback" not in done.stderr + done.stdout, command
        assert done.returncode == 0, (command, done.returncode, done.stderr[-2000:])
