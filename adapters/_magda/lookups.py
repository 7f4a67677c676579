"""The lookups MAGDA-based adapters share: GeefPersoon and GeefHistoriekInschrijving.

Each returns a :class:`hub.ports.LookupResult` holding canonical data
(:mod:`adapters._magda.persoon`, :mod:`adapters._magda.onderwijs`) and MAGDA's
notices as warnings.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, timedelta

from adapters._magda import request as rq
from adapters._magda import services
from adapters._magda.client import MagdaClient
from adapters._magda.onderwijs import inschrijvingen
from adapters._magda.persoon import persoon
from adapters._magda.reply import Reply
from hub.errors import PartnerRejected, ValidationFailed
from hub.ports import JSON, LookupRequest, LookupResult

# Some sources name the new INSZ only in the Diagnose text.
_INSZ_IN_TEXT = re.compile(r"(?<!\d)(\d{11})(?!\d)")


def has_person(reply: Reply) -> bool:
    return reply.inhoud is not None and reply.inhoud.find("Persoon") is not None


def person_result(reply: Reply, warnings: tuple[str, ...], asked_insz: str) -> LookupResult:
    """Turn an assessed GeefPersoon reply into a LookupResult, surfacing a new INSZ."""
    codes = reply.codes()
    nieuw: str | None = None
    for u in reply.uitzonderingen:
        if u.identificatie in (services.INSZ_CANCELLED, services.INSZ_REPLACED):
            in_diagnose = _INSZ_IN_TEXT.search(u.diagnose)
            nieuw = (
                nieuw
                or u.annotatie("NieuwINSZ")
                or u.annotatie("INSZ")
                or (in_diagnose.group(1) if in_diagnose else None)
            )
    status = None
    if services.INSZ_REPLACED in codes:
        status = "vervangen"
    elif services.INSZ_CANCELLED in codes:
        status = "geannuleerd"
    if not has_person(reply) or reply.inhoud is None:
        data: dict[str, JSON] = {"insz": asked_insz}
        if status:
            data["inszStatus"] = status
        if nieuw:
            data["nieuwInsz"] = nieuw
        return LookupResult(data=data, warnings=warnings, found=False)
    el = reply.inhoud.find("Persoon")
    if el is None:  # guarded by has_person; keeps mypy and the reader honest
        raise PartnerRejected("GeefPersoon-antwoord zonder Persoon")
    data = persoon(el)
    answered = data.get("insz")
    if isinstance(answered, str) and answered != asked_insz:
        nieuw = nieuw or answered
        status = status or "vervangen"
    if status:
        data["inszStatus"] = status
    if nieuw:
        data["nieuwInsz"] = nieuw
    return LookupResult(data=data, warnings=warnings, found=True)


async def lookup_persoon(client: MagdaClient, request: LookupRequest) -> LookupResult:
    """GeefPersoon for the request's subject, registering first when MAGDA asks for it."""
    insz = client.insz(request.subject)
    config = client.config

    def build() -> rq.BuiltRequest:
        return rq.geef_persoon(config.afzender, insz, bron=config.bron, taal=config.taal)

    reply, assessment = await client.ask(insz, build, has_person)
    return person_result(reply, assessment.warnings, insz)


def has_enrolments(reply: Reply) -> bool:
    return reply.inhoud is not None and reply.inhoud.find("Inschrijvingen/Inschrijving") is not None


def _date(params: dict[str, str], key: str, default: date) -> date:
    raw = params.get(key)
    if raw is None or raw == "":
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise ValidationFailed(f"parameter {key!r} is geen datum (JJJJ-MM-DD)") from exc


def period_and_sources(
    params: dict[str, str], *, default_years: int = 5, today: date | None = None
) -> tuple[date, date, tuple[str, ...]]:
    """Read ``van``, ``tot`` (ISO dates) and ``bronnen`` (comma-separated LP,HO,VWO,INT) from lookup params.

    Raises:
        ValidationFailed: a date is not ISO, ``van`` is after ``tot``, or a source is unknown.
    """
    tot = _date(params, "tot", today or date.today())
    van = _date(params, "van", tot - timedelta(days=365 * default_years))
    if van > tot:
        raise ValidationFailed("'van' ligt na 'tot'")
    raw = params.get("bronnen", "")
    bronnen = tuple(b.strip().upper() for b in raw.split(",") if b.strip()) or rq.ENRICHMENT_SOURCES
    unknown = [b for b in bronnen if b not in rq.ENRICHMENT_SOURCES]
    if unknown:
        raise ValidationFailed(f"onbekende bron(nen) {', '.join(unknown)}; wel: {', '.join(rq.ENRICHMENT_SOURCES)}")
    return van, tot, bronnen


def enrolment_result(reply: Reply, warnings: Sequence[str], insz: str, van: date, tot: date) -> LookupResult:
    """Turn an assessed GeefHistoriekInschrijving reply into a LookupResult."""
    lijst = inschrijvingen(reply.inhoud)
    data: dict[str, JSON] = {"insz": insz, "van": van.isoformat(), "tot": tot.isoformat(), "inschrijvingen": lijst}
    return LookupResult(data=data, warnings=tuple(warnings), found=bool(lijst))


async def lookup_inschrijvingen(client: MagdaClient, request: LookupRequest) -> LookupResult:
    """GeefHistoriekInschrijving for the subject in the requested period and sources."""
    insz = client.insz(request.subject)
    van, tot, bronnen = period_and_sources(dict(request.params))

    def build() -> rq.BuiltRequest:
        return rq.geef_historiek_inschrijving(client.config.afzender, insz, van=van, tot=tot, bronnen=bronnen)

    reply, assessment = await client.ask(insz, build, has_enrolments)
    return enrolment_result(reply, assessment.warnings, insz, van, tot)
