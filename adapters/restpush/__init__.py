"""Generic REST push adapter.

Partner:
    Any chain partner on plateau 2 that takes messages by HTTP POST.
Protocol:
    ``POST {url}`` with the message in the hub's JSON form (header fields
    and ``payload``) or its XML envelope; headers ``X-Message-Id``,
    ``traceparent`` and, when configured, ``Authorization: Bearer``.
    2xx = delivered; 408/425/429/5xx and network errors = try again later;
    other 4xx = refused for good.
Features:
    deliver (json, xml); health (``GET {health_url}`` when configured).
Configuration keys:
    url (required), format ("json" | "xml", default json), token,
    health_url, timeout_seconds (default 10), tls_profile (read by the hub:
    the outgoing TLS profile of the client the adapter gets, see hub/tls.py).
"""

from adapters.restpush.adapter import RestPushAdapter

__all__ = ["RestPushAdapter"]
