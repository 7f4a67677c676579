"""The hub's exception hierarchy.

Only the API layer turns these into problem+json or SOAP faults; the core
raises them with a stable snake_case ``code`` (as X-Road's ``ErrorCode``).

    HubError
    ├── InputError                      4xx: the caller sent something wrong
    │   ├── MalformedInput              bad XML/JSON, DOCTYPE, too deep
    │   ├── PayloadTooLarge             body above the configured cap
    │   ├── UnsupportedMediaType
    │   ├── ValidationFailed            schema or identifier errors (all of them)
    │   ├── UnknownMessageType          type or version not in schemas/
    │   └── UnknownPartner              receiver not known to the hub
    ├── AuthenticationFailed            missing or wrong credentials
    ├── RateLimited                     too many requests: 429 with Retry-After
    ├── NotAllowed                      no protocol allows this exchange
    │   └── ScopeNotGranted             the access token lacks the protocol's scope
    ├── NotFound                        no such message (for this caller)
    ├── Conflict                        same message id, other content
    ├── ConfigurationError              bad configuration at start-up
    ├── StoreError                      the database refused or timed out
    ├── TransportError                  the broker is unreachable or did not confirm in time
    └── PartnerError                    a partner could not be reached or answered badly
        ├── PartnerUnavailable          transient: retry later
        └── PartnerRejected             permanent: the partner refused
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class InvalidParam:
    """One invalid field: where (JSON pointer or XPath), which rule, why."""

    name: str
    reason: str
    code: str = "invalid"


class HubError(Exception):
    """Root of every error the hub raises on purpose."""

    code = "hub_error"
    status = 500
    title = "Interne fout"

    def __init__(self, detail: str, *, invalid_params: list[InvalidParam] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.invalid_params: list[InvalidParam] = invalid_params or []


class InputError(HubError):
    code = "invalid_input"
    status = 400
    title = "Ongeldige invoer"


class MalformedInput(InputError):
    code = "malformed_input"
    title = "Onleesbaar bericht"


class PayloadTooLarge(InputError):
    code = "payload_too_large"
    status = 413
    title = "Bericht te groot"


class UnsupportedMediaType(InputError):
    code = "unsupported_media_type"
    status = 415
    title = "Niet-ondersteund formaat"


class ValidationFailed(InputError):
    code = "validation_failed"
    status = 400
    title = "Bericht voldoet niet aan het informatiemodel"


class UnknownMessageType(InputError):
    code = "unknown_message_type"
    status = 400
    title = "Onbekend berichttype of versie"


class UnknownPartner(InputError):
    code = "unknown_partner"
    status = 400
    title = "Onbekende partner"


class AuthenticationFailed(HubError):
    code = "authentication_failed"
    status = 401
    title = "Niet geauthenticeerd"


class RateLimited(HubError):
    code = "rate_limited"
    status = 429
    title = "Te veel verzoeken"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = max(1, retry_after)


class NotAllowed(HubError):
    code = "not_allowed"
    status = 403
    title = "Geen protocol staat deze uitwisseling toe"


class ScopeNotGranted(NotAllowed):
    code = "insufficient_scope"
    title = "Het toegangstoken geeft geen toegang tot dit protocol"


class NotFound(HubError):
    code = "not_found"
    status = 404
    title = "Niet gevonden"


class Conflict(HubError):
    code = "conflict"
    status = 409
    title = "Conflict"


class ConfigurationError(HubError):
    code = "configuration_error"
    status = 500
    title = "Configuratiefout"


class StoreError(HubError):
    code = "store_error"
    status = 503
    title = "Opslag niet beschikbaar"


class TransportError(HubError):
    code = "transport_unavailable"
    status = 503
    title = "Berichtenbus niet beschikbaar"


class PartnerError(HubError):
    code = "partner_error"
    status = 502
    title = "Partnerfout"


class PartnerUnavailable(PartnerError):
    code = "partner_unavailable"
    status = 503
    title = "Partner niet bereikbaar"


class PartnerRejected(PartnerError):
    code = "partner_rejected"
    status = 502
    title = "Partner weigerde"


@dataclass(slots=True)
class ErrorCollector:
    """Collects invalid params so a caller hears about every error at once."""

    params: list[InvalidParam] = field(default_factory=list)

    def add(self, name: str, reason: str, code: str = "invalid") -> None:
        self.params.append(InvalidParam(name=name, reason=reason, code=code))

    def raise_if_any(self, detail: str) -> None:
        if self.params:
            raise ValidationFailed(detail, invalid_params=list(self.params))
