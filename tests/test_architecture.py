"""The architecture, checked by tools rather than by memory: the layer contracts
(`lint-imports`, pyproject [tool.importlinter]), `ruff` and `mypy --strict`, each
run from this venv as CI runs it, failing with the tool's own report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the venv's bin/, where the `test` extra installs the tools

CHECKS = {
    "lint-imports": ["lint-imports"],
    "ruff": ["ruff", "check", "app", "tests", "bench"],
    "mypy": ["mypy"],
}


@pytest.mark.parametrize("command", CHECKS.values(), ids=CHECKS.keys())
def test_the_tree_passes(command: list[str]) -> None:
    tool = BIN / command[0]
    if not tool.exists():
        pytest.fail(f"{tool} is missing: install the test extra (pip install -e '.[test]')")
    done = subprocess.run([str(tool), *command[1:]], cwd=ROOT, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        pytest.fail(f"`{' '.join(command)}` failed ({done.returncode}):\n{done.stdout}{done.stderr}", pytrace=False)
