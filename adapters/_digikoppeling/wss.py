"""WS-Security for Digikoppeling WUS: sign and verify SOAP 1.1 envelopes.

Built on lxml (exclusive C14N) and ``cryptography`` (RSA-SHA256, X.509), so it
installs from wheels on a fresh Debian 12 machine: no libxmlsec1, and no
libxml2 version that has to match the one inside lxml's wheel.

The header this module writes and reads (WSS 1.0, X.509 token profile)::

    <soap:Header>
      <wsa:Action wsu:Id=".."/> <wsa:MessageID wsu:Id=".."/> <wsa:To wsu:Id=".."/> ...
      <wsse:Security soap:mustUnderstand="1">
        <wsse:BinarySecurityToken wsu:Id="X509-.." ValueType="..#X509v3" EncodingType="..#Base64Binary"/>
        <wsu:Timestamp wsu:Id="TS-.."><wsu:Created/><wsu:Expires/></wsu:Timestamp>
        <ds:Signature>
          <ds:SignedInfo>
            <ds:CanonicalizationMethod Algorithm="exc-c14n"/>
            <ds:SignatureMethod Algorithm="rsa-sha256"/>
            <ds:Reference URI="#.."> exc-c14n transform, sha256 digest </ds:Reference>  (one per signed part)
          </ds:SignedInfo>
          <ds:SignatureValue/>
          <ds:KeyInfo><wsse:SecurityTokenReference><wsse:Reference URI="#X509-.."/></..></ds:KeyInfo>
        </ds:Signature>
      </wsse:Security>
    </soap:Header>
    <soap:Body wsu:Id="..">...</soap:Body>

The signed parts are the Body, the Timestamp and every WS-Addressing header,
so neither the content nor the message id, action or addressee can be swapped.

The verifier is strict on purpose: it accepts only these algorithms, refuses
duplicate Ids (signature wrapping), resolves each reference to exactly one
element and then checks that the very elements the receiver acts on (the
envelope's Body, the Security header's Timestamp, the addressing headers) are
among the signed ones.
"""

from __future__ import annotations

import base64
import hmac
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from lxml import etree

from adapters._digikoppeling.faults import (
    SOAP11_NS,
    WSA_NS,
    WSSE_NS,
    CertificateUntrusted,
    SignatureInvalid,
    SignatureMissing,
    TimestampExpired,
    TimestampInvalid,
    UnknownOin,
    WsSecurityFault,
)
from hub.errors import ConfigurationError, MalformedInput
from hub.identifiers import IdentifierError, parse_oin

WSU_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
X509V3 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"
BASE64 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"

_S = "{%s}" % SOAP11_NS
_WSSE = "{%s}" % WSSE_NS
_WSU = "{%s}" % WSU_NS
_DS = "{%s}" % DS_NS
_WSA = "{%s}" % WSA_NS
_ID_ATTRIBUTES = (_WSU + "Id", "Id", "ID", "{http://www.w3.org/XML/1998/namespace}id")
_NSMAP = {"wsse": WSSE_NS, "wsu": WSU_NS, "ds": DS_NS}

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The current time, timezone-aware (UTC)."""
    return datetime.now(UTC)


def format_time(moment: datetime) -> str:
    """xs:dateTime in UTC with milliseconds, as WS-Security timestamps are written."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_time(text: str | None) -> datetime:
    """Read an xs:dateTime; one without a zone is taken as UTC (WSS 1.1 demands UTC)."""
    if not text:
        raise ValueError("empty time")
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def certificate_oin(certificate: x509.Certificate) -> str:
    """The OIN in a certificate's subject serialNumber, as PKIoverheid puts it there.

    Raises:
        CertificateUntrusted: the certificate carries no valid OIN.
    """
    values = certificate.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    if len(values) != 1:
        raise CertificateUntrusted("het certificaat van de ondertekenaar bevat geen OIN (subject serialNumber)")
    try:
        return parse_oin(str(values[0].value))
    except IdentifierError as exc:
        raise CertificateUntrusted(f"het certificaat bevat geen geldig OIN: {exc}") from exc


