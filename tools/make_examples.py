"""One-off author's aid: writes the valid examples of inburgering 1.0/1.1.

Example persons are generated here with valid check digits (not real people).
Run once; the committed files are the source of truth afterwards.
"""

from pathlib import Path

NS = "urn:knooppunt:inburgering:1"
ROOT = Path(__file__).resolve().parent.parent / "schemas" / "inburgering"

P_BSN = """<persoon><identificatie><bsn>908301662</bsn></identificatie><voornamen>Amal</voornamen><achternaam>Haddad</achternaam><geboortedatum>1991-00-00</geboortedatum><geslacht>V</geslacht><nationaliteit>SY</nationaliteit></persoon>"""
P_BSN2 = """<persoon><identificatie><bsn>131860914</bsn></identificatie><voornamen>Yonas</voornamen><achternaam>Tesfay</achternaam><geboortedatum>1998-04-00</geboortedatum><geslacht>M</geslacht><nationaliteit>ER</nationaliteit></persoon>"""
P_BSN3 = """<persoon><identificatie><bsn>390996038</bsn></identificatie><voornamen>Olena</voornamen><voorvoegsel>van</voorvoegsel><achternaam>Dijk</achternaam><geboortedatum>1987-11-23</geboortedatum><geslacht>V</geslacht><nationaliteit>UA</nationaliteit><nationaliteit>NL</nationaliteit></persoon>"""
P_INSZ = """<persoon><identificatie><insz>85031412302</insz></identificatie><voornamen>Samir</voornamen><achternaam>Benali</achternaam><geboortedatum>1985-03-14</geboortedatum><geslacht>M</geslacht><nationaliteit>MA</nationaliteit></persoon>"""
P_BIS = """<persoon><identificatie><insz>78252208796</insz></identificatie><voornamen>Mariam</voornamen><achternaam>Karimi</achternaam><geboortedatum>1978-05-22</geboortedatum><geslacht>O</geslacht><nationaliteit>AF</nationaliteit></persoon>"""
P_2000 = """<persoon><identificatie><insz>03070245613</insz></identificatie><voornamen>Daria</voornamen><achternaam>Kovalenko</achternaam><geboortedatum>2003-07-02</geboortedatum><geslacht>V</geslacht><nationaliteit>UA</nationaliteit></persoon>"""
P_UNKNOWN = """<persoon><identificatie><insz>90000023110</insz></identificatie><achternaam>Abdi</achternaam><geboortedatum>1990-00-00</geboortedatum><nationaliteit>SO</nationaliteit></persoon>"""
ORG_OIN = "<oin>00000001234567890000</oin><naam>Taalschool De Brug</naam>"
ORG_KBO = "<kbo>0412345614</kbo><naam>Agentschap Integratie en Inburgering</naam>"
ORG_KBO2 = "<kbo>0876543270</kbo><naam>CVO Kisp</naam>"

