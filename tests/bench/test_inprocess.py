"""`python -m bench.inprocess`: the app-alone CPU probe runs both scenarios end to end and
every request it drives is answered as the service answers it (200 reads, 204 callbacks)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from bench.servers import ROOT


@pytest.mark.parametrize(("scenario", "status"), [("read", 200), ("ingest", 204)])
def test_the_probe_measures_answered_requests(scenario: str, status: int) -> None:
    out = subprocess.run([sys.executable, "-m", "bench.inprocess", scenario, "--requests", "120", "--rounds", "1",
                          "--concurrency", "8"], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    line = re.search(r"service ([\d.]+) µs/request \{(\d+): (\d+)\}, .* ([\d.]+) µs/request \{(\d+): (\d+)\}",
                     out.stdout)
    assert line is not None, out.stdout
    ours, code, count, base, base_code, base_count = line.groups()
    assert (int(code), int(count), int(base_code), int(base_count)) == (status, 120, status, 120)
    assert float(ours) > 0 and float(base) > 0
