"""Shared MAGDA library (not an adapter): the SOAP envelope, reply reading, mappings, client, simulator.

MAGDA, the Flemish service integrator, serves every service at one SOAP endpoint.
A request is ``soapenv:Envelope/Body/<Dienst>/Verzoek`` with
``Context/{Naam, Versie, Bericht/{Type, Tijdstip, Afzender}}`` and
``Vragen/Vraag/{Referte, Inhoud}``; a reply is ``<Dienst>Response/Repliek`` with
``Context``, optional ``Uitzonderingen`` and ``Antwoorden/Antwoord/{Referte, Inhoud,
Uitzonderingen}``. The MAGDA, Discimus and Rijksregister adapters all build on it.

Modules: :mod:`.services` (which services, versions, namespaces), :mod:`.request`
(building requests), :mod:`.reply` (reading replies and Uitzonderingen),
:mod:`.persoon` and :mod:`.onderwijs` (canonical mappings), :mod:`.client`
(calls with resilience and the register-then-ask rule), :mod:`.sim` (the
simulator engine the partner simulators configure).
"""
