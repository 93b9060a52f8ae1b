"""`--profile`: py-spy samples the service processes while a scenario runs; the collapsed
stacks are kept next to the results and summarised (where the time goes) in the JSON."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]*)(?::\d+)?\)$")


class Profiler:
    def __init__(self, pids: list[int], stem: Path) -> None:
        binary = shutil.which("py-spy") or str(Path(__import__("sys").executable).parent / "py-spy")
        stem.parent.mkdir(parents=True, exist_ok=True)
        self.files = [stem.with_name(f"{stem.name}-{pid}.txt") for pid in pids]
        self.procs = [
            subprocess.Popen([binary, "record", "--pid", str(pid), "--format", "raw", "--rate", "200",
                              "--nonblocking", "--full-filenames", "--output", str(f)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for pid, f in zip(pids, self.files)
        ]

    def finish(self, top: int = 25) -> dict[str, object]:
        for p in self.procs:
            p.send_signal(signal.SIGINT)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        stacks: Counter[str] = Counter()
        for f in self.files:
            if f.exists():
                for line in f.read_text().splitlines():
                    stack, _, count = line.rpartition(" ")
                    if count.isdigit():
                        stacks[stack] += int(count)
        return summarise(stacks, top) | {"files": [str(f) for f in self.files if f.exists()]}


def summarise(stacks: Counter[str], top: int) -> dict[str, object]:
    """Self time by leaf function, and inclusive time of the service's own functions."""
    total = sum(stacks.values()) or 1
    leaf: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for stack, n in stacks.items():
        frames = [_name(f) for f in stack.split(";") if f]
        if not frames:
            continue
        leaf[frames[-1]] += n
        for name in set(frames):
            if "(app/" in name:
                inclusive[name] += n
    return {
        "samples": total,
        "self": [(name, round(100 * n / total, 1)) for name, n in leaf.most_common(top)],
        "app_inclusive": [(name, round(100 * n / total, 1)) for name, n in inclusive.most_common(top)],
    }


def _name(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m["file"]
    for marker in ("/site-packages/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    else:
        path = path.split("/main/", 1)[-1]
    return f"{m['func']} ({path})"
