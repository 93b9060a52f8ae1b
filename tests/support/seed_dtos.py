"""The seed page's own Python DTOs, loaded from `../shared/seed/GetActiveSessions.txt`
at test time (not copied), plus the `IReturn` marker the Python client needs."""

from __future__ import annotations

import sys
import types
from pathlib import Path

SEED = Path(__file__).resolve().parents[3] / "shared" / "seed" / "GetActiveSessions.txt"


def load() -> types.ModuleType:
    if not SEED.exists():
        raise FileNotFoundError(f"the seed page is missing: {SEED}")
    text = SEED.read_text()
    start = text.index("import datetime")
    end = text.index("Python GetActiveSessions DTOs")
    if "seed_dtos" in sys.modules:
        return sys.modules["seed_dtos"]
    module = types.ModuleType("seed_dtos")
    sys.modules["seed_dtos"] = module  # dataclasses look their module up while decorating
    exec(compile(text[start:end], str(SEED), "exec"), module.__dict__)  # noqa: S102 - our own contract file
    return module


def seed_xml() -> str:
    text = SEED.read_text()
    start = text.index("<GetActiveSessionsResponse")
    end = text.index("</GetActiveSessionsResponse>") + len("</GetActiveSessionsResponse>")
    return text[start:end]
