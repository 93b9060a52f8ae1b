"""Bearer JWT verification (pure). Who the caller is, never what they see."""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass

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


class TokenVerifier:
    """Checks signature (only the configured algorithm), `exp`, and claims."""

    _CACHE_MAX = 4096

    def __init__(self, key: str | bytes, algorithm: str, leeway: float = 0) -> None:
        self._key = key
        self._algorithms = [algorithm]
        self._leeway = leeway
        # Clients send the same token on every request; remembering the exact
        # token bytes that verified (until their `exp`) skips the signature work.
        self._verified: dict[str, Principal] = {}

    def verify(self, token: str | None) -> Principal:
        if not token:
            raise TokenMissing("Not Authenticated")
        cached = self._verified.get(token)
        if cached is not None and time.time() < cached.expires_at + self._leeway:
            return cached
        principal = self._decode(token)
        if len(self._verified) >= self._CACHE_MAX:
            self._verified.clear()
        self._verified[token] = principal
        return principal

    def _decode(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=self._algorithms,
                options={"require": ["exp", "sub"]},
                leeway=self._leeway,
            )
        except jwt.ExpiredSignatureError:
            raise TokenExpired("Token has expired") from None
        except jwt.InvalidTokenError as exc:
            raise TokenInvalid(f"Invalid token: {exc}") from None
        return principal_from_claims(claims)


def principal_from_claims(claims: dict[str, object]) -> Principal:
    roles = claims.get("roles", claims.get("Roles", []))
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise TokenInvalid("Invalid token: 'roles' must be a JSON array of strings")
    account = claims.get("accountId")
    if not isinstance(account, str) or not account:
        raise TokenInvalid("Invalid token: missing 'accountId' claim")
    endpoint = claims.get("endpointId")
    name = claims.get("name")
    sub = str(claims["sub"]).rsplit("|", 1)[-1]
    return Principal(
        user_id=sub,
        account_id=account,
        endpoint_id=str(endpoint) if endpoint else None,
        roles=frozenset(roles),
        name=str(name) if name else None,
        expires_at=float(claims["exp"]),  # type: ignore[arg-type]
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
