"""The npm packages the API-description tests run with node (TypeScript compiler,
@servicestack/client, @asyncapi/parser), installed once into a cache directory
outside the repository (CALLSTATE_NODE_TOOLS, default /tmp/callstate-node-tools).
A missing node/npm or a failed install fails the test, loudly."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

PACKAGES = {"typescript": "5", "@servicestack/client": "2", "@asyncapi/parser": "3"}
TOOLS_DIR = Path(os.environ.get("CALLSTATE_NODE_TOOLS", "/tmp/callstate-node-tools"))


def node() -> str:
    found = shutil.which("node")
    if found is None:
        pytest.fail("these tests need node (apt-get install nodejs npm)", pytrace=False)
    return found


def node_modules() -> Path:
    """The cache's node_modules, with every package in PACKAGES installed."""
    node()
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("these tests need npm (apt-get install npm)", pytrace=False)
    TOOLS_DIR.mkdir(parents=True, exist_ok=True)
    modules = TOOLS_DIR / "node_modules"
    with open(TOOLS_DIR / ".lock", "w") as lock:  # several test runs may share the cache
        fcntl.flock(lock, fcntl.LOCK_EX)
        missing = [f"{name}@{major}" for name, major in PACKAGES.items() if not _installed(modules, name, major)]
        if missing:
            done = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--loglevel=error",
                                   "--prefix", str(TOOLS_DIR), *missing],
                                  capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                pytest.fail(f"npm install {' '.join(missing)} failed:\n{done.stderr[-2000:]}", pytrace=False)
    return modules


def _installed(modules: Path, name: str, major: str) -> bool:
    manifest = modules / name / "package.json"
    if not manifest.exists():
        return False
    version: str = json.loads(manifest.read_text())["version"]
    return version.split(".")[0] == major


def run_node(script: Path, *args: str, cwd: Path) -> str:
    """Run `script` with node, with the cache's packages resolvable; its stdout."""
    done = subprocess.run([node(), str(script), *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "NODE_PATH": str(node_modules())})
    assert done.returncode == 0, f"node {script.name} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done.stdout
