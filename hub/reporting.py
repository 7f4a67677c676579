"""Aggregated reporting without individuals (monitoring, WVG dashboards).

Counts of messages per calendar month and message type, broken down by ONE
dimension at a time (a marginal table, never a cross table):

- ``leeftijd``  age band at receipt, from ``persoon/geboortedatum``;
- ``geslacht``  ``persoon/geslacht``;
- ``regio``     postcode area (``BE-90xx``, ``NL-35xx``), else the Belgian
                province of the NIS code, else the country.

Small cells are suppressed (k = 5): a cell under 5 is published as
``null`` ("<5"). Because the total of each month and type is published too,
one suppressed cell could be recomputed from it; so within every (month,
type) the next smallest cells are suppressed as well, until the suppressed
cells hold at least k persons together (secondary suppression). A total
under k is itself suppressed. The periods are fixed calendar months, so
overlapping ranges cannot be subtracted from each other.

The payloads are decrypted in memory to count and never leave this module.
CSV output neutralises spreadsheet formulas (a cell starting with = + - @
tab or CR gets a leading apostrophe).
"""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Literal

from lxml import etree
from sqlalchemy import and_, select

from hub.errors import HubError, InvalidParam, ValidationFailed
from hub.store.tables import messages

if TYPE_CHECKING:
    from hub.service import Hub

K = 5
MAX_MONTHS = 36
Dimension = Literal["leeftijd", "geslacht", "regio"]
DIMENSIONS: tuple[Dimension, ...] = ("leeftijd", "geslacht", "regio")

_AGE_BANDS = ((0, 17), (18, 24), (25, 34), (35, 44), (45, 54), (55, 64))
_PROVINCES = {
    "1": "BE-Antwerpen",
    "2": "BE-Vlaams-Brabant/Brussel",
    "3": "BE-West-Vlaanderen",
    "4": "BE-Oost-Vlaanderen",
    "5": "BE-Henegouwen",
    "6": "BE-Luxemburg",
    "7": "BE-Limburg",
    "8": "BE-Luxemburg",
    "9": "BE-Namen",
}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True)
class Cell:
    """One published count; ``count`` is None when suppressed."""

    period: str
    message_type: str
    value: str
    count: int | None

    def as_json(self) -> dict[str, Any]:
        return {
            "periode": self.period,
            "berichttype": self.message_type,
            "waarde": self.value,
            "aantal": self.count,
            "onderdrukt": self.count is None,
        }


@dataclass(frozen=True)
class Report:
    """A marginal table with its totals."""

    dimension: Dimension
    first: str
    last: str
    cells: list[Cell]
    totals: list[Cell]

    def as_json(self) -> dict[str, Any]:
        return {
            "k": K,
            "dimensie": self.dimension,
            "van": self.first,
            "tot": self.last,
            "cellen": [c.as_json() for c in self.cells],
            "totalen": [c.as_json() for c in self.totals],
        }

    def as_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(["periode", "berichttype", self.dimension, "aantal"])
        for c in [*self.cells, *self.totals]:
            writer.writerow(
                [safe_csv(c.period), safe_csv(c.message_type), safe_csv(c.value), "<5" if c.count is None else c.count]
            )
        return out.getvalue()


