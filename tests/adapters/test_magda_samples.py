"""Every shared MAGDA sample reply for our services is read into canonical data.

Each sample (the body element only) is wrapped in a SOAP 1.1 envelope and read
through the same path as a reply from the wire. The expectations are computed
from the sample itself with plain XPath, so a mapping that drops or invents
data fails here.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from adapters._magda import services
from adapters._magda.lookups import enrolment_result, has_enrolments, has_person, person_result
from adapters._magda.reply import Reply, assess, parse_envelope, registration_succeeded
from adapters._magda.services import SOAP_ENV
from adapters.rijksregister.mutaties import MutatieBatch, has_notifications, read_mutaties
from hub.errors import PartnerRejected, PartnerUnavailable
from hub.ports import LookupResult
from tests.adapters.conftest import MAGDA_CONTRACTS

SUBFOLDERS = ("GeefPersoon", "GeefHistoriekInschrijving", "GeefPersoonMutatiesNotificaties", "Repertorium")
SAMPLES = sorted(p for folder in SUBFOLDERS for p in (MAGDA_CONTRACTS / "responses" / folder).rglob("*.xml"))
NT2_NAMES = ("nederlands tweede taal", "nt2")
if not SAMPLES:  # an empty parameter set would be skipped silently: fail loudly instead
    raise RuntimeError(f"no MAGDA sample replies under {MAGDA_CONTRACTS} (set KNOOPPUNT_SHARED_DIR)")


def _id(path: Path) -> str:
    return str(path.relative_to(MAGDA_CONTRACTS / "responses"))


def _sample(path: Path) -> etree._Element:
    # The samples are trusted reference files; the code under test reads them with the hardened parser.
    return etree.parse(str(path)).getroot()


def _wire(path: Path) -> bytes:
    env = etree.Element("{%s}Envelope" % SOAP_ENV, nsmap={"soapenv": SOAP_ENV})
    etree.SubElement(env, "{%s}Body" % SOAP_ENV).append(_sample(path))
    return bytes(etree.tostring(env, xml_declaration=True, encoding="UTF-8"))


def _read(path: Path) -> Reply:
    root = _sample(path)
    service = services.BY_RESPONSE_TAG[root.tag]
    return parse_envelope(_wire(path), service, max_bytes=2 * 1024 * 1024)


def _interpret(path: Path) -> LookupResult | MutatieBatch | str:
    reply = _read(path)
    name = reply.service.name
    if name == "GeefPersoon":
        return person_result(reply, assess(reply, has_data=has_person(reply)).warnings, path.stem)
    if name == "GeefHistoriekInschrijving":
        warnings = assess(reply, has_data=has_enrolments(reply)).warnings
        return enrolment_result(reply, warnings, path.stem, date(2000, 1, 1), date(2025, 1, 1))
    if name == "GeefPersoonMutatiesNotificaties":
        return read_mutaties(reply, assess(reply, has_data=has_notifications(reply)).warnings)
    registration_succeeded(reply)
    return "geregistreerd"


def _texts(el: etree._Element, path: str) -> list[str]:
    return [" ".join((x.text or "").split()) for x in el.iterfind(path)]


def test_every_sample_folder_is_covered() -> None:
    """No sample folder is left out: every reply file under responses/ is parametrised."""
    assert sorted((MAGDA_CONTRACTS / "responses").rglob("*.xml")) == SAMPLES
    assert len(SAMPLES) >= 80
    assert {p.relative_to(MAGDA_CONTRACTS / "responses").parts[0] for p in SAMPLES} == set(SUBFOLDERS)


@pytest.mark.parametrize("path", SAMPLES, ids=_id)
def test_sample_reply_is_read(path: Path) -> None:
    root = _sample(path)
    repliek_fouten = root.xpath("Repliek/Uitzonderingen/Uitzondering[Type='FOUT']/Identificatie/text()")
    antwoord_codes = [
        c.strip() for c in root.xpath("Repliek/Antwoorden/Antwoord/Uitzonderingen/Uitzondering/Identificatie/text()")
    ]
    all_uitzonderingen = root.xpath("Repliek//Uitzondering")
    if "99996" in repliek_fouten:
        with pytest.raises(PartnerUnavailable, match="99996"):
            _interpret(path)
        return
    service = services.BY_RESPONSE_TAG[root.tag].name
    if service == "GeefPersoon":
        _check_person(path, root, _interpret(path), len(all_uitzonderingen))
    elif service == "GeefHistoriekInschrijving":
        _check_enrolments(root, _interpret(path), len(all_uitzonderingen))
    elif service == "GeefPersoonMutatiesNotificaties":
        if "30016" in antwoord_codes:
            batch = _interpret(path)
            assert isinstance(batch, MutatieBatch)
            assert batch.exhausted
            assert batch.mutaties == ()
            assert any(w.startswith("30016") for w in batch.warnings)
        else:
            assert antwoord_codes == ["30014"]
            with pytest.raises(PartnerRejected, match="30014"):
                _interpret(path)
    else:
        resultaat = root.xpath("string(Repliek/Antwoorden/Antwoord/Inhoud/Resultaat)").strip()
        if resultaat == "1":
            assert _interpret(path) == "geregistreerd"
        else:
            assert resultaat == "0"
            with pytest.raises(PartnerRejected, match="niet geslaagd"):
                _interpret(path)


def _check_person(path: Path, root: etree._Element, result: Any, n_uitzonderingen: int) -> None:
    assert isinstance(result, LookupResult)
    persoon = root.find("Repliek/Antwoorden/Antwoord/Inhoud/Persoon")
    assert persoon is not None
    data = result.data
    assert result.found
    assert data["insz"] == path.stem == persoon.findtext("INSZ")
    assert data["voornamen"] == _texts(persoon, "Naam/Voornamen/Voornaam")
    assert data["achternaam"] == " ".join(_texts(persoon, "Naam/Achternamen/Achternaam"))
    assert data["geboortedatum"] == persoon.findtext("Geboorte/Datum")
    assert data["geslacht"] == {"1": "M", "2": "V"}.get((persoon.findtext("Geslacht/Code") or "").strip())
    adres = data["adres"]
    assert isinstance(adres, dict)
    hoofd = persoon.find("Adressen/Hoofdverblijfplaats")
    if hoofd is not None:
        assert adres["type"] == "hoofdverblijfplaats"
        assert adres["postcode"] == (hoofd.findtext("Postcode") or "").strip()
        assert adres["huisnummer"] == (hoofd.findtext("Huisnummer") or "").strip()
        assert adres["straat"] in _texts(hoofd, "Straatnaam/String") + _texts(
            hoofd, "NietGestandaardiseerdeStraatnaam/String"
        )
    nationaliteit = persoon.find("Nationaliteiten/Nationaliteit")
    if nationaliteit is not None:
        assert data["nationaliteit"] == {
            "code": (nationaliteit.findtext("Code") or "").strip(),
            "omschrijving": (nationaliteit.findtext("Omschrijving") or "").strip(),
        }
    else:
        assert "nationaliteit" not in data
    if persoon.find("Overlijden") is not None:
        assert data["overlijdensdatum"] == persoon.findtext("Overlijden/Datum")
    assert "nieuwInsz" not in data
    assert len(result.warnings) == n_uitzonderingen


def _check_enrolments(root: etree._Element, result: Any, n_uitzonderingen: int) -> None:
    assert isinstance(result, LookupResult)
    elements = root.findall("Repliek/Antwoorden/Antwoord/Inhoud/Inschrijvingen/Inschrijving")
    lijst = result.data["inschrijvingen"]
    assert isinstance(lijst, list)
    assert len(lijst) == len(elements)
    assert result.found == bool(elements)
    assert len(result.warnings) == n_uitzonderingen
    for el, item in zip(elements, lijst, strict=True):
        assert isinstance(item, dict)
        assert item["bron"] == (el.findtext("Bron") or "").strip()
        assert item["referte"] == (el.findtext("Referte") or "").strip()
        instelling = item["instelling"]
        assert isinstance(instelling, dict)
        assert instelling["nummer"] == (el.findtext("Instelling/Instellingsnummer") or "").strip()
        vwo = el.find("Volwassenenonderwijs")
        names = [] if vwo is None else _texts(vwo, "Opleiding/Naam") + _texts(vwo, "Module/Naam")
        assert item["nt2"] == any(n in name.lower() for name in names for n in NT2_NAMES)
        if vwo is not None:
            assert item["soort"] == "volwassenenonderwijs"
            evaluatie = vwo.findtext("Resultaat/EvaluatieResultaat/Code")
            resultaat = item["resultaat"]
            assert (resultaat is None) == (evaluatie is None)
            if isinstance(resultaat, dict):
                assert resultaat["code"] == evaluatie


def test_samples_include_nt2_results() -> None:
    """NT2 courses with a result are in the samples, and they come out flagged with that result."""
    flagged = []
    for path in SAMPLES:
        if path.parent.name != "GeefHistoriekInschrijving" or "99996" in path.read_text():
            continue
        result = _interpret(path)
        assert isinstance(result, LookupResult)
        lijst = result.data["inschrijvingen"]
        assert isinstance(lijst, list)
        flagged += [i for i in lijst if isinstance(i, dict) and i["nt2"]]
    assert flagged
    assert all(i["soort"] == "volwassenenonderwijs" for i in flagged)


def test_partial_enrolment_answer_keeps_data_and_warns() -> None:
    """77660698640: VWO data, but DHO and Disci refused (20110) and HO did not answer (60006)."""
    path = MAGDA_CONTRACTS / "responses" / "GeefHistoriekInschrijving" / "77660698640.xml"
    result = _interpret(path)
    assert isinstance(result, LookupResult)
    assert result.found
    assert len(result.data["inschrijvingen"]) == 6  # type: ignore[arg-type]
    assert sorted(w.split(" ")[0] for w in result.warnings) == ["20110", "20110", "60006"]


def test_partial_person_answer_carries_the_informatie_notice() -> None:
    path = MAGDA_CONTRACTS / "responses" / "GeefPersoon" / "85650505496.xml"
    result = _interpret(path)
    assert isinstance(result, LookupResult)
    assert result.found
    assert result.data["voornamen"] == ["Carla", "Justine"]
    assert result.warnings == (
        "30042 (MAGDA, INFORMATIE): Meerdere voorkomens aanwezig bij de bron, "
        "slechts 1 voorkomen aanwezig in het Magda antwoord",
    )
