"""A local identity provider: publishes a JWKS over real HTTP on loopback, signs
tokens with its current key, and rotates that key on demand."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ISSUER = "https://idp.test/"
AUDIENCE = "callstate"


class SigningKey:
    def __init__(self, kid: str, algorithm: str) -> None:
        self.kid = kid
        self.algorithm = algorithm
        self.private: Any = (rsa.generate_private_key(public_exponent=65537, key_size=2048)
                             if algorithm == "RS256" else ec.generate_private_key(ec.SECP256R1()))

    def jwk(self) -> dict[str, Any]:
        algo = jwt.algorithms.RSAAlgorithm if self.algorithm == "RS256" else jwt.algorithms.ECAlgorithm
        public: dict[str, Any] = algo.to_jwk(self.private.public_key(), as_dict=True)
        return {**public, "kid": self.kid, "use": "sig", "alg": self.algorithm}

    def sign(self, claims: dict[str, Any], *, kid: str | None = None) -> str:
        return jwt.encode(claims, self.private, algorithm=self.algorithm,
                          headers={"kid": self.kid if kid is None else kid})


def claims(*, sub: str = "u1", account: str = "A1", endpoint: str = "E1", ttl: int = 600,
           **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + ttl, "roles": ["User"],
            "accountId": account, "endpointId": endpoint, **extra}


class JwksServer:
    """GET /jwks.json serves the published keys; `requests` counts the fetches."""

    def __init__(self, first: SigningKey) -> None:
        self.current = first
        self.published = [first]
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                outer.requests += 1
                body = json.dumps({"keys": [k.jwk() for k in outer.published]}).encode()
                self.send_response(200 if self.path == "/jwks.json" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/jwks.json"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def rotate(self, new: SigningKey, *, keep_old: bool = False) -> None:
        """Sign with `new` from now on; the old key stays published only if `keep_old`."""
        self.published = [*self.published, new] if keep_old else [new]
        self.current = new

    def sign(self, claims: dict[str, Any]) -> str:
        return self.current.sign(claims)

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
