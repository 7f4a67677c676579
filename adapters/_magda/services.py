"""The MAGDA services we speak: name, version, request namespace, element names.

Every request element lives in its service's namespace; its children are
unqualified (``elementFormDefault="unqualified"`` in every service XSD).
"""

from __future__ import annotations

from dataclasses import dataclass

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"


@dataclass(frozen=True, slots=True)
class Service:
    """One MAGDA service version: ``<name>`` in ``namespace`` answered by ``<name>Response``."""

    name: str
    version: str
    namespace: str

    @property
    def request_tag(self) -> str:
        return "{%s}%s" % (self.namespace, self.name)

    @property
    def response_tag(self) -> str:
        return "{%s}%sResponse" % (self.namespace, self.name)


GEEF_PERSOON = Service("GeefPersoon", "02.02.0000", "http://magda.vlaanderen.be/persoon/soap/geefpersoon/v02_02")
REGISTREER_INSCHRIJVING = Service(
    "RegistreerInschrijving",
    "02.01.0000",
    "http://webservice.registreerinschrijvingdienst-02_01.repertorium-02_01.vip.vlaanderen.be",
)
REGISTREER_UITSCHRIJVING = Service(
    "RegistreerUitschrijving",
    "02.00.0000",
    "http://webservice.registreeruitschrijvingdienst-02_00.repertorium-02_00.vip.vlaanderen.be",
)
GEEF_HISTORIEK_INSCHRIJVING = Service(
    "GeefHistoriekInschrijving",
    "02.01.0000",
    "http://webservice.geefhistoriekinschrijvingdienst-02_01.onderwijs.vlaanderen.be",
)
# No XSD for this one in the shared contracts: the reply shape follows the samples
# (responses/GeefPersoonMutatiesNotificaties); the request and the Notificaties content
# follow the generic envelope and GeefPersoon's Persoon (see adapters.rijksregister).
GEEF_PERSOON_MUTATIES_NOTIFICATIES = Service(
    "GeefPersoonMutatiesNotificaties",
    "02.00.0000",
    "http://magda.vlaanderen.be/persoon/soap/GeefPersoonMutatiesNotificaties/v02_00",
)

# Older version, read only (its replies appear in the MAGDA samples; we build 02.01).
REGISTREER_INSCHRIJVING_V0200 = Service(
    "RegistreerInschrijving",
    "02.00.0000",
    "http://webservice.registreerinschrijvingdienst-02_00.repertorium-02_00.vip.vlaanderen.be",
)

ALL: tuple[Service, ...] = (
    GEEF_PERSOON,
    REGISTREER_INSCHRIJVING,
    REGISTREER_UITSCHRIJVING,
    GEEF_HISTORIEK_INSCHRIJVING,
    GEEF_PERSOON_MUTATIES_NOTIFICATIES,
)
BY_NAME: dict[str, Service] = {s.name: s for s in ALL}
BY_RESPONSE_TAG: dict[str, Service] = {s.response_tag: s for s in (*ALL, REGISTREER_INSCHRIJVING_V0200)}

# Uitzondering codes the hub acts on.
NO_DATA = frozenset({"30001", "30101"})
INSZ_CANCELLED = "30002"
INSZ_REPLACED = "30004"
NOT_REGISTERED = "40003"
SOURCE_UNAVAILABLE = "99996"
NO_MORE_NOTIFICATIONS = "30016"
