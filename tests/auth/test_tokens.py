import base64
import json
import time

import jwt
import pytest

from app.auth.tokens import (
    Forbidden, StaticKey, TokenExpired, TokenInvalid, TokenMissing, TokenVerifier, api_key_matches, mint_token,
    require_role,
)

KEY = b"k" * 64


def verifier() -> TokenVerifier:
    return TokenVerifier(StaticKey(KEY, "HS256"))


def make(**claims: object) -> str:
    base = {"sub": "u1", "exp": int(time.time()) + 60, "roles": ["User"], "accountId": "A1", "endpointId": "E1"}
    base.update(claims)
    return jwt.encode({k: v for k, v in base.items() if v is not None}, KEY, algorithm="HS256")


def test_valid_token_gives_principal() -> None:
    p = verifier().verify(make(name="Alice"))
    assert (p.user_id, p.account_id, p.endpoint_id, p.name) == ("u1", "A1", "E1", "Alice")
    assert p.roles == frozenset({"User"}) and not p.sees_whole_account


def test_missing_token() -> None:
    with pytest.raises(TokenMissing):
        verifier().verify(None)


def test_expired_token() -> None:
    with pytest.raises(TokenExpired):
        verifier().verify(make(exp=int(time.time()) - 5))


def test_exp_is_required() -> None:
    with pytest.raises(TokenInvalid):
        verifier().verify(make(exp=None))


@pytest.mark.parametrize("exp", [str(int(time.time()) + 86_400), f"{time.time() + 86_400:.1f}"])  # far off: collected long before it runs
def test_exp_must_be_a_json_number(exp: object) -> None:
    with pytest.raises(TokenInvalid, match="exp"):
        verifier().verify(make(exp=exp))


@pytest.mark.parametrize("sub", ["", "   ", "ssjwt|", 42])
def test_sub_must_be_a_non_empty_string(sub: object) -> None:
    with pytest.raises(TokenInvalid):
        verifier().verify(make(sub=sub))


def test_servicestack_sub_prefix_is_dropped() -> None:
    assert verifier().verify(make(sub="ssjwt|u7")).user_id == "u7"


def test_issuer_and_audience_checked_when_set() -> None:
    strict = TokenVerifier(StaticKey(KEY, "HS256"), issuer="https://idp/", audience="callstate")
    assert strict.verify(make(iss="https://idp/", aud="callstate")).user_id == "u1"
    for bad in (make(iss="https://other/", aud="callstate"), make(iss="https://idp/", aud="other"),
                make(aud="callstate"), make(iss="https://idp/")):
        with pytest.raises(TokenInvalid):
            strict.verify(bad)


def test_wrong_key_rejected() -> None:
    bad = jwt.encode({"sub": "u", "exp": int(time.time()) + 60, "accountId": "A"}, b"x" * 64, algorithm="HS256")
    with pytest.raises(TokenInvalid):
        verifier().verify(bad)


def test_alg_none_rejected() -> None:
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT"}).encode()).rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps({"sub": "u", "exp": int(time.time()) + 60,
                                                "accountId": "A", "roles": ["Admin"]}).encode()).rstrip(b"=")
    with pytest.raises(TokenInvalid):
        verifier().verify((header + b"." + body + b".").decode())


def test_algorithm_swap_rejected() -> None:
    token = jwt.encode({"sub": "u", "exp": int(time.time()) + 60, "accountId": "A"}, KEY, algorithm="HS512")
    with pytest.raises(TokenInvalid):
        verifier().verify(token)


def test_roles_must_be_a_list() -> None:
    with pytest.raises(TokenInvalid):
        verifier().verify(make(roles="User"))


def test_account_claim_required() -> None:
    with pytest.raises(TokenInvalid):
        verifier().verify(make(accountId=None))


def test_admin_passes_every_role_and_manager_sees_account() -> None:
    admin = verifier().verify(make(roles=["Admin"]))
    assert require_role(admin, "User") is admin and admin.sees_whole_account
    manager = verifier().verify(make(roles=["Manager"]))
    assert manager.sees_whole_account
    with pytest.raises(Forbidden):
        require_role(manager, "User")
    with pytest.raises(Forbidden):
        require_role(verifier().verify(make(roles=["user"])), "User")  # case-sensitive, as ServiceStack


def test_minted_token_round_trips() -> None:
    token = mint_token(KEY, sub="u9", account_id="A9", endpoint_id=None, roles=["User", "Manager"])
    p = verifier().verify(token)
    assert (p.user_id, p.account_id, p.endpoint_id) == ("u9", "A9", None)


def test_api_key_compare() -> None:
    assert api_key_matches("abc", "abc")
    assert not api_key_matches("abd", "abc")
    assert not api_key_matches(None, "abc")
    assert not api_key_matches("", "")


def test_a_cached_token_still_expires() -> None:
    v = verifier()
    token = make(exp=int(time.time()) + 1)
    assert v.verify(token).user_id == "u1"
    assert v.verify(token).user_id == "u1"  # served from the cache
    time.sleep(1.1)
    with pytest.raises(TokenExpired):
        v.verify(token)


def test_principals_with_the_same_roles_share_one_set() -> None:
    """A live connection keeps its principal for hours: one frozenset per distinct set of roles."""
    v = verifier()
    alice, bob = v.verify(make(sub="alice", roles=["User", "Manager"])), v.verify(make(sub="bob", roles=["Manager", "User"]))
    carol = v.verify(make(sub="carol", roles=["User"]))
    assert alice.roles is bob.roles and alice.roles == frozenset({"User", "Manager"})
    assert carol.roles == frozenset({"User"}) and bob.user_id == "bob"
