"""One-off author's aid: writes invalid examples, each derived from a valid one by one
stated change, with the error it must give in a sidecar ``.expect.yaml``.

Run once; the committed files are the source of truth afterwards and
tests/infomodel/test_examples.py checks each gives exactly its stated errors.
"""

from collections.abc import Callable
from pathlib import Path

import yaml
from lxml import etree

NS = "urn:knooppunt:inburgering:1"
ROOT = Path(__file__).resolve().parent.parent / "schemas" / "inburgering"
Change = Callable[[etree._Element], None]


def q(path: str) -> str:
    return "/".join(f"{{{NS}}}{s}" for s in path.split("/"))


def set_text(path: str, value: str) -> Change:
    def change(root: etree._Element) -> None:
        root.find(q(path)).text = value

    return change


def remove(path: str) -> Change:
    def change(root: etree._Element) -> None:
        node = root.find(q(path))
        node.getparent().remove(node)

    return change


def add_after(path: str, name: str, value: str) -> Change:
    def change(root: etree._Element) -> None:
        node = root.find(q(path))
        new = etree.Element(f"{{{NS}}}{name}")
        new.text = value
        node.addnext(new)

    return change


def repeat(path: str, times: int) -> Change:
    def change(root: etree._Element) -> None:
        node = root.find(q(path))
        for _ in range(times):
            node.addnext(etree.fromstring(etree.tostring(node)))

    return change


def both(*changes: Change) -> Change:
    def change(root: etree._Element) -> None:
        for c in changes:
            c(root)

    return change


def bad_check_digit(path: str) -> Change:
    def change(root: etree._Element) -> None:
        node = root.find(q(path))
        text = node.text or ""
        node.text = text[:-1] + str((int(text[-1]) + 1) % 10)

    return change


E = dict[str, str]


def err(path: str, rule: str) -> E:
    return {"path": path, "rule": rule}


# (version, type, source example, name, description, change, errors, json errors or "same" or None)
CASES: list[tuple[str, str, str, str, str, Change, list[E], object]] = []


def case(
    version: str,
    mtype: str,
    source: str,
    name: str,
    description: str,
    change: Change,
    errors: list[E],
    json: object = "same",
) -> None:
    CASES.append((version, mtype, source, name, description, change, errors, json))


def person_cases(version: str, mtype: str, source: str, root: str, id_kind: str) -> None:
    ident = f"persoon/identificatie/{id_kind}"
    case(
        version,
        mtype,
        source,
        "invalid-controlegetal",
        f"{id_kind} met een fout controlegetal",
        bad_check_digit(ident),
        [err(f"/{root}/{ident}", "identifier")],
    )
    case(
        version,
        mtype,
        source,
        "invalid-geen-achternaam",
        "verplichte achternaam ontbreekt",
        remove("persoon/achternaam"),
        [err(f"/{root}/persoon/achternaam", "required")],
    )


NL = [
    ("klantprofiel", "valid-statushouder", "Klantprofiel"),
    ("inburgeringsplicht", "valid-plichtig", "Inburgeringsplicht"),
    ("correctiesignaal", "valid-vervanging", "Correctiesignaal"),
    ("leerbaarheidstoets", "valid-haalbaar", "Leerbaarheidstoets"),
    ("brede-intake", "valid-volledig", "BredeIntake"),
    ("pip", "valid-b1-route", "Pip"),
    ("maatschappelijke-begeleiding", "valid-opdracht", "MaatschappelijkeBegeleiding"),
    ("voortgang", "valid-b1-route", "Voortgang"),
    ("map-resultaat", "valid-behaald", "MapResultaat"),
    ("handhaving", "valid-boete", "Handhaving"),
    ("verhuizing", "valid-warme-overdracht", "Verhuizing"),
]
BE = [
    ("aanmelding", "valid-verplicht", "Aanmelding"),
    ("inburgeringscontract", "valid-contract", "Inburgeringscontract"),
    ("trajectgebeurtenis", "valid-mo-geslaagd", "Trajectgebeurtenis"),
    ("inburgeringsattest", "valid-attest", "Inburgeringsattest"),
    ("vrijstelling-opschorting", "valid-opschorting", "VrijstellingOpschorting"),
    ("nt2-inschrijving", "valid-cvo", "Nt2Inschrijving"),
    ("nt2-resultaat", "valid-geslaagd", "Nt2Resultaat"),
]
for mtype, source, root in NL:
    person_cases("1.0", mtype, source, root, "bsn")
