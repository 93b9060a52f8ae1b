"""Helpers for the Add ServiceStack Reference tests: fill a session through the
events API, load a generated Python module."""

from __future__ import annotations

import sys
import types

import httpx

from bench.samples import full_session_fields
from tests.support.factories import event

EVENTS_KEY = "test-events-key"


def populate(base_url: str) -> None:
    """One session with every field set, on account A1, endpoint E1."""
    r = httpx.post(base_url + "/events", headers={"Authorization": f"Bearer {EVENTS_KEY}"},
                   json={"events": [event("session.upsert", "A1", "S1", session=full_session_fields())]})
    assert r.status_code == 200, r.text


def load_module(name: str, source: str) -> types.ModuleType:
    """Execute generated Python source as module `name` (dataclasses look their module up while decorating)."""
    module = types.ModuleType(name)
    sys.modules[name] = module
    try:
        exec(compile(source, f"<{name}>", "exec"), module.__dict__)  # noqa: S102 - our own generated DTOs
    except BaseException:
        del sys.modules[name]
        raise
    return module
