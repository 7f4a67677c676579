"""Request helpers shared by the routers: the hub, the calling partner, a capped body."""

from __future__ import annotations

from fastapi import Request

from hub.errors import AuthenticationFailed, PayloadTooLarge
from hub.partners import Partner
from hub.service import Hub


def get_hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationFailed("stuur een toegangstoken: Authorization: Bearer <token>")
    return token.strip()


async def current_partner(request: Request) -> Partner:
    """The authenticated partner (FastAPI dependency; async so it never takes a thread-pool hop)."""
    return get_hub(request).authenticate(bearer_token(request))


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The body, refused as soon as it passes the cap (before any parser sees it)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"het bericht is {declared} bytes, de grens is {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"het bericht is groter dan de grens van {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