for mtype, source, root in BE:
    person_cases("1.0", mtype, source, root, "insz")

# type-specific rules
case(
    "1.0",
    "klantprofiel",
    "valid-statushouder",
    "invalid-taalniveau",
    "taalniveau buiten de ERK-codelijst",
    set_text("taalniveau", "A3"),
    [err("/Klantprofiel/taalniveau", "enumeration")],
)
case(
    "1.0",
    "klantprofiel",
    "valid-statushouder",
    "invalid-geboortedag-zonder-maand",
    "dag bekend maar maand 00",
    set_text("persoon/geboortedatum", "1991-00-14"),
    [err("/Klantprofiel/persoon/geboortedatum", "pattern")],
)
case(
    "1.0",
    "klantprofiel",
    "valid-statushouder",
    "invalid-zes-nationaliteiten",
    "meer dan vijf nationaliteiten",
    repeat("persoon/nationaliteit", 5),
    [err("/Klantprofiel/persoon/nationaliteit", "maxOccurs")],
)
case(
    "1.0",
    "inburgeringsplicht",
    "valid-plichtig",
    "invalid-datum",
    "30 februari bestaat niet",
    set_text("vastgesteldOp", "2024-02-30"),
    [err("/Inburgeringsplicht/vastgesteldOp", "datatype")],
)
case(
    "1.0",
    "inburgeringsplicht",
    "valid-plichtig",
    "invalid-gemeentecode",
    "gemeentecode met 3 cijfers",
    set_text("gemeentecode", "363"),
    [err("/Inburgeringsplicht/gemeentecode", "pattern")],
)
case(
    "1.0",
    "inburgeringsplicht",
    "valid-plichtig",
    "invalid-boolean",
    "plichtig is geen boolean",
    set_text("plichtig", "ja"),
    [err("/Inburgeringsplicht/plichtig", "datatype")],
    json=None,
)
case(
    "1.0",
    "inburgeringsplicht",
    "valid-plichtig",
    "invalid-1-1-veld-in-1-0",
    "ontheffing bestaat pas in 1.1",
    add_after("reden" if False else "termijnEinde", "ontheffing", "MEDISCH"),
    [err("/Inburgeringsplicht/ontheffing", "unexpected")],
)
case(
    "1.0",
    "correctiesignaal",
    "valid-vervanging",
    "invalid-berichtkenmerk",
    "vervangtBericht is geen UUID",
    set_text("vervangtBericht", "bericht-42"),
    [err("/Correctiesignaal/vervangtBericht", "pattern")],
)
case(
    "1.0",
    "correctiesignaal",
    "valid-vervanging",
    "invalid-soort",
    "onbekende soort correctie",
    set_text("soort", "WIJZIGING"),
    [err("/Correctiesignaal/soort", "enumeration")],
)
case(
    "1.0",
    "leerbaarheidstoets",
    "valid-haalbaar",
    "invalid-score",
    "score boven 100",
    set_text("resultaat/score", "140"),
    [err("/Leerbaarheidstoets/resultaat/score", "maxInclusive")],
)
case(
    "1.0",
    "leerbaarheidstoets",
    "valid-haalbaar",
    "invalid-oin",
    "OIN van 19 cijfers",
    set_text("resultaat/toetsinstituut/oin", "0000000987654321000"),
    [
        err("/Leerbaarheidstoets/resultaat/toetsinstituut/oin", "pattern"),
        err("/Leerbaarheidstoets/resultaat/toetsinstituut/oin", "identifier"),
    ],
)
case(
    "1.0",
    "brede-intake",
    "valid-volledig",
    "invalid-levensgebied",
    "levensgebied buiten de codelijst",
    set_text("omstandigheid/levensgebied", "HOBBY"),
    [err("/BredeIntake/omstandigheid[1]/levensgebied", "enumeration")],
    json=[err("/payload/omstandigheid/0/levensgebied", "enumeration")],
)
case(
    "1.0",
    "brede-intake",
    "valid-volledig",
    "invalid-geen-eerste-gesprek",
    "datum eerste gesprek ontbreekt",
    remove("datumEersteGesprek"),
    [err("/BredeIntake/datumEersteGesprek", "required")],
)
case(
    "1.0",
    "pip",
    "valid-b1-route",
    "invalid-leerroute",
    "leerroute A2 bestaat niet",
    set_text("leerroute", "A2"),
    [err("/Pip/leerroute", "enumeration")],
)
case(
    "1.0",
    "pip",
    "valid-b1-route",
    "invalid-module",
    "afspraak met onbekende module",
    set_text("afspraak/module", "WERK"),
    [err("/Pip/afspraak[1]/module", "enumeration")],
    json=[err("/payload/afspraak/0/module", "enumeration")],
)
case(
    "1.0",
    "pip",
    "valid-b1-route",
    "invalid-aanbieder-twee-ids",
    "aanbieder met OIN en KBO tegelijk",
    add_after("afspraak/aanbieder/oin", "kbo", "0412345614"),
    [err("/Pip/afspraak[1]/aanbieder", "choice")],
    json=[err("/payload/afspraak/0/aanbieder", "choice")],
)
case(
    "1.0",
    "maatschappelijke-begeleiding",
    "valid-opdracht",
    "invalid-status",
    "onbekende status",
    set_text("status", "BEZIG"),
    [err("/MaatschappelijkeBegeleiding/status", "enumeration")],
)
case(
    "1.0",
    "maatschappelijke-begeleiding",
    "valid-opdracht",
    "invalid-onbekend-veld",
    "veld dat het model niet kent",
    add_after("doel", "budget", "1500"),
    [err("/MaatschappelijkeBegeleiding/budget", "unexpected")],
)
case(
    "1.0",
    "voortgang",
    "valid-b1-route",
    "invalid-negatieve-uren",
    "negatief aantal uren",
    set_text("urenGerealiseerd", "-4"),
    [err("/Voortgang/urenGerealiseerd", "datatype")],
)
case(
    "1.0",
    "voortgang",
    "valid-b1-route",
    "invalid-vaardigheid",
    "vaardigheid buiten de codelijst",
    set_text("resultaat/vaardigheid", "REKENEN"),
    [err("/Voortgang/resultaat[1]/vaardigheid", "enumeration")],
    json=[err("/payload/resultaat/0/vaardigheid", "enumeration")],
)
case(
    "1.0",
    "map-resultaat",
    "valid-behaald",
    "invalid-reden",
    "reden niet behaald buiten de codelijst",
    add_after("behaald", "redenNietBehaald", "GEEN_ZIN"),
    [err("/MapResultaat/redenNietBehaald", "enumeration")],
    json=[err("/payload/redenNietBehaald/0", "enumeration")],
)
case(
    "1.0",
    "map-resultaat",
    "valid-behaald",
    "invalid-geen-behaald",
    "behaald ontbreekt",
    remove("behaald"),
    [err("/MapResultaat/behaald", "required")],
)
case(
    "1.0",
    "handhaving",
    "valid-boete",
    "invalid-boete-te-hoog",
    "boete boven het wettelijke maximum",
    set_text("boetebedrag", "5000"),
    [err("/Handhaving/boetebedrag", "maxInclusive")],
)
case(
    "1.0",
    "handhaving",
    "valid-boete",
    "invalid-maatregel",
    "onbekende maatregel",
    set_text("maatregel", "GEVANGENIS"),
    [err("/Handhaving/maatregel", "enumeration")],
)
case(
    "1.0",
    "verhuizing",
    "valid-warme-overdracht",
    "invalid-postcode",
    "Nederlandse postcode zonder letters",
    set_text("nieuwAdres/nederlandsAdres/postcode", "3011"),
    [err("/Verhuizing/nieuwAdres/nederlandsAdres/postcode", "pattern")],
)
case(
    "1.0",
    "verhuizing",
    "valid-warme-overdracht",
    "invalid-email",
    "e-mailadres zonder @",
    set_text("contactpersoon/email", "inburgering.gemeente.nl"),
    [err("/Verhuizing/contactpersoon/email", "pattern")],
)
case(
    "1.0",
    "monitoring",
    "valid-kwartaal",
    "invalid-kleine-cel",
    "een cel van 3 personen is herleidbaar",
    set_text("indicator/cel/aantal", "3"),
    [err("/Monitoring/indicator[1]/cel[1]/aantal", "minInclusive")],
    json=[err("/payload/indicator/0/cel/0/aantal", "minInclusive")],
)
case(
    "1.0",
    "monitoring",
    "valid-kwartaal",
    "invalid-persoon",
    "een individu hoort niet in monitoring",
    add_after("periode", "bsn", "908301662"),
    [err("/Monitoring/bsn", "unexpected")],
)
case(
    "1.0",
    "monitoring",
    "valid-kwartaal",
    "invalid-indicator",
    "indicator buiten de codelijst",
    set_text("indicator/code", "WELZIJN"),
    [err("/Monitoring/indicator[1]/code", "enumeration")],
    json=[err("/payload/indicator/0/code", "enumeration")],
)
case(
    "1.0",
    "aanmelding",
    "valid-verplicht",
    "invalid-niscode",
    "NIS-code van 4 cijfers",
    set_text("nisCode", "4402"),
    [err("/Aanmelding/nisCode", "pattern")],
)
case(
    "1.0",
    "aanmelding",
    "valid-verplicht",
    "invalid-doelgroep",
    "onbekende doelgroep",
    set_text("doelgroep", "VRIJWILLIG"),
    [err("/Aanmelding/doelgroep", "enumeration")],
)
case(
    "1.0",
    "aanmelding",
    "valid-verplicht",
    "invalid-testpersoon",
    "MAGDA-testpersoon (maand 61) buiten testmodus",
    set_text("persoon/identificatie/insz", "80611500305"),
    [err("/Aanmelding/persoon/identificatie/insz", "identifier")],
)
case(
    "1.0",
    "aanmelding",
    "valid-verplicht",
    "invalid-geen-identificatie",
    "identificatie zonder INSZ of BSN",
    remove("persoon/identificatie/insz"),
    [err("/Aanmelding/persoon/identificatie", "choice")],
    json=[err("/payload/persoon/identificatie", "datatype"), err("/payload/persoon/identificatie", "choice")],
)
case(
    "1.0",
    "inburgeringscontract",
    "valid-contract",
    "invalid-kbo",
    "KBO-nummer met fout controlegetal",
    bad_check_digit("agentschap/kbo"),
    [err("/Inburgeringscontract/agentschap/kbo", "identifier")],
)
case(
    "1.0",
    "inburgeringscontract",
    "valid-contract",
    "invalid-onderdeel",
    "onbekend trajectonderdeel",
    set_text("trajectonderdeel", "SPORT"),
    [err("/Inburgeringscontract/trajectonderdeel[1]", "enumeration")],
    json=[err("/payload/trajectonderdeel/0", "enumeration")],
)
case(
    "1.0",
    "trajectgebeurtenis",
    "valid-mo-geslaagd",
    "invalid-gebeurtenis",
    "onbekende gebeurtenis",
    set_text("gebeurtenis", "GEPASSEERD"),
    [err("/Trajectgebeurtenis/gebeurtenis", "enumeration")],
)
case(
    "1.0",
    "inburgeringsattest",
    "valid-attest",
    "invalid-attestnummer",
    "attestnummer met spaties",
    set_text("attestnummer", "IA 2025"),
    [err("/Inburgeringsattest/attestnummer", "pattern")],
)
case(
    "1.0",
    "vrijstelling-opschorting",
    "valid-opschorting",
    "invalid-soort",
    "soort buiten de codelijst",
    set_text("soort", "UITSTEL"),
    [err("/VrijstellingOpschorting/soort", "enumeration")],
)
case(
    "1.0",
    "vrijstelling-opschorting",
    "valid-opschorting",
    "invalid-geen-periode",
    "periode ontbreekt",
    remove("periode"),
    [err("/VrijstellingOpschorting/periode", "required")],
)
case(
    "1.0",
    "nt2-inschrijving",
    "valid-cvo",
    "invalid-aanbod",
    "aanbod buiten de codelijst",
    set_text("aanbod", "AVONDSCHOOL"),
    [err("/Nt2Inschrijving/aanbod", "enumeration")],
)
case(
    "1.0",
    "nt2-resultaat",
    "valid-geslaagd",
    "invalid-uitslag",
    "uitslag buiten de codelijst",
    set_text("uitslag", "GOED"),
    [err("/Nt2Resultaat/uitslag", "enumeration")],
)
case(
    "1.0",
    "ontheemde-registratie",
    "valid-registratie",
    "invalid-controlegetal",
    "rijksregisternummer met fout controlegetal",
    bad_check_digit("ontheemde/insz"),
    [err("/OntheemdeRegistratie/ontheemde/insz", "identifier")],
)
case(
    "1.0",
    "ontheemde-registratie",
    "valid-registratie",
    "invalid-extra-veld",
    "nationaliteit valt buiten het WVG-mandaat",
    add_after("ontheemde/voornaam", "nationaliteit", "UA"),
    [err("/OntheemdeRegistratie/ontheemde/nationaliteit", "unexpected")],
)
case(
    "1.0",
    "ontheemde-registratie",
    "valid-registratie",
    "invalid-geen-opvangadres",
    "opvangadres ontbreekt",
    remove("ontheemde/opvangadres"),
    [err("/OntheemdeRegistratie/ontheemde/opvangadres", "required")],
)
case(
    "1.0",
    "ontheemde-registratie",
    "valid-registratie",
    "invalid-telefoon",
    "telefoonnummer met letters",
    set_text("ontheemde/telefoon", "bel me"),
    [err("/OntheemdeRegistratie/ontheemde/telefoon", "pattern")],
    json=[err("/payload/ontheemde/telefoon/0", "pattern")],
)
case(
    "1.0",
    "rapportage",
    "valid-toeleidingsvragen",
    "invalid-onderdrukt-false",
    "onderdrukt moet true zijn",
    set_text("cel[2]/onderdrukt", "false"),
    [err("/Rapportage/cel[2]/onderdrukt", "fixed")],
    json=[err("/payload/cel/1/onderdrukt", "fixed")],
)
case(
    "1.0",
    "rapportage",
    "valid-toeleidingsvragen",
    "invalid-leeftijdsklasse",
    "leeftijdsklasse zonder bovengrens of +",
    set_text("cel/leeftijdsklasse", "jong"),
    [err("/Rapportage/cel[1]/leeftijdsklasse", "pattern")],
    json=[err("/payload/cel/0/leeftijdsklasse", "pattern")],
)
case(
    "1.0",
    "rapportage",
    "valid-toeleidingsvragen",
    "invalid-aantal-en-onderdrukt",
    "aantal en onderdrukt tegelijk",
    add_after("cel/aantal", "onderdrukt", "true"),
    [err("/Rapportage/cel[1]", "choice")],
    json=[err("/payload/cel/0", "choice")],
)
case(
    "1.1",
    "pip",
    "valid-met-ontzorging",
    "invalid-vaste-last",
    "vaste last buiten de codelijst",
    set_text("ontzorging/vasteLast", "VAKANTIE"),
    [err("/Pip/ontzorging/vasteLast[1]", "enumeration")],
    json=[err("/payload/ontzorging/vasteLast/0", "enumeration")],
)
case(
    "1.1",
    "pip",
    "valid-met-ontzorging",
    "invalid-ontzorging-zonder-periode",
    "ontzorging zonder periode",
    remove("ontzorging/periode"),
    [err("/Pip/ontzorging/periode", "required")],
)
case(
    "1.1",
    "inburgeringsplicht",
    "valid-ontheffing",
    "invalid-grond-ontheffing",
    "grond van ontheffing buiten de codelijst",
    set_text("ontheffing/grond", "LEEFTIJD"),
    [err("/Inburgeringsplicht/ontheffing/grond", "enumeration")],
)
case(
    "1.1",
    "inburgeringsplicht",
    "valid-ontheffing",
    "invalid-controlegetal",
    "BSN faalt de 11-proef",
    bad_check_digit("persoon/identificatie/bsn"),
    [err("/Inburgeringsplicht/persoon/identificatie/bsn", "identifier")],
)


