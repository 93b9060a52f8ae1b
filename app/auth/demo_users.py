"""Who the console's development sign-in and `python -m app demo` sign in as (pure):
the demo account's first agent and its manager. The simulator's cast puts them in
its first account (`DEMO_CAST.demo`), so the calls they see are the simulated ones."""

from __future__ import annotations

from typing import Final, TypedDict

DEMO_ACCOUNT: Final = "acme"


class Identity(TypedDict):
    """A token's claims, as `app.auth.tokens.mint_token` takes them."""

    sub: str
    account_id: str
    endpoint_id: str | None
    roles: list[str]
    name: str | None


def demo_identity(manager: bool) -> Identity:
    """Claims for a token of the demo account's first agent, or its manager."""
    user, name, roles = ("morgan", "Morgan", ["User", "Manager"]) if manager else ("alice", "Alice", ["User"])
    user_id = f"{DEMO_ACCOUNT}.{user}"
    return {"sub": user_id, "account_id": DEMO_ACCOUNT, "endpoint_id": user_id, "roles": roles, "name": name}
