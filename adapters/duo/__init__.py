"""DUO: the Dutch executive agency for education, for the Wet inburgering 2021.

Partner:
    DUO (Dienst Uitvoering Onderwijs). It establishes the inburgeringsplicht
    and receives the gemeente's PIP with its leerroute, PIP changes and
    handhaving measures.

Protocol:
    Digikoppeling WUS: SOAP 1.1 document/literal over HTTP
    (``contract/duo-inburgering.wsdl``, body elements in ``contract/duo-wus.xsd``),
    WS-Addressing 1.0 (Action ``urn:knooppunt:duo:wus:1:<type>``, MessageID
    ``urn:uuid:<message id>``, To/From with ``?OIN=``, RelatesTo on answers) and
    WS-Security 1.0: an X.509 BinarySecurityToken and one XML signature
    (RSA-SHA256, exclusive C14N, SHA-256 digests) over Body, Timestamp and the
    addressing headers. The signer's OIN is the certificate's subject serialNumber.

Features:
    - deliver (gemeente -> DUO): pip, pip-wijziging, handhaving, and any other
      type of urn:knooppunt:inburgering:1 (the Action follows the type). The
      same message id on every attempt, so DUO eliminates duplicates; a
      correction type must carry ``<vervangtBericht>`` (the id it replaces) as
      a child of its payload root, sent as ``vervangt``.
    - receive (DUO -> gemeente, for the hub's SOAP endpoint): ``handle()`` is
      the whole endpoint (verify, accept through the hub's callback, answer
      signed, or fault; Afstemming answered from the hub's counts). Its parts:
      ``receive()`` verifies signature, certificate, OIN, Timestamp and
      addressing and refuses a correctiesignaal for an unknown signal;
      ``acknowledge()`` builds the signed answer, ``fault()`` the SOAP fault.
    - reconcile: ``reconcile(period)`` asks DUO (Afstemming) what it received
      and sent in a month or day: counts, checksums, message ids.
    - health: a signed Afstemming round trip and the certificate's expiry.
    - errors: unreachable, timeout, 408/425/429/5xx without a fault, 503,
      soap:Server faults and wsse:MessageExpired -> PartnerUnavailable;
      soap:Client and other WS-Security faults, other 4xx, and answers that
      are hostile (DTD, too large), unreadable, unsigned or wrongly signed,
      or relate to another message -> PartnerRejected (the detail never
      repeats the partner's markup).
    - ``retry_policy``: the partner's Digikoppeling retry window
      (:func:`adapters._digikoppeling.reliability.next_attempt`).

Configuration keys:
    endpoint_url            DUO's DuoPort URL (required)
    oin                     the knooppunt's own OIN; must match its certificate (required)
    partner_oin             DUO's OIN (required)
    key_file, cert_file     the knooppunt's signing key and certificate, PEM (required)
    ca_file                 PEM bundle of CAs that issue partner certificates (required)
    trusted_oins            OINs accepted as signers of answers and inbound messages (default [partner_oin])
    inbound_types           types DUO may send in (default ["inburgeringsplicht", "correctiesignaal"])
    correction_types        types that must name what they replace (default ["correctiesignaal", "pip-wijziging"])
    replaces_element        payload child holding the replaced message id (default "vervangtBericht")
    timestamp_ttl_seconds   lifetime of our Timestamps (default 300)
    clock_skew_seconds      tolerance on their Timestamps and certificates (default 60)
    timeout_seconds         per HTTP exchange (default 30)
    max_message_bytes       cap on what is parsed (default 5000000)
    verify_responses        verify DUO's signed answers (default true)
    retry_interval_seconds, retry_window_days, retry_backoff, retry_max_interval_seconds,
    business_hours          {start, end, weekdays, timezone}: the retry window (see RetryPolicy)
    tls_profile             read by the hub: the outgoing TLS profile (the PKIoverheid client
                            certificate for two-way TLS, DUO's CAs and CRLs) of the client the
                            adapter gets (hub/tls.py); distinct from key_file/cert_file (WS-Security)
"""

from adapters.duo.adapter import DuoAdapter
from adapters.duo.link import InboundMessage

__all__ = ["DuoAdapter", "InboundMessage"]