# business rules (catalog.yaml `rules`): the XSD passes, the rule does not
case(
    "1.0",
    "handhaving",
    "valid-boete",
    "invalid-boete-zonder-bedrag",
    "bestuurlijke boete zonder bedrag",
    remove("boetebedrag"),
    [err("/Handhaving/boetebedrag", "boete-heeft-bedrag")],
)
case(
    "1.0",
    "handhaving",
    "valid-verlenging",
    "invalid-verlenging-zonder-termijn",
    "verlenging zonder nieuwe einddatum",
    remove("nieuweTermijnEinde"),
    [err("/Handhaving/nieuweTermijnEinde", "verlenging-heeft-termijn")],
)
case(
    "1.0",
    "map-resultaat",
    "valid-pvt-niet-behaald",
    "invalid-niet-behaald-zonder-reden",
    "niet behaald zonder reden",
    remove("redenNietBehaald"),
    [err("/MapResultaat/redenNietBehaald", "reden-bij-niet-behaald")],
)
case(
    "1.0",
    "correctiesignaal",
    "valid-intrekking",
    "invalid-intrekking-met-gegevens",
    "intrekking met nieuwe gegevens",
    add_after("reden", "plichtig", "true"),
    [err("/Correctiesignaal/soort", "intrekking-zonder-gegevens")],
)
case(
    "1.0",
    "correctiesignaal",
    "valid-vervanging",
    "invalid-vervanging-zonder-gegevens",
    "vervanging zonder gegevens",
    both(remove("plichtig"), remove("vastgesteldOp"), remove("termijnEinde")),
    [err("/Correctiesignaal/plichtig", "vervanging-heeft-gegevens")],
)
case(
    "1.0",
    "verhuizing",
    "valid-warme-overdracht",
    "invalid-zelfde-gemeente",
    "verhuizing binnen dezelfde gemeente",
    set_text("vestigingsgemeente", "0363"),
    [err("/Verhuizing/vestigingsgemeente", "andere-gemeente")],
)
case(
    "1.0",
    "vrijstelling-opschorting",
    "valid-opschorting",
    "invalid-opschorting-zonder-einde",
    "opschorting zonder einddatum",
    remove("periode/einde"),
    [err("/VrijstellingOpschorting/periode/einde", "opschorting-heeft-einde")],
)
case(
    "1.0",
    "inburgeringscontract",
    "valid-contract",
    "invalid-looptijd-omgekeerd",
    "looptijd eindigt voor ze begint",
    set_text("looptijd/einde", "2023-01-01"),
    [err("/Inburgeringscontract/looptijd/einde", "periode-einde-na-begin")],
)
case(
    "1.0",
    "brede-intake",
    "valid-volledig",
    "invalid-levensgebied-dubbel",
    "hetzelfde levensgebied twee keer",
    set_text("omstandigheid[2]/levensgebied", "GEZIN"),
    [err("/BredeIntake/omstandigheid[2]/levensgebied", "levensgebied-eenmaal")],
    json=[err("/payload/omstandigheid/1/levensgebied", "levensgebied-eenmaal")],
)
case(
    "1.0",
    "pip",
    "valid-b1-route",
    "invalid-taalschakeltraject-b1",
    "taalschakeltraject in de B1-route",
    add_after("leerroute", "taalschakeltraject", "true"),
    [err("/Pip/taalschakeltraject", "taalschakeltraject-alleen-onderwijsroute")],
)
case(
    "1.0",
    "inburgeringsplicht",
    "valid-plichtig",
    "invalid-termijn-voor-vaststelling",
    "termijn eindigt voor de vaststelling",
    set_text("termijnEinde", "2024-01-01"),
    [err("/Inburgeringsplicht/termijnEinde", "termijn-na-vaststelling")],
)
case(
    "1.0",
    "inburgeringsplicht",
    "valid-niet-plichtig",
    "invalid-termijn-zonder-plicht",
    "termijn zonder plicht, en een fout BSN",
    both(add_after("vastgesteldOp", "termijnEinde", "2027-06-01"), bad_check_digit("persoon/identificatie/bsn")),
    [
        err("/Inburgeringsplicht/termijnEinde", "termijn-alleen-bij-plicht"),
        err("/Inburgeringsplicht/persoon/identificatie/bsn", "identifier"),
    ],
)
case(
    "1.0",
    "monitoring",
    "valid-kwartaal",
    "invalid-indicator-dubbel",
    "dezelfde indicator twee keer",
    set_text("indicator[2]/code", "PIPS_PER_LEERROUTE"),
    [err("/Monitoring/indicator[2]/code", "indicator-eenmaal")],
    json=[err("/payload/indicator/1/code", "indicator-eenmaal")],
)
case(
    "1.1",
    "pip",
    "valid-met-ontzorging",
    "invalid-ontzorging-zonder-financieel",
    "vaste lasten zonder financiële ontzorging",
    set_text("financieleOntzorging", "false"),
    [err("/Pip/ontzorging", "ontzorging-alleen-als-financieel-ontzorgd")],
)
case(
    "1.1",
    "inburgeringsplicht",
    "valid-ontheffing",
    "invalid-ontheffing-voor-vaststelling",
    "ontheffing voor de vaststelling",
    set_text("ontheffing/verleendOp", "2023-12-31"),
    [err("/Inburgeringsplicht/ontheffing/verleendOp", "ontheffing-na-vaststelling")],
)


def main() -> None:
    for version, mtype, source, name, description, change, errors, json in CASES:
        folder = ROOT / version / "examples" / mtype
        root = etree.parse(str(folder / f"{source}.xml")).getroot()
        change(root)
        etree.indent(root, space="  ")
        (folder / f"{name}.xml").write_bytes(
            etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
        )
        expect: dict[str, object] = {"description": description, "derivedFrom": f"{source}.xml", "errors": errors}
        if json != "same":
            expect["json"] = json
        (folder / f"{name}.expect.yaml").write_text(
            yaml.safe_dump(expect, allow_unicode=True, sort_keys=False), encoding="utf-8"
        )


if __name__ == "__main__":
    main()
