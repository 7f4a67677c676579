"""Careful HTTP exchanges: answers read with a size cap, partner text cleaned before it reaches a log.

Hostile or broken answers (too large, DTDs, wrong envelope, unverifiable) are
a partner answering badly, not a partner being away: adapters raise
``PartnerRejected`` for them, and never repeat the partner's markup in the
error detail.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from hub.errors import PartnerRejected, PartnerUnavailable

_MARKUP = re.compile(r"[<>]")
TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def clean(text: str, limit: int = 300) -> str:
    """Partner text safe to put in an error detail: no markup, bounded length."""
    flat = " ".join(_MARKUP.sub("", text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class Answer:
    """A partner's HTTP answer, read whole (within the cap)."""

    status: int
    headers: Mapping[str, str]
    content: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


async def exchange(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    partner: str,
    timeout: float,
    max_bytes: int,
    content: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
) -> Answer:
    """Send one request and read the answer, at most ``max_bytes`` of it.

    Raises:
        PartnerUnavailable: timeout or connection failure.
        PartnerRejected: the answer is larger than ``max_bytes``.
    """
    try:
        async with http.stream(
            method, url, content=content, headers=dict(headers or {}), params=dict(params or {}), timeout=timeout
        ) as response:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise PartnerRejected(f"{partner} antwoordde met meer dan {max_bytes} bytes")
                chunks.append(chunk)
            return Answer(response.status_code, dict(response.headers), b"".join(chunks))
    except httpx.TimeoutException as exc:
        raise PartnerUnavailable(f"{partner} antwoordde niet binnen {timeout:g} s") from exc
    except httpx.TransportError as exc:
        raise PartnerUnavailable(f"{partner} is niet bereikbaar: {type(exc).__name__}") from exc