def load_certificates(path: str | Path) -> list[x509.Certificate]:
    """Every PEM certificate in a file (a trust bundle).

    Raises:
        ConfigurationError: unreadable, or no certificate in it.
    """
    try:
        certificates = x509.load_pem_x509_certificates(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"certificaten in {path} kunnen niet gelezen worden: {exc}") from exc
    if not certificates:
        raise ConfigurationError(f"geen certificaat in {path}")
    return certificates


@dataclass(frozen=True, slots=True)
class SigningIdentity:
    """A private key with its certificate: who signs what this side sends."""

    private_key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    @classmethod
    def from_pem_files(cls, key_file: str | Path, cert_file: str | Path) -> SigningIdentity:
        """Load an unencrypted PEM private key and the first certificate of a PEM file.

        Raises:
            ConfigurationError: unreadable, not RSA, or key and certificate do not belong together.
        """
        try:
            key = serialization.load_pem_private_key(Path(key_file).read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigurationError(f"de sleutel {key_file} kan niet gelezen worden: {exc}") from exc
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ConfigurationError(f"de sleutel {key_file} is geen RSA-sleutel")
        certificate = load_certificates(cert_file)[0]
        public = certificate.public_key()
        if not isinstance(public, rsa.RSAPublicKey) or public.public_numbers() != key.public_key().public_numbers():
            raise ConfigurationError(f"het certificaat {cert_file} hoort niet bij de sleutel {key_file}")
        return cls(private_key=key, certificate=certificate)

    @property
    def oin(self) -> str:
        return certificate_oin(self.certificate)


def c14n(element: etree._Element, prefixes: Sequence[str] = ()) -> bytes:
    """Exclusive XML canonicalisation 1.0 (without comments) of one element in its document."""
    return bytes(
        etree.tostring(
            element, method="c14n", exclusive=True, with_comments=False, inclusive_ns_prefixes=list(prefixes) or None
        )
    )


def _digest(element: etree._Element, prefixes: Sequence[str] = ()) -> str:
    return base64.b64encode(sha256(c14n(element, prefixes)).digest()).decode("ascii")


def _ensure_id(element: etree._Element, prefix: str) -> str:
    for name in _ID_ATTRIBUTES:
        existing = element.get(name)
        if existing:
            return existing
    value = f"{prefix}-{uuid.uuid4().hex}"
    element.set(_WSU + "Id", value)
    return value


def _addressing_headers(header: etree._Element) -> list[etree._Element]:
    return [child for child in header if isinstance(child.tag, str) and child.tag.startswith(_WSA)]


def sign_envelope(
    envelope: etree._Element,
    identity: SigningIdentity,
    *,
    ttl: timedelta = timedelta(minutes=5),
    now: datetime | None = None,
) -> None:
    """Add a wsse:Security header that signs Body, Timestamp and the addressing headers.

    Args:
        envelope: a soap:Envelope (SOAP 1.1) with its Header and Body; changed in place.
        identity: the key and certificate to sign with.
        ttl: how long the Timestamp is valid (Expires = Created + ttl).
        now: the signing moment (tests pass one to make an expired message).
    """
    if envelope.tag != _S + "Envelope":
        raise MalformedInput("alleen een SOAP 1.1-envelop kan ondertekend worden")
    body = envelope.find(_S + "Body")
    if body is None:
        raise MalformedInput("de SOAP-envelop heeft geen Body")
    header = envelope.find(_S + "Header")
    if header is None:
        header = etree.Element(_S + "Header")
        body.addprevious(header)
    moment = now or utcnow()

    security = etree.SubElement(header, _WSSE + "Security", nsmap=_NSMAP)
    security.set(_S + "mustUnderstand", "1")
    token = etree.SubElement(security, _WSSE + "BinarySecurityToken")
    token_id = f"X509-{uuid.uuid4().hex}"
    token.set(_WSU + "Id", token_id)
    token.set("ValueType", X509V3)
    token.set("EncodingType", BASE64)
    token.text = base64.b64encode(identity.certificate.public_bytes(serialization.Encoding.DER)).decode("ascii")
    timestamp = etree.SubElement(security, _WSU + "Timestamp")
    timestamp.set(_WSU + "Id", f"TS-{uuid.uuid4().hex}")
    etree.SubElement(timestamp, _WSU + "Created").text = format_time(moment)
    etree.SubElement(timestamp, _WSU + "Expires").text = format_time(moment + ttl)

    signed = [*_addressing_headers(header), timestamp, body]
    signature = etree.SubElement(security, _DS + "Signature")
    signed_info = etree.SubElement(signature, _DS + "SignedInfo")
    etree.SubElement(signed_info, _DS + "CanonicalizationMethod", Algorithm=EXC_C14N)
    etree.SubElement(signed_info, _DS + "SignatureMethod", Algorithm=RSA_SHA256)
    for part in signed:
        part_id = _ensure_id(part, "id")
        reference = etree.SubElement(signed_info, _DS + "Reference", URI=f"#{part_id}")
        transforms = etree.SubElement(reference, _DS + "Transforms")
        etree.SubElement(transforms, _DS + "Transform", Algorithm=EXC_C14N)
        etree.SubElement(reference, _DS + "DigestMethod", Algorithm=SHA256)
        etree.SubElement(reference, _DS + "DigestValue").text = _digest(part)
    value = identity.private_key.sign(c14n(signed_info), padding.PKCS1v15(), hashes.SHA256())
    etree.SubElement(signature, _DS + "SignatureValue").text = base64.b64encode(value).decode("ascii")
    key_info = etree.SubElement(signature, _DS + "KeyInfo")
    reference_holder = etree.SubElement(key_info, _WSSE + "SecurityTokenReference")
    etree.SubElement(reference_holder, _WSSE + "Reference", URI=f"#{token_id}", ValueType=X509V3)


@dataclass(frozen=True, slots=True)
class VerifiedSender:
    """What a valid signature proves: who signed, and when the message was made."""

    oin: str
    certificate: x509.Certificate
    created: datetime
    expires: datetime


class WssVerifier:
    """Verifies the WS-Security header of incoming SOAP 1.1 envelopes.

    Args:
        trust_anchors: CA certificates; a signer's certificate must be issued directly by one of them.
        allowed_oins: the OINs whose signatures this link accepts.
        clock_skew: tolerance for Created in the future and Expires in the past.
        max_lifetime: the longest Expires - Created accepted (a message valid for days is refused).
        clock: the current time (tests inject a fixed one).
    """

    def __init__(
        self,
        trust_anchors: Sequence[x509.Certificate],
        allowed_oins: Collection[str],
        *,
        clock_skew: timedelta = timedelta(seconds=60),
        max_lifetime: timedelta = timedelta(minutes=30),
        clock: Clock = utcnow,
    ) -> None:
        if not trust_anchors:
            raise ConfigurationError("een WS-Security-verificateur heeft minstens één vertrouwd CA-certificaat nodig")
        self._anchors = tuple(trust_anchors)
        self._allowed = frozenset(parse_oin(oin) for oin in allowed_oins)
        self._skew = clock_skew
        self._max_lifetime = max_lifetime
        self._clock = clock

    @property
    def allowed_oins(self) -> frozenset[str]:
        return self._allowed

    def verify(self, envelope: etree._Element) -> VerifiedSender:
        """Check signature, signed parts, certificate, OIN and timestamp, in that order.

        Raises:
            SignatureMissing: no Security header or no Signature in it.
            SignatureInvalid: a digest or the signature value does not match, or a required part is unsigned.
            CertificateUntrusted: the token is unreadable, expired or from an untrusted CA.
            UnknownOin: the certificate's OIN is not allowed on this link.
            TimestampExpired: the Timestamp has expired.
            TimestampInvalid: the Timestamp is missing, unreadable or in the future.
            WsSecurityFault: anything else wrong with the Security header.
        """
        if envelope.tag != _S + "Envelope":
            raise MalformedInput("verwacht een SOAP 1.1-envelop")
        header = envelope.find(_S + "Header")
        body = envelope.find(_S + "Body")
        if body is None:
            raise MalformedInput("de SOAP-envelop heeft geen Body")
        securities = header.findall(_WSSE + "Security") if header is not None else []
        if not securities:
            raise SignatureMissing("het bericht is niet ondertekend: geen wsse:Security-header")
        if len(securities) > 1:
            raise WsSecurityFault("meer dan één wsse:Security-header")
        security = securities[0]
        signatures = list(envelope.iter(_DS + "Signature"))
        if not signatures:
            raise SignatureMissing("het bericht is niet ondertekend: geen ds:Signature")
        if len(signatures) > 1 or signatures[0].getparent() is not security:
            raise WsSecurityFault("precies één ds:Signature, in de wsse:Security-header, is toegestaan")
        signature = signatures[0]
        ids = _id_map(envelope)

        signed_info = _one(signature, _DS + "SignedInfo")
        method = _one(signed_info, _DS + "CanonicalizationMethod")
        if method.get("Algorithm") != EXC_C14N:
            raise WsSecurityFault("alleen exclusieve C14N wordt aanvaard")
        si_prefixes = _prefix_list(method)
        if _one(signed_info, _DS + "SignatureMethod").get("Algorithm") != RSA_SHA256:
            raise WsSecurityFault("alleen RSA-SHA256 wordt aanvaard")
        signed_ids = self._check_references(signed_info, ids)

        certificate = self._token_certificate(signature, security, ids)
        value_text = _one(signature, _DS + "SignatureValue").text or ""
        try:
            value = base64.b64decode("".join(value_text.split()), validate=True)
        except ValueError as exc:
            raise SignatureInvalid("SignatureValue is geen base64") from exc
        public_key = certificate.public_key()
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise CertificateUntrusted("alleen RSA-certificaten worden aanvaard")
        try:
            public_key.verify(value, c14n(signed_info, si_prefixes), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature as exc:
            raise SignatureInvalid("de handtekening klopt niet bij het certificaat van de ondertekenaar") from exc

        timestamps = security.findall(_WSU + "Timestamp")
        if len(timestamps) != 1:
            raise TimestampInvalid("de wsse:Security-header heeft precies één wsu:Timestamp nodig")
        required = [body, timestamps[0]]
        if header is not None:
            required += _addressing_headers(header)
        for part in required:
            part_id = next((part.get(name) for name in _ID_ATTRIBUTES if part.get(name)), None)
            if part_id is None or part_id not in signed_ids or ids.get(part_id) is not part:
                raise SignatureInvalid(f"{etree.QName(part).localname} is niet ondertekend")

        now = self._clock()
        self._check_certificate(certificate, now)
        oin = certificate_oin(certificate)
        if oin not in self._allowed:
            raise UnknownOin(f"OIN {oin} is niet bekend voor deze koppeling")
        created, expires = self._check_timestamp(timestamps[0], now)
        return VerifiedSender(oin=oin, certificate=certificate, created=created, expires=expires)

    def _check_references(self, signed_info: etree._Element, ids: dict[str, etree._Element]) -> set[str]:
        references = signed_info.findall(_DS + "Reference")
        if not references:
            raise SignatureInvalid("de handtekening verwijst naar niets")
        signed: set[str] = set()
        for reference in references:
            uri = reference.get("URI") or ""
            target = ids.get(uri[1:]) if uri.startswith("#") else None
            if target is None:
                raise SignatureInvalid(f"de handtekening verwijst naar een onbekend deel {uri!r}")
            if uri[1:] in signed:
                raise SignatureInvalid(f"deel {uri!r} staat twee keer in de handtekening")
            transforms = reference.find(_DS + "Transforms")
            steps = transforms.findall(_DS + "Transform") if transforms is not None else []
            if len(steps) != 1 or steps[0].get("Algorithm") != EXC_C14N:
                raise WsSecurityFault("elke referentie heeft precies één transformatie: exclusieve C14N")
            if _one(reference, _DS + "DigestMethod").get("Algorithm") != SHA256:
                raise WsSecurityFault("alleen SHA-256 wordt aanvaard als digest")
            expected = "".join((_one(reference, _DS + "DigestValue").text or "").split())
            if not hmac.compare_digest(expected, _digest(target, _prefix_list(steps[0]))):
                raise SignatureInvalid(f"het ondertekende deel {uri!r} is gewijzigd (digest klopt niet)")
            signed.add(uri[1:])
        return signed

    def _token_certificate(
        self, signature: etree._Element, security: etree._Element, ids: dict[str, etree._Element]
    ) -> x509.Certificate:
        reference = signature.find(f"{_DS}KeyInfo/{_WSSE}SecurityTokenReference/{_WSSE}Reference")
        uri = reference.get("URI", "") if reference is not None else ""
        token = ids.get(uri[1:]) if uri.startswith("#") else None
        if token is None or token.tag != _WSSE + "BinarySecurityToken" or token.getparent() is not security:
            raise CertificateUntrusted("KeyInfo verwijst niet naar een BinarySecurityToken in de Security-header")
        if token.get("ValueType") != X509V3:
            raise CertificateUntrusted("het token is geen X.509v3-certificaat")
        try:
            return x509.load_der_x509_certificate(base64.b64decode("".join((token.text or "").split()), validate=True))
        except ValueError as exc:
            raise CertificateUntrusted("het certificaat in het token is onleesbaar") from exc

    def _check_certificate(self, certificate: x509.Certificate, now: datetime) -> None:
        try:
            usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
        except x509.ExtensionNotFound:
            usage = None
        if usage is not None and not usage.digital_signature:
            raise CertificateUntrusted("het certificaat van de ondertekenaar mag niet ondertekenen (KeyUsage)")
        if not certificate.not_valid_before_utc - self._skew <= now <= certificate.not_valid_after_utc + self._skew:
            raise CertificateUntrusted("het certificaat van de ondertekenaar is (nog) niet geldig")
        for anchor in self._anchors:
            try:
                certificate.verify_directly_issued_by(anchor)
            except (ValueError, TypeError, InvalidSignature):
                continue
            if anchor.not_valid_before_utc <= now <= anchor.not_valid_after_utc:
                return
        raise CertificateUntrusted("het certificaat van de ondertekenaar is niet uitgegeven door een vertrouwde CA")

    def _check_timestamp(self, timestamp: etree._Element, now: datetime) -> tuple[datetime, datetime]:
        try:
            created = parse_time(_one(timestamp, _WSU + "Created").text)
            expires = parse_time(_one(timestamp, _WSU + "Expires").text)
        except (ValueError, WsSecurityFault) as exc:
            raise TimestampInvalid("wsu:Timestamp heeft een leesbare Created en Expires nodig") from exc
        if expires <= now - self._skew:
            raise TimestampExpired(f"het bericht is verlopen (Expires {format_time(expires)})")
        if created > now + self._skew:
            raise TimestampInvalid(f"het bericht is gemaakt in de toekomst (Created {format_time(created)})")
        if expires - created > self._max_lifetime:
            raise TimestampInvalid("de geldigheid van de Timestamp is langer dan toegestaan")
        return created, expires


def _one(parent: etree._Element, tag: str) -> etree._Element:
    found = parent.findall(tag)
    if len(found) != 1:
        raise WsSecurityFault(f"{etree.QName(parent).localname} heeft precies één {etree.QName(tag).localname} nodig")
    return found[0]


def _prefix_list(element: etree._Element) -> list[str]:
    holder = element.find(f"{{{EXC_C14N}}}InclusiveNamespaces")
    return (holder.get("PrefixList") or "").split() if holder is not None else []


def _id_map(envelope: etree._Element) -> dict[str, etree._Element]:
    """Every Id in the document; a duplicate is refused (signature wrapping)."""
    ids: dict[str, etree._Element] = {}
    for element in envelope.iter():
        if not isinstance(element.tag, str):
            continue
        for name in _ID_ATTRIBUTES:
            value = element.get(name)
            if value is None:
                continue
            if value in ids:
                raise WsSecurityFault(f"Id {value!r} komt meer dan eens voor")
            ids[value] = element
    return ids