def safe_csv(value: str) -> str:
    """A cell a spreadsheet shows as text, never runs as a formula."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def month(value: str, name: str) -> str:
    """A validated 'YYYY-MM'."""
    try:
        parsed = datetime.strptime(value, "%Y-%m")
    except ValueError as exc:
        raise ValidationFailed(
            "ongeldige maand", invalid_params=[InvalidParam(name, "verwacht JJJJ-MM", "format")]
        ) from exc
    # not strftime("%Y"): glibc writes year 1 as "1", which broke the month arithmetic (a 500)
    return f"{parsed.year:04d}-{parsed.month:02d}"


def age_band(born: str | None, at: date) -> str:
    if not born or len(born) < 4 or not born[:4].isdigit():
        return "onbekend"
    year = int(born[:4])
    m = int(born[5:7]) if len(born) >= 7 and born[5:7].isdigit() else 0
    d = int(born[8:10]) if len(born) >= 10 and born[8:10].isdigit() else 0
    age = at.year - year - (1 if (m, d) > (at.month, at.day) and m else 0)
    for low, high in _AGE_BANDS:
        if low <= age <= high:
            return f"{low}-{high}"
    return "65+" if age >= 65 else "onbekend"


def region(fields: dict[str, str], subject_type: str) -> str:
    postcode = fields.get("postcode", "").replace(" ", "")
    country = fields.get("land") or ("NL" if subject_type == "BSN" or postcode[4:].isalpha() else "BE")
    if len(postcode) >= 4 and postcode[:4].isdigit():
        return f"{country}-{postcode[:2]}xx"
    code = fields.get("nisCode") or fields.get("gemeentecode") or fields.get("nieuweGemeentecode") or ""
    if len(code) == 5 and code.isdigit():
        return _PROVINCES.get(code[0], "BE")
    return "NL" if len(code) == 4 or subject_type == "BSN" else "onbekend"


def _fields(payload: etree._Element) -> dict[str, str]:
    """The few leaves a report looks at, by local name (first occurrence)."""
    wanted = {"geboortedatum", "geslacht", "postcode", "land", "nisCode", "gemeentecode", "nieuweGemeentecode"}
    out: dict[str, str] = {}
    for el in payload.iter():
        if isinstance(el.tag, str):
            name = etree.QName(el).localname
            if name in wanted and name not in out and el.text:
                out[name] = el.text.strip()
    return out


def _suppress(counts: dict[str, int]) -> dict[str, int | None]:
    """Primary (under k) and secondary suppression within one (month, type)."""
    published: dict[str, int | None] = dict(counts)
    small = [v for v, n in counts.items() if n < K]
    for v in small:
        published[v] = None
    hidden = sum(counts[v] for v in small)
    if small and hidden < K:
        # one hidden cell, or hidden cells that add up to fewer than k: hide more, smallest first
        for v, n in sorted(((v, n) for v, n in counts.items() if n >= K), key=lambda vn: (vn[1], vn[0])):
            published[v] = None
            hidden += n
            if hidden >= K and sum(1 for x in published.values() if x is None) >= 2:
                break
    return published


class Reporter:
    """Counts messages for reports; knows nothing of HTTP."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def report(self, dimension: Dimension, first: str, last: str, message_types: Iterable[str] = ()) -> Report:
        """The marginal table of ``dimension`` for the months first..last (inclusive).

        Raises:
            ValidationFailed: a bad month, range or dimension.
        """
        if dimension not in DIMENSIONS:
            raise ValidationFailed(
                "onbekende dimensie",
                invalid_params=[InvalidParam("dimensie", f"een van: {', '.join(DIMENSIONS)}", "enum")],
            )
        first, last = month(first, "van"), month(last, "tot")
        span = (int(last[:4]) - int(first[:4])) * 12 + int(last[5:]) - int(first[5:])
        if span < 0 or span >= MAX_MONTHS:
            raise ValidationFailed(
                "ongeldige periode",
                invalid_params=[InvalidParam("tot", f"na van, hoogstens {MAX_MONTHS} maanden", "range")],
            )
        start = datetime.strptime(first, "%Y-%m").replace(tzinfo=UTC)
        y, m = int(last[:4]), int(last[5:])
        end = datetime(y + (m == 12), m % 12 + 1, 1, tzinfo=UTC)
        types = tuple(message_types)
        query = select(messages.c.id, messages.c.type, messages.c.subject_type, messages.c.received_at).where(
            and_(messages.c.received_at >= start, messages.c.received_at < end, messages.c.ciphertext.is_not(None))
        )
        if types:
            query = query.where(messages.c.type.in_(types))
        with self.hub.engine.connect() as conn:
            rows = conn.execute(query).all()
        counts: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        for r in rows:
            try:
                stored = self.hub.load_message(r.id)
            except HubError:
                continue  # destroyed after its retention period
            if stored.payload is None:
                continue
            received = r.received_at if r.received_at.tzinfo else r.received_at.replace(tzinfo=UTC)
            fields = _fields(stored.payload)
            if dimension == "leeftijd":
                value = age_band(fields.get("geboortedatum"), received.date())
            elif dimension == "geslacht":
                value = fields.get("geslacht", "onbekend")
            else:
                value = region(fields, r.subject_type)
            counts[(received.strftime("%Y-%m"), r.type)][value] += 1
        cells: list[Cell] = []
        totals: list[Cell] = []
        for (period, mtype), counter in sorted(counts.items()):
            published = _suppress(dict(counter))
            cells.extend(Cell(period, mtype, v, published[v]) for v in sorted(published))
            total = sum(counter.values())
            totals.append(Cell(period, mtype, "totaal", total if total >= K else None))
        return Report(dimension, first, last, cells, totals)


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar of the chart, in SVG user units."""

    x: float
    y: float
    width: float
    height: float
    label: str
    value: str
    colour: str


_COLOURS = ("#004699", "#e8a33d", "#2e8540", "#8a2be2", "#c0392b", "#16a085")


def chart(report: Report, *, width: int = 720, height: int = 260) -> dict[str, Any]:
    """Bars of the published totals per month (grouped by message type); suppressed totals show as '<5'."""
    periods = sorted({t.period for t in report.totals})
    types = sorted({t.message_type for t in report.totals})
    peak = max([t.count or 0 for t in report.totals] + [K])
    plot_h = height - 50
    group_w = (width - 60) / max(1, len(periods))
    bar_w = max(4.0, (group_w - 10) / max(1, len(types)))
    by_key = {(t.period, t.message_type): t.count for t in report.totals}
    bars = []
    for i, period in enumerate(periods):
        for j, mtype in enumerate(types):
            if (period, mtype) not in by_key:
                continue
            count = by_key[(period, mtype)]
            h = (count or 0) / peak * plot_h
            bars.append(
                Bar(
                    x=50 + i * group_w + j * bar_w,
                    y=10 + plot_h - h,
                    width=bar_w - 2,
                    height=h,
                    label=period,
                    value="<5" if count is None else str(count),
                    colour=_COLOURS[j % len(_COLOURS)],
                )
            )
    return {
        "width": width,
        "height": height,
        "bars": bars,
        "peak": peak,
        "baseline": 10 + plot_h,
        "periods": [(50 + i * group_w + group_w / 2, p) for i, p in enumerate(periods)],
        "legend": [(t, _COLOURS[j % len(_COLOURS)]) for j, t in enumerate(types)],
    }
