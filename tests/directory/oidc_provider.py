"""A small OpenID Connect provider for tests: discovery, JWKS, authorize (the user's eID/itsme
step is simulated: ``POST /_next`` names who logs in next), token with PKCE S256, RS256 ID tokens."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def create_app(issuer: str, client_id: str, client_secret: str) -> Starlette:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    numbers = key.public_key().public_numbers()
    state: dict[str, Any] = {"next": {}, "codes": {}}

    def sign(claims: dict[str, Any]) -> str:
        head = _b64(orjson.dumps({"alg": "RS256", "typ": "JWT", "kid": "k1"}))
        body = _b64(orjson.dumps(claims))
        signature = key.sign(f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{head}.{body}.{_b64(signature)}"

    async def discovery(_: Request) -> Response:
        return JSONResponse(
            {
                "issuer": issuer,
                "authorization_endpoint": f"{issuer}/authorize",
                "token_endpoint": f"{issuer}/token",
                "jwks_uri": f"{issuer}/jwks",
            }
        )

    async def jwks(_: Request) -> Response:
        n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
        e = numbers.e.to_bytes(3, "big")
        return JSONResponse({"keys": [{"kty": "RSA", "kid": "k1", "alg": "RS256", "n": _b64(n), "e": _b64(e)}]})

    async def set_next(request: Request) -> Response:
        state["next"] = await request.json()
        return JSONResponse({"ok": True})

    async def authorize(request: Request) -> Response:
        q = request.query_params
        if q.get("client_id") != client_id or q.get("code_challenge_method") != "S256":
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        if state["next"].get("deny"):
            return RedirectResponse(f"{q['redirect_uri']}?{urlencode({'error': 'access_denied', 'state': q['state']})}")
        code = secrets.token_urlsafe(16)
        state["codes"][code] = {
            "nonce": q["nonce"],
            "challenge": q["code_challenge"],
            "redirect_uri": q["redirect_uri"],
            **state["next"],
        }
        return RedirectResponse(f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}", 303)

    async def token(request: Request) -> Response:
        form = await request.form()
        grant = state["codes"].pop(str(form.get("code")), None)
        if grant is None or form.get("client_secret") != client_secret or form.get("client_id") != client_id:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        verifier = str(form.get("code_verifier", ""))
        if _b64(hashlib.sha256(verifier.encode()).digest()) != grant["challenge"]:
            return JSONResponse({"error": "invalid_grant", "error_description": "PKCE"}, status_code=400)
        if form.get("redirect_uri") != grant["redirect_uri"]:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        now = int(time.time())
        claims = {
            "iss": issuer,
            "aud": client_id,
            "sub": "pairwise-" + secrets.token_hex(4),
            "iat": now,
            "exp": now + 300,
            "nonce": grant.get("nonce_override", grant["nonce"]),
            "egovNRN": grant.get("rrn", ""),
        }
        id_token = sign(claims)
        if grant.get("tamper"):
            head, _body, sig = id_token.split(".")
            claims["egovNRN"] = grant["tamper"]
            id_token = f"{head}.{_b64(orjson.dumps(claims))}.{sig}"
        return JSONResponse({"access_token": "at", "token_type": "Bearer", "id_token": id_token})

    return Starlette(
        routes=[
            Route("/.well-known/openid-configuration", discovery),
            Route("/jwks", jwks),
            Route("/_next", set_next, methods=["POST"]),
            Route("/authorize", authorize),
            Route("/token", token, methods=["POST"]),
        ]
    )
