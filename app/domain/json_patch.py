"""RFC 6902 JSON Patch: diffing two JSON documents into a small list of ops (pure)."""

from __future__ import annotations

from typing import Any

Op = dict[str, Any]


def pointer_token(key: str) -> str:
    """Escape one JSON Pointer reference token (RFC 6901)."""
    if "~" not in key and "/" not in key:  # nearly every key: nothing to escape
        return key
    return key.replace("~", "~0").replace("/", "~1")


def diff(old: Any, new: Any, path: str = "") -> list[Op]:
    """Ops that turn `old` into `new`. Objects recurse key by key; lists that
    only grew become `add`s at the end (logs, members); otherwise same-length
    lists recurse by index and anything else is one `replace`."""
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        return _diff_objects(old, new, path)
    if isinstance(old, list) and isinstance(new, list):
        return _diff_lists(old, new, path)
    return [{"op": "replace", "path": path, "value": new}]


def _diff_objects(old: dict[str, Any], new: dict[str, Any], path: str) -> list[Op]:
    ops: list[Op] = []
    for key in old:
        if key not in new:
            ops.append({"op": "remove", "path": f"{path}/{pointer_token(key)}"})
    for key, value in new.items():
        if key not in old:
            ops.append({"op": "add", "path": f"{path}/{pointer_token(key)}", "value": value})
        elif (before := old[key]) != value:  # equal members (most of them) need no path built
            ops.extend(diff(before, value, f"{path}/{pointer_token(key)}"))
    return ops


def _diff_lists(old: list[Any], new: list[Any], path: str) -> list[Op]:
    if len(new) > len(old) and new[: len(old)] == old:
        return [{"op": "add", "path": f"{path}/{i}", "value": v} for i, v in enumerate(new[len(old):], len(old))]
    if len(new) == len(old):
        ops: list[Op] = []
        for i, (a, b) in enumerate(zip(old, new)):
            ops.extend(diff(a, b, f"{path}/{i}"))
        return ops
    return [{"op": "replace", "path": path, "value": new}]
