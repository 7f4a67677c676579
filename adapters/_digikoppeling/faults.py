"""Errors of the Digikoppeling layer, each with the SOAP fault it becomes.

Every class is a :class:`hub.errors.HubError`, so the hub's API layer can map
it like any other error; ``fault_code`` names the SOAP 1.1 faultcode (a
WS-Security 1.1 code where one fits) and ``code`` the stable snake_case code
that the fault's ``detail`` carries::

    AuthenticationFailed
    └── WsSecurityFault           wsse:InvalidSecurity      ws_security_invalid
        ├── SignatureMissing      wsse:InvalidSecurity      signature_missing
        ├── SignatureInvalid      wsse:FailedCheck          signature_invalid
        ├── TimestampInvalid      wsse:InvalidSecurity      timestamp_invalid
        │   └── TimestampExpired  wsse:MessageExpired       timestamp_expired
        ├── CertificateUntrusted  wsse:InvalidSecurityToken certificate_untrusted
        └── UnknownOin            wsse:FailedAuthentication oin_unknown
    MalformedInput
    └── AddressingInvalid         wsa:InvalidAddressingHeader addressing_invalid
    InputError
    ├── UnknownAction             wsa:ActionNotSupported    action_unknown
    ├── UnknownSignal             soap:Client               correction_unknown_signal
    └── UnknownCorrelation        soap:Client               relates_to_unknown
"""

from __future__ import annotations

from hub.errors import AuthenticationFailed, InputError, MalformedInput

SOAP11_NS = "http://schemas.xmlsoap.org/soap/envelope/"
WSSE_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSA_NS = "http://www.w3.org/2005/08/addressing"

FaultCode = tuple[str, str]
"""A faultcode as (namespace, local name)."""

CLIENT: FaultCode = (SOAP11_NS, "Client")
SERVER: FaultCode = (SOAP11_NS, "Server")


class WsSecurityFault(AuthenticationFailed):
    """The wsse:Security header could not be processed."""

    code = "ws_security_invalid"
    fault_code: FaultCode = (WSSE_NS, "InvalidSecurity")


class SignatureMissing(WsSecurityFault):
    """The message carries no (usable) XML signature."""

    code = "signature_missing"


class SignatureInvalid(WsSecurityFault):
    """A digest or the signature value does not match: the message was changed or signed with another key."""

    code = "signature_invalid"
    fault_code = (WSSE_NS, "FailedCheck")


class TimestampInvalid(WsSecurityFault):
    """The wsu:Timestamp is missing, unsigned, unreadable or created in the future."""

    code = "timestamp_invalid"


class TimestampExpired(TimestampInvalid):
    """The wsu:Timestamp has expired: a stale or replayed message."""

    code = "timestamp_expired"
    fault_code = (WSSE_NS, "MessageExpired")


class CertificateUntrusted(WsSecurityFault):
    """The signer's certificate is unreadable, outside its validity or not issued by a trusted CA."""

    code = "certificate_untrusted"
    fault_code = (WSSE_NS, "InvalidSecurityToken")


class UnknownOin(WsSecurityFault):
    """The OIN in the signer's certificate is not one this link accepts."""

    code = "oin_unknown"
    fault_code = (WSSE_NS, "FailedAuthentication")


class AddressingInvalid(MalformedInput):
    """A WS-Addressing header is missing or wrong (MessageID, Action, To, From)."""

    code = "addressing_invalid"
    fault_code: FaultCode = (WSA_NS, "InvalidAddressingHeader")


class UnknownAction(InputError):
    """The wsa:Action names no operation of this service."""

    code = "action_unknown"
    fault_code: FaultCode = (WSA_NS, "ActionNotSupported")


class UnknownSignal(InputError):
    """A correction refers to a message id the receiver never accepted."""

    code = "correction_unknown_signal"
    status = 422
    title = "Correctie voor een onbekend signaal"
    fault_code: FaultCode = CLIENT


class UnknownCorrelation(InputError):
    """An answer's RelatesTo matches no open question."""

    code = "relates_to_unknown"
    status = 422
    title = "Antwoord op een onbekende vraag"
    fault_code: FaultCode = CLIENT
