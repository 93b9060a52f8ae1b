"""The wheel: built from the project, installed into a fresh venv, run from an empty
directory (no source tree, no config/): the console script mints tokens and serves."""

from __future__ import annotations

import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import ROOT, free_port, wait_until


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    base = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(base / "dist"), str(ROOT)],
                   check=True, capture_output=True)
    [wheel] = (base / "dist").glob("callstate-*.whl")
    venv.create(base / "venv", with_pip=True)
    bin_dir = base / "venv" / "bin"
    subprocess.run([bin_dir / "pip", "install", "-q", str(wheel)], check=True, capture_output=True)
    yield bin_dir


def test_runtime_install_pulls_only_what_the_service_runs(installed: Path) -> None:
    names = subprocess.run([installed / "pip", "list", "--format=freeze"], check=True, capture_output=True,
                           text=True).stdout.lower()
    for dev_only in ("pytest", "httpx", "playwright", "hypothesis", "matplotlib", "servicestack"):
        assert f"\n{dev_only}==" not in "\n" + names, dev_only
    for needed in ("starlette", "uvicorn", "redis", "msgspec", "pyjwt", "fakeredis", "prometheus-client", "twilio"):
        assert f"\n{needed}==" in "\n" + names.replace("prometheus_client", "prometheus-client"), needed


def test_installed_service_runs_without_the_source_tree(installed: Path, tmp_path: Path) -> None:
    env = {"PATH": str(installed), "HOME": str(tmp_path)}
    token = subprocess.run([installed / "callstate", "token", "--sub", "u1", "--account", "A1"], cwd=tmp_path,
                           env=env, check=True, capture_output=True, text=True).stdout.strip()
    port = free_port()
    proc = subprocess.Popen([installed / "callstate", "serve", "--port", str(port), "--log-level", "warning"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(url + "/health/live", timeout=1).status_code == 200, 30, "installed service")
        r = httpx.get(url + "/sessions/active", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and r.json()["sessions"] == []
        assert httpx.get(url + "/static/sessions-client.js").status_code == 200
        assert httpx.get(url + "/metrics").status_code == 200
    finally:
        proc.terminate()
        proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()
