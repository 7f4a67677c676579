"""COA: the warm handover of a status holder's klantprofiel.

Partner:
    COA (Centraal Orgaan opvang asielzoekers). At the warm handover, when a
    status holder is linked to a municipality, COA sends the klantprofiel of
    voorinburgering (personal data, ambition, language level, education); the
    municipality confirms receipt.

Protocol:
    Digikoppeling REST-API profile, JSON over HTTP (``contract/openapi.yaml``,
    OpenAPI 3.1). The caller is named by OIN in ``X-OIN`` (in production from
    the PKIoverheid client certificate), every message carries its message id
    as ``X-Transaction-Id``; answers carry ``API-Version``; refusals are RFC 9457
    problem+json with a ``code``.

Features:
    - deliver (knooppunt -> COA): the canonical JSON form of any message
      (``Delivery.payload_json``), e.g. the municipality's confirmation of a
      klantprofiel (its ``conversationId`` is the klantprofiel's message id).
      A resend uses the same transaction id; COA answers it with the first answer.
    - inbound (COA -> knooppunt): COA posts klantprofielen to the knooppunt's
      ``POST /v1/berichten`` (webhook ``klantprofiel`` in the contract).
    - reconcile: ``reconcile(period)`` reads COA's ``GET /afstemming``.
    - health: ``GET /status``.
    - errors: unreachable, timeout, 408/425/429/5xx -> PartnerUnavailable;
      other 4xx (with the problem's code), and answers that are too large,
      not JSON or not what the contract says -> PartnerRejected.

Configuration keys:
    base_url                COA's API base, e.g. http://127.0.0.1:8202/v1 (required)
    oin                     the knooppunt's OIN, sent as X-OIN (required)
    partner_oin             COA's OIN (required)
    token                   optional bearer token
    timeout_seconds         per HTTP exchange (default 30)
    max_message_bytes       cap on an answer read from COA (default 5000000)
    retry_interval_seconds, retry_window_days, retry_backoff, retry_max_interval_seconds,
    business_hours          the retry window (see adapters._digikoppeling.reliability.RetryPolicy)
    tls_profile             read by the hub: the outgoing TLS profile (the PKIoverheid client
                            certificate, COA's CAs and CRLs) of the client the adapter gets (hub/tls.py)
"""

from adapters.coa.adapter import CoaAdapter

__all__ = ["CoaAdapter"]