EXAMPLES: dict[tuple[str, str, str], str] = {
    (
        "1.0",
        "klantprofiel",
        "valid-statushouder",
    ): f"""<Klantprofiel>{P_BSN}<gemeentecode>0363</gemeentecode><koppeldatum>2024-03-04</koppeldatum><ambitie>Verpleegkundige worden</ambitie><taalniveau>A1</taalniveau><voorinburgering><periode><begin>2023-10-01</begin><einde>2024-03-01</einde></periode><urenTaalles>120</urenTaalles><knmGevolgd>true</knmGevolgd></voorinburgering><opleiding><omschrijving>Middelbare school</omschrijving><land>SY</land><jaren>12</jaren><diplomaBehaald>true</diplomaBehaald></opleiding><werkervaring>Apothekersassistente, 3 jaar</werkervaring></Klantprofiel>""",
    (
        "1.0",
        "klantprofiel",
        "valid-minimaal",
    ): f"""<Klantprofiel>{P_BSN2}<gemeentecode>0014</gemeentecode><koppeldatum>2024-05-10</koppeldatum></Klantprofiel>""",
    (
        "1.0",
        "inburgeringsplicht",
        "valid-plichtig",
    ): f"""<Inburgeringsplicht>{P_BSN}<gemeentecode>0363</gemeentecode><plichtig>true</plichtig><grond>ASIELMIGRANT</grond><vastgesteldOp>2024-03-20</vastgesteldOp><termijnEinde>2027-03-20</termijnEinde></Inburgeringsplicht>""",
    (
        "1.0",
        "inburgeringsplicht",
        "valid-niet-plichtig",
    ): f"""<Inburgeringsplicht>{P_BSN3}<gemeentecode>0599</gemeentecode><plichtig>false</plichtig><vastgesteldOp>2024-06-01</vastgesteldOp><reden>Nederlandse nationaliteit</reden></Inburgeringsplicht>""",
    (
        "1.0",
        "correctiesignaal",
        "valid-vervanging",
    ): f"""<Correctiesignaal>{P_BSN}<gemeentecode>0363</gemeentecode><vervangtBericht>5b1f0c2e-8a4d-4c3e-9f6a-2d7e1b9c0a11</vervangtBericht><vervangtBerichttype>inburgeringsplicht</vervangtBerichttype><soort>VERVANGING</soort><gecorrigeerdOp>2024-04-02</gecorrigeerdOp><reden>Termijn verkeerd berekend</reden><plichtig>true</plichtig><vastgesteldOp>2024-03-20</vastgesteldOp><termijnEinde>2027-06-20</termijnEinde></Correctiesignaal>""",
    (
        "1.0",
        "correctiesignaal",
        "valid-intrekking",
    ): f"""<Correctiesignaal>{P_BSN2}<gemeentecode>0014</gemeentecode><vervangtBericht>0e8d3f6a-1c2b-4d5e-8f90-a1b2c3d4e5f6</vervangtBericht><vervangtBerichttype>inburgeringsplicht</vervangtBerichttype><soort>INTREKKING</soort><gecorrigeerdOp>2024-06-11</gecorrigeerdOp><reden>Persoon bleek EU-burger</reden></Correctiesignaal>""",
    (
        "1.0",
        "leerbaarheidstoets",
        "valid-haalbaar",
    ): f"""<Leerbaarheidstoets>{P_BSN}<gemeentecode>0363</gemeentecode><resultaat><afnamedatum>2024-04-15</afnamedatum><uitkomst>B1_HAALBAAR</uitkomst><score>71</score><toetsinstituut><oin>00000009876543210000</oin><naam>Toetsinstituut Leerbaarheid</naam></toetsinstituut></resultaat></Leerbaarheidstoets>""",
    (
        "1.0",
        "brede-intake",
        "valid-volledig",
    ): f"""<BredeIntake>{P_BSN}<gemeentecode>0363</gemeentecode><datumEersteGesprek>2024-04-03</datumEersteGesprek><afgerondOp>2024-05-17</afgerondOp><leerbaarheidstoets><afnamedatum>2024-04-15</afnamedatum><uitkomst>B1_HAALBAAR</uitkomst></leerbaarheidstoets><omstandigheid><levensgebied>GEZIN</levensgebied><belemmerend>true</belemmerend><toelichting>Zorg voor twee jonge kinderen</toelichting></omstandigheid><omstandigheid><levensgebied>WERK</levensgebied><belemmerend>false</belemmerend></omstandigheid><verkenning>Wil richting zorg</verkenning></BredeIntake>""",
    (
        "1.0",
        "brede-intake",
        "valid-gestart",
    ): f"""<BredeIntake>{P_BSN2}<gemeentecode>0014</gemeentecode><datumEersteGesprek>2024-06-01</datumEersteGesprek></BredeIntake>""",
    (
        "1.0",
        "pip",
        "valid-b1-route",
    ): f"""<Pip>{P_BSN}<gemeentecode>0363</gemeentecode><vastgesteldOp>2024-06-01</vastgesteldOp><leerroute>B1</leerroute><beoogdTaalniveau>B1</beoogdTaalniveau><afspraak><module>MAP</module><omschrijving>Werkervaringsplek zorg</omschrijving><aanbieder>{ORG_OIN}</aanbieder><startdatum>2024-07-01</startdatum><beoogdeEinddatum>2024-12-31</beoogdeEinddatum></afspraak><afspraak><module>PVT</module><omschrijving>Participatieverklaringstraject in groep</omschrijving></afspraak><financieleOntzorging>true</financieleOntzorging></Pip>""",
    (
        "1.0",
        "pip",
        "valid-z-route",
    ): f"""<Pip>{P_BSN2}<gemeentecode>0014</gemeentecode><vastgesteldOp>2024-07-15</vastgesteldOp><leerroute>Z</leerroute><financieleOntzorging>false</financieleOntzorging></Pip>""",
    (
        "1.0",
        "pip",
        "valid-onderwijsroute",
    ): f"""<Pip>{P_BSN3}<gemeentecode>0599</gemeentecode><vastgesteldOp>2024-08-20</vastgesteldOp><leerroute>ONDERWIJS</leerroute><taalschakeltraject>true</taalschakeltraject><beoogdTaalniveau>B2</beoogdTaalniveau></Pip>""",
    (
        "1.0",
        "maatschappelijke-begeleiding",
        "valid-opdracht",
    ): f"""<MaatschappelijkeBegeleiding>{P_BSN}<gemeentecode>0363</gemeentecode><aanbieder>{ORG_OIN}</aanbieder><status>OPDRACHT</status><startdatum>2024-03-11</startdatum><doel>Zelfstandig de eigen administratie voeren</doel><onderdeel>PRAKTISCHE_ZAKEN</onderdeel><onderdeel>FINANCIEN</onderdeel><onderdeel>PARTICIPATIEVERKLARING</onderdeel></MaatschappelijkeBegeleiding>""",
    (
        "1.0",
        "voortgang",
        "valid-b1-route",
    ): f"""<Voortgang>{P_BSN}<gemeentecode>0363</gemeentecode><aanbieder>{ORG_OIN}</aanbieder><leerroute>B1</leerroute><startdatum>2024-07-01</startdatum><peildatum>2024-12-31</peildatum><urenGepland>600</urenGepland><urenGerealiseerd>284</urenGerealiseerd><cursusonderdeel><naam>Nederlands A2 intensief</naam><periode><begin>2024-07-01</begin><einde>2024-10-31</einde></periode><uren>220</uren></cursusonderdeel><resultaat><vaardigheid>LEZEN</vaardigheid><niveau>A2</niveau><datum>2024-11-12</datum><uitslag>BEHAALD</uitslag></resultaat><resultaat><vaardigheid>SPREKEN</vaardigheid><niveau>A2</niveau><datum>2024-11-12</datum><uitslag>NIET_BEHAALD</uitslag></resultaat></Voortgang>""",
    (
        "1.0",
        "voortgang",
        "valid-z-route",
    ): f"""<Voortgang>{P_BSN2}<gemeentecode>0014</gemeentecode><aanbieder>{ORG_OIN}</aanbieder><leerroute>Z</leerroute><startdatum>2024-08-01</startdatum><peildatum>2025-01-31</peildatum><urenGerealiseerd>190</urenGerealiseerd><doel>Zelfstandig boodschappen doen</doel><doel>Gesprek bij de huisarts voeren</doel></Voortgang>""",
    (
        "1.0",
        "map-resultaat",
        "valid-behaald",
    ): f"""<MapResultaat>{P_BSN}<gemeentecode>0363</gemeentecode><aanbieder>{ORG_OIN}</aanbieder><module>MAP</module><startdatum>2024-07-01</startdatum><einddatum>2024-12-20</einddatum><inspanning>Sollicitatietraining</inspanning><inspanning>Werkervaringsplek 16 uur per week</inspanning><behaald>true</behaald></MapResultaat>""",
    (
        "1.0",
        "map-resultaat",
        "valid-pvt-niet-behaald",
    ): f"""<MapResultaat>{P_BSN2}<gemeentecode>0014</gemeentecode><aanbieder>{ORG_OIN}</aanbieder><module>PVT</module><startdatum>2024-09-01</startdatum><einddatum>2024-11-30</einddatum><behaald>false</behaald><redenNietBehaald>ZIEKTE</redenNietBehaald><toelichting>Opname van zes weken</toelichting></MapResultaat>""",
    (
        "1.0",
        "handhaving",
        "valid-boete",
    ): f"""<Handhaving>{P_BSN2}<gemeentecode>0014</gemeentecode><maatregel>BESTUURLIJKE_BOETE</maatregel><overtreding>NIET_NAKOMEN_PIP</overtreding><besluitdatum>2025-02-03</besluitdatum><boetebedrag>250</boetebedrag></Handhaving>""",
    (
        "1.0",
        "handhaving",
        "valid-verlenging",
    ): f"""<Handhaving>{P_BSN}<gemeentecode>0363</gemeentecode><maatregel>VERLENGING_TERMIJN</maatregel><overtreding>TERMIJN_OVERSCHREDEN</overtreding><besluitdatum>2027-01-15</besluitdatum><nieuweTermijnEinde>2027-09-20</nieuweTermijnEinde><toelichting>Ziekteperiode verschoof de termijn</toelichting></Handhaving>""",
    (
        "1.0",
        "verhuizing",
        "valid-warme-overdracht",
    ): f"""<Verhuizing>{P_BSN}<vertrekgemeente>0363</vertrekgemeente><vestigingsgemeente>0599</vestigingsgemeente><verhuisdatum>2025-01-06</verhuisdatum><nieuwAdres><nederlandsAdres><straatnaam>Coolsingel</straatnaam><huisnummer>40</huisnummer><huisletter>B</huisletter><postcode>3011AD</postcode><woonplaats>Rotterdam</woonplaats><gemeentecode>0599</gemeentecode></nederlandsAdres></nieuwAdres><leerroute>B1</leerroute><pipVastgesteldOp>2024-06-01</pipVastgesteldOp><termijnEinde>2027-03-20</termijnEinde><lopendAanbod><omschrijving>Nederlands B1</omschrijving><aanbieder>{ORG_OIN}</aanbieder><periode><begin>2024-07-01</begin></periode></lopendAanbod><contactpersoon><naam>J. de Vries</naam><telefoon>+31 20 555 0100</telefoon><email>inburgering@gemeente.example.nl</email></contactpersoon></Verhuizing>""",
    (
        "1.0",
        "monitoring",
        "valid-kwartaal",
    ): """<Monitoring><gemeentecode>0363</gemeentecode><periode><begin>2024-01-01</begin><einde>2024-03-31</einde></periode><indicator><code>PIPS_PER_LEERROUTE</code><cel><leeftijdsklasse>18-29</leeftijdsklasse><kenmerk><naam>leerroute</naam><waarde>B1</waarde></kenmerk><aantal>48</aantal></cel><cel><leeftijdsklasse>18-29</leeftijdsklasse><kenmerk><naam>leerroute</naam><waarde>Z</waarde></kenmerk><onderdrukt>true</onderdrukt></cel></indicator><indicator><code>INBURGERINGSPLICHTIGEN</code><cel><geslacht>V</geslacht><aantal>131</aantal></cel><cel><geslacht>M</geslacht><aantal>117</aantal></cel></indicator></Monitoring>""",
    (
        "1.0",
        "aanmelding",
        "valid-verplicht",
    ): f"""<Aanmelding>{P_INSZ}<adres><belgischAdres><straatnaam>Kortrijksesteenweg</straatnaam><huisnummer>1010</huisnummer><busnummer>2</busnummer><postcode>9000</postcode><gemeente>Gent</gemeente><nisCode>44021</nisCode></belgischAdres></adres><nisCode>44021</nisCode><aanmeldingsdatum>2024-02-12</aanmeldingsdatum><doelgroep>VERPLICHT</doelgroep><kanaal>LOKAAL_BESTUUR</kanaal><taalniveau>A0</taalniveau><telefoon>+32 470 12 34 56</telefoon><email>samir.benali@example.be</email></Aanmelding>""",
    (
        "1.0",
        "aanmelding",
        "valid-bisnummer",
    ): f"""<Aanmelding>{P_BIS}<nisCode>11002</nisCode><aanmeldingsdatum>2024-03-01</aanmeldingsdatum><doelgroep>RECHTHEBBEND</doelgroep></Aanmelding>""",
    (
        "1.0",
        "inburgeringscontract",
        "valid-contract",
    ): f"""<Inburgeringscontract>{P_INSZ}<nisCode>44021</nisCode><contractnummer>IC-2024-004512</contractnummer><doelgroep>VERPLICHT</doelgroep><ondertekendOp>2024-02-26</ondertekendOp><looptijd><begin>2024-02-26</begin><einde>2025-02-25</einde></looptijd><agentschap>{ORG_KBO}</agentschap><trajectonderdeel>MO</trajectonderdeel><trajectonderdeel>NT2</trajectonderdeel><trajectonderdeel>LOOPBAANORIENTATIE</trajectonderdeel><trajectonderdeel>PARTICIPATIE_NETWERKING</trajectonderdeel><beoogdTaalniveau>A2</beoogdTaalniveau></Inburgeringscontract>""",
    (
        "1.0",
        "trajectgebeurtenis",
        "valid-mo-geslaagd",
    ): f"""<Trajectgebeurtenis>{P_INSZ}<nisCode>44021</nisCode><trajectonderdeel>MO</trajectonderdeel><gebeurtenis>GESLAAGD</gebeurtenis><datum>2024-05-30</datum><aanbieder>{ORG_KBO}</aanbieder><uren>60</uren></Trajectgebeurtenis>""",
    (
        "1.0",
        "trajectgebeurtenis",
        "valid-nt2-start",
    ): f"""<Trajectgebeurtenis>{P_2000}<nisCode>11002</nisCode><trajectonderdeel>NT2</trajectonderdeel><gebeurtenis>GESTART</gebeurtenis><datum>2024-09-02</datum><aanbieder>{ORG_KBO2}</aanbieder><taalniveau>A1</taalniveau></Trajectgebeurtenis>""",
    (
        "1.0",
        "trajectgebeurtenis",
        "valid-loopbaanorientatie",
    ): f"""<Trajectgebeurtenis>{P_BIS}<nisCode>11002</nisCode><trajectonderdeel>LOOPBAANORIENTATIE</trajectonderdeel><gebeurtenis>INGESCHREVEN</gebeurtenis><datum>2024-10-14</datum></Trajectgebeurtenis>""",
    (
        "1.0",
        "inburgeringsattest",
        "valid-attest",
    ): f"""<Inburgeringsattest>{P_INSZ}<nisCode>44021</nisCode><attestnummer>IA-2025-000871</attestnummer><uitgereiktOp>2025-02-20</uitgereiktOp><agentschap>{ORG_KBO}</agentschap><behaaldOnderdeel>MO</behaaldOnderdeel><behaaldOnderdeel>NT2</behaaldOnderdeel><taalniveau>A2</taalniveau></Inburgeringsattest>""",
    (
        "1.0",
        "vrijstelling-opschorting",
        "valid-vrijstelling",
    ): f"""<VrijstellingOpschorting>{P_UNKNOWN}<nisCode>44021</nisCode><soort>VRIJSTELLING</soort><grond>MEDISCH</grond><beslistOp>2024-04-18</beslistOp><periode><begin>2024-04-18</begin></periode><toelichting>Attest van de behandelende arts</toelichting></VrijstellingOpschorting>""",
    (
        "1.0",
        "vrijstelling-opschorting",
        "valid-opschorting",
    ): f"""<VrijstellingOpschorting>{P_2000}<nisCode>11002</nisCode><soort>OPSCHORTING</soort><grond>ZWANGERSCHAP</grond><trajectonderdeel>NT2</trajectonderdeel><beslistOp>2024-11-05</beslistOp><periode><begin>2024-11-05</begin><einde>2025-05-05</einde></periode></VrijstellingOpschorting>""",
    (
        "1.0",
        "nt2-inschrijving",
        "valid-cvo",
    ): f"""<Nt2Inschrijving>{P_2000}<instelling>{ORG_KBO2}</instelling><aanbod>CVO</aanbod><opleidingscode>NT2A1R</opleidingscode><opleiding>Nederlands tweede taal Richtgraad 1</opleiding><niveau>A1</niveau><periode><begin>2024-09-02</begin><einde>2025-01-24</einde></periode><inschrijvingsdatum>2024-08-20</inschrijvingsdatum></Nt2Inschrijving>""",
    (
        "1.0",
        "nt2-resultaat",
        "valid-geslaagd",
    ): f"""<Nt2Resultaat>{P_2000}<instelling>{ORG_KBO2}</instelling><opleidingscode>NT2A1R</opleidingscode><niveau>A1</niveau><resultaatdatum>2025-01-24</resultaatdatum><uitslag>GESLAAGD</uitslag><urenAanwezig>112</urenAanwezig></Nt2Resultaat>""",
    (
        "1.0",
        "ontheemde-registratie",
        "valid-registratie",
    ): """<OntheemdeRegistratie><ontheemde><insz>03070245613</insz><geslacht>V</geslacht><geboortedatum>2003-07-02</geboortedatum><naam>Kovalenko</naam><voornaam>Daria</voornaam><telefoon>+32 470 98 76 54</telefoon><email>daria.k@example.com</email><opvangadres><straatnaam>Lange Kievitstraat</straatnaam><huisnummer>111</huisnummer><busnummer>4</busnummer><postcode>2018</postcode><gemeente>Antwerpen</gemeente></opvangadres></ontheemde></OntheemdeRegistratie>""",
    (
        "1.0",
        "ontheemde-registratie",
        "valid-zonder-contact",
    ): """<OntheemdeRegistratie><ontheemde><insz>01510901426</insz><geslacht>M</geslacht><geboortedatum>2001-11-00</geboortedatum><naam>Shevchenko</naam><voornaam>Ivan</voornaam><opvangadres><straatnaam>Dorpsstraat</straatnaam><huisnummer>7A</huisnummer><postcode>8500</postcode><gemeente>Kortrijk</gemeente></opvangadres></ontheemde></OntheemdeRegistratie>""",
    (
        "1.0",
        "rapportage",
        "valid-toeleidingsvragen",
    ): """<Rapportage><onderwerp>TOELEIDINGSVRAGEN</onderwerp><periode><begin>2024-01-01</begin><einde>2024-06-30</einde></periode><gebied>Provincie Antwerpen</gebied><cel><leeftijdsklasse>0-17</leeftijdsklasse><geslacht>V</geslacht><postcode>2018</postcode><aantal>37</aantal></cel><cel><leeftijdsklasse>65+</leeftijdsklasse><geslacht>M</geslacht><postcode>2018</postcode><onderdrukt>true</onderdrukt></cel><cel><leeftijdsklasse>18-64</leeftijdsklasse><kenmerk><naam>eerstelijnszone</naam><waarde>Antwerpen Zuid</waarde></kenmerk><aantal>212</aantal></cel></Rapportage>""",
    (
        "1.1",
        "pip",
        "valid-met-ontzorging",
    ): f"""<Pip>{P_BSN}<gemeentecode>0363</gemeentecode><vastgesteldOp>2024-06-01</vastgesteldOp><leerroute>B1</leerroute><beoogdTaalniveau>B1</beoogdTaalniveau><afspraak><module>MAP</module><omschrijving>Werkervaringsplek zorg</omschrijving></afspraak><financieleOntzorging>true</financieleOntzorging><ontzorging><periode><begin>2024-06-01</begin><einde>2024-11-30</einde></periode><vasteLast>HUUR</vasteLast><vasteLast>ENERGIE</vasteLast><vasteLast>ZORGVERZEKERING</vasteLast></ontzorging></Pip>""",
    (
        "1.1",
        "pip",
        "valid-zonder-ontzorging",
    ): f"""<Pip>{P_BSN2}<gemeentecode>0014</gemeentecode><vastgesteldOp>2024-07-15</vastgesteldOp><leerroute>Z</leerroute></Pip>""",
    (
        "1.1",
        "inburgeringsplicht",
        "valid-ontheffing",
    ): f"""<Inburgeringsplicht>{P_BSN2}<gemeentecode>0014</gemeentecode><plichtig>true</plichtig><grond>GEZINSMIGRANT</grond><vastgesteldOp>2024-02-01</vastgesteldOp><ontheffing><grond>MEDISCH</grond><verleendOp>2024-09-09</verleendOp></ontheffing></Inburgeringsplicht>""",
    (
        "1.1",
        "inburgeringsplicht",
        "valid-zonder-ontheffing",
    ): f"""<Inburgeringsplicht>{P_BSN}<gemeentecode>0363</gemeentecode><plichtig>true</plichtig><vastgesteldOp>2024-03-20</vastgesteldOp><termijnEinde>2027-03-20</termijnEinde></Inburgeringsplicht>""",
}


def main() -> None:
    from lxml import etree

    for (version, mtype, name), body in EXAMPLES.items():
        root = etree.fromstring(body.replace(">", f' xmlns="{NS}">', 1))
        etree.indent(root, space="  ")
        target = ROOT / version / "examples" / mtype / f"{name}.xml"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


if __name__ == "__main__":
    main()
