"""Bearer JWT verification (pure). Who the caller is, never what they see."""

from __future__ import annotations

import dataclasses
import hmac
import time
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Protocol

import jwt

ADMIN = "Admin"
MANAGER = "Manager"
USER = "User"


class AuthError(Exception):
    status = 401
    error_code = "Unauthorized"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TokenMissing(AuthError):
    pass


class TokenInvalid(AuthError):
    error_code = "TokenException"


class TokenExpired(AuthError):
    error_code = "TokenException"


class Forbidden(AuthError):
    status = 403
    error_code = "Forbidden"


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    account_id: str
    endpoint_id: str | None
    roles: frozenset[str]
    name: str | None
    expires_at: float

    def has_role(self, role: str) -> bool:
        """ServiceStack's rule: Admin passes every role check (case-sensitive)."""
        return ADMIN in self.roles or role in self.roles

    @property
    def sees_whole_account(self) -> bool:
        return ADMIN in self.roles or MANAGER in self.roles


class KeyUnknown(TokenInvalid):
    """No key for the token's `kid` (or `alg`) is known yet; the key source may refresh."""

    def __init__(self, kid: str | None) -> None:
        super().__init__("Invalid token: signing key not found")
        self.kid = kid


class VerifyKey(NamedTuple):
    key: Any  # what PyJWT's `decode` takes for `algorithm`: bytes, PEM, or a cryptography key
    algorithm: str


class KeySource(Protocol):
    """Where verification keys come from. `key_for` answers from memory only; `refresh`
    may fetch (rate-limited) and says whether a key for `kid` is known afterwards.
    `version` changes whenever a key is withdrawn, so verified tokens are re-checked."""

    version: int

    def key_for(self, kid: str | None, algorithm: str) -> VerifyKey | None: ...

    async def refresh(self, kid: str | None) -> bool: ...


class StaticKey:
    """One configured key (JWT_SECRET / JWT_PUBLIC_KEY); `kid` is not consulted."""

    version = 0

    def __init__(self, key: str | bytes, algorithm: str) -> None:
        self._key = VerifyKey(key, algorithm)

    def key_for(self, kid: str | None, algorithm: str) -> VerifyKey | None:
        return self._key

    async def refresh(self, kid: str | None) -> bool:
        return False


class TokenVerifier:
    """Checks signature (only the key's own algorithm), `exp`, `iss`/`aud` when
    configured, and the claims we read."""

    _CACHE_MAX = 4096

    def __init__(self, keys: KeySource, *, issuer: str | None = None, audience: str | None = None,
                 leeway: float = 0, clock: Callable[[], float] = time.time) -> None:
        self._keys = keys
        self._issuer = issuer or None
        self._audience = audience or None
        self._leeway = leeway
        self._clock = clock
        # Clients send the same token on every request; remembering the exact
        # token bytes that verified (until their `exp`) skips the signature work.
        self._verified: dict[str, Principal] = {}
        # Each distinct set of roles once, shared by the principals that have it: a live
        # connection keeps its principal for hours, and a frozenset is 216 bytes however small.
        self._role_sets: dict[frozenset[str], frozenset[str]] = {}
        self._keys_version = keys.version

    async def authenticate(self, token: str | None) -> Principal:
        """`verify`, and when the token names a key not known yet, one (rate-limited)
        refresh of the key source and a second try. A known key never waits on I/O."""
        try:
            return self.verify(token)
        except KeyUnknown as exc:
            if not await self._keys.refresh(exc.kid):
                raise
        return self.verify(token)

    def verify(self, token: str | None) -> Principal:
        if not token:
            raise TokenMissing("Not Authenticated")
        if self._keys.version != self._keys_version:  # a key was withdrawn: re-check everything
            self._verified.clear()
            self._keys_version = self._keys.version
        cached = self._verified.get(token)
        if cached is not None and self._clock() < cached.expires_at + self._leeway:
            return cached
        principal = self._decode(token)
        if len(self._verified) >= self._CACHE_MAX:
            self._verified.clear()
            self._role_sets.clear()
        roles = self._role_sets.setdefault(principal.roles, principal.roles)
        if roles is not principal.roles:
            principal = dataclasses.replace(principal, roles=roles)
        self._verified[token] = principal
        return principal

    def _decode(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise TokenInvalid(f"Invalid token: {exc}") from None
        kid, algorithm = header.get("kid"), header.get("alg")
        if not isinstance(algorithm, str) or not (kid is None or isinstance(kid, str)):
            raise TokenInvalid("Invalid token: bad header")
        found = self._keys.key_for(kid, algorithm)
        if found is None:
            raise KeyUnknown(kid)
        required = ["exp", "sub"] + ["iss"] * bool(self._issuer) + ["aud"] * bool(self._audience)
        try:
            claims = jwt.decode(
                token,
                found.key,
                algorithms=[found.algorithm],
                issuer=self._issuer,
                audience=self._audience,
                options={"require": required},
                leeway=self._leeway,
            )
        except jwt.ExpiredSignatureError:
            raise TokenExpired("Token has expired") from None
        except jwt.InvalidTokenError as exc:
            raise TokenInvalid(f"Invalid token: {exc}") from None
        return principal_from_claims(claims)


def principal_from_claims(claims: dict[str, object]) -> Principal:
    exp = claims.get("exp")
    # RFC 7519 NumericDate is a JSON number; PyJWT alone also takes "1700000000".
    if not isinstance(exp, (int, float)) or isinstance(exp, bool):
        raise TokenInvalid("Invalid token: 'exp' must be a number")
    sub = claims.get("sub")
    user_id = sub.rsplit("|", 1)[-1] if isinstance(sub, str) else ""
    if not user_id.strip():
        raise TokenInvalid("Invalid token: 'sub' must be a non-empty string")
    roles = claims.get("roles", claims.get("Roles", []))
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise TokenInvalid("Invalid token: 'roles' must be a JSON array of strings")
    account = claims.get("accountId")
    if not isinstance(account, str) or not account:
        raise TokenInvalid("Invalid token: missing 'accountId' claim")
    endpoint = claims.get("endpointId")
    name = claims.get("name")
    return Principal(
        user_id=user_id,
        account_id=account,
        endpoint_id=str(endpoint) if endpoint else None,
        roles=frozenset(roles),
        name=str(name) if name else None,
        expires_at=float(exp),
    )


def require_role(principal: Principal, role: str) -> Principal:
    if not principal.has_role(role):
        raise Forbidden("Invalid Role")
    return principal


def api_key_matches(presented: str | None, expected: str) -> bool:
    """Constant-time comparison of a shared API key."""
    if not presented or not expected:
        return False
    return hmac.compare_digest(presented.encode(), expected.encode())


def mint_token(
    key: str | bytes,
    *,
    sub: str,
    account_id: str,
    endpoint_id: str | None,
    roles: list[str],
    name: str | None = None,
    ttl_seconds: int = 3600,
    algorithm: str = "HS256",
    now: float | None = None,
) -> str:
    """A signed dev/test token in ServiceStack's claim layout."""
    issued = int(now if now is not None else time.time())
    claims: dict[str, object] = {
        "iss": "ssjwt",
        "sub": sub,
        "iat": issued,
        "exp": issued + ttl_seconds,
        "roles": roles,
        "accountId": account_id,
    }
    if endpoint_id:
        claims["endpointId"] = endpoint_id
    if name:
        claims["name"] = name
    return jwt.encode(claims, key, algorithm=algorithm, headers={"typ": "JWT"})
