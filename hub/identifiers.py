"""Person and organisation identifiers: INSZ, BSN, KBO, OIN.

Validated once at the edge and carried as types afterwards. The check-digit
rules come from python-stdnum where it has them (``be.nn``, ``be.bis``,
``be.vat`` for KBO; the BSN's 11-proef is written out, and tested against
``nl.bsn``); the MAGDA test-person range (months 61-72)
is ours, and only accepted when the hub is configured for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from stdnum.be import bis as _bis
from stdnum.be import nn as _nn
from stdnum.be import vat as _kbo
from stdnum.exceptions import ValidationError as _StdnumError

SubjectType = Literal["INSZ", "BSN"]

_DIGITS = re.compile(r"^\d+$")
_SEPARATORS = re.compile(r"[\s.\-/]")


class IdentifierError(ValueError):
    """An identifier failed its format or check-digit rule."""


def _compact(value: str) -> str:
    if value.isascii() and value.isdigit():
        return value  # already compact (nearly every number): no strip, no separators to remove
    return _SEPARATORS.sub("", value.strip())


def _insz_checksum_ok(number: str) -> bool:
    """Mod-97 over the first nine digits, with the '2' prefix for births from 2000."""
    body, check = int(number[:9]), int(number[9:])
    return 97 - body % 97 == check or 97 - int("2" + number[:9]) % 97 == check


def _bsn_checksum_ok(number: str) -> bool:
    """The 11-proef (python-stdnum ``nl.bsn``, written out: it runs for every Dutch message):
    9*d1 + 8*d2 + ... + 2*d8 - d9 is a multiple of 11, and the number is not all zeros."""
    d = [ord(c) - 48 for c in number]
    total = 9 * d[0] + 8 * d[1] + 7 * d[2] + 6 * d[3] + 5 * d[4] + 4 * d[5] + 3 * d[6] + 2 * d[7] - d[8]
    return total % 11 == 0 and any(d)


@dataclass(frozen=True, slots=True)
class INSZ:
    """Belgian identification number for social security (rijksregister- or bisnummer)."""

    value: str

    @property
    def kind(self) -> Literal["rijksregisternummer", "bisnummer", "testpersoon"]:
        month = int(self.value[2:4])
        if month >= 60:
            return "testpersoon"
        return "bisnummer" if month >= 20 else "rijksregisternummer"

    @property
    def sex(self) -> Literal["M", "V"] | None:
        """M for an odd serial, V for an even one; None for a bis number issued with sex unknown (+20)."""
        month = int(self.value[2:4])
        if 20 <= month <= 32:
            return None
        return "M" if int(self.value[6:9]) % 2 else "V"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class BSN:
    """Dutch burgerservicenummer (nine digits, 11-proef)."""

    value: str

    def __str__(self) -> str:
        return self.value


def _insz_month_kind(month: int) -> str | None:
    """Which kind of number a month field means, or None when no kind uses it."""
    if month <= 12:
        return "rijksregisternummer"
    if 20 <= month <= 32 or 40 <= month <= 52:
        return "bisnummer"
    if 60 <= month <= 72:
        return "testpersoon"
    return None


def parse_insz(raw: str, *, allow_test_numbers: bool = False) -> INSZ:
    """Validate an INSZ and return it compacted.

    Rules, in the order they are checked:

    - 11 digits (spaces, dots and dashes are ignored);
    - month 00-12 (rijksregisternummer), 20-32 or 40-52 (bisnummer: +20 when the
      sex was unknown at issue, +40 otherwise), 60-72 (MAGDA test person; 60
      when the month is unknown), and nothing else; month 00 and day 00 mean
      unknown; a day above 31 is allowed (the serial overflowed that day);
    - check digits: 97 - (first nine digits mod 97), and for births from 2000 the
      same over "2" followed by the nine digits (python-stdnum ``be.nn``/``be.bis``
      for the national and bis ranges);
    - a MAGDA test person only with ``allow_test_numbers`` (their serials run to 999);
    - otherwise serial number 001-997 (odd for men, even for women).

    Raises:
        IdentifierError: with a reason a person can act on.
    """
    number = _compact(raw)
    if not _DIGITS.match(number):
        raise IdentifierError("een INSZ bestaat uit 11 cijfers")
    if len(number) != 11:
        raise IdentifierError(f"een INSZ heeft 11 cijfers, niet {len(number)}")
    month = int(number[2:4])
    kind = _insz_month_kind(month)
    if kind is None:
        raise IdentifierError(
            f"maand {number[2:4]} bestaat niet: 00-12, +20 of +40 voor een bisnummer, 60-72 voor een testpersoon"
        )
    if not _insz_checksum_ok(number):
        raise IdentifierError("controlegetal (mod 97) klopt niet")
    if kind == "testpersoon":
        # MAGDA's test persons also use serials 998 and 999, which real numbers never do
        if not allow_test_numbers:
            raise IdentifierError("MAGDA-testpersoon (maand 60-72) niet toegelaten in deze omgeving")
        return INSZ(number)
    if not 1 <= int(number[6:9]) <= 997:
        raise IdentifierError(f"volgnummer {number[6:9]} bestaat niet: 001 tot 997")
    try:
        (_bis if kind == "bisnummer" else _nn).validate(number)
    except _StdnumError as exc:
        raise IdentifierError(f"geen geldig INSZ: {exc}") from exc
    return INSZ(number)


def parse_bsn(raw: str) -> BSN:
    """Validate a BSN (nine digits, 11-proef) and return it compacted."""
    number = _compact(raw)
    if len(number) == 8 and _DIGITS.match(number):
        number = "0" + number
    if not _DIGITS.match(number) or len(number) != 9:
        raise IdentifierError("een BSN bestaat uit 9 cijfers")
    if not _bsn_checksum_ok(number):
        raise IdentifierError("voldoet niet aan de 11-proef")
    return BSN(number)


def parse_subject(kind: str, raw: str, *, allow_test_numbers: bool = False) -> INSZ | BSN:
    """Validate a data-subject identifier of the given kind (INSZ or BSN)."""
    if kind == "INSZ":
        return parse_insz(raw, allow_test_numbers=allow_test_numbers)
    if kind == "BSN":
        return parse_bsn(raw)
    raise IdentifierError(f"onbekend identificatietype {kind!r}: INSZ of BSN")


def parse_kbo(raw: str) -> str:
    """Validate a Belgian enterprise number (KBO): ten digits, starting 0 or 1, mod 97.

    Accepts the forms 0412.345.614, BE0412345614 and the old nine-digit form.
    """
    number = _compact(raw).upper().removeprefix("BE")
    if len(number) == 9 and _DIGITS.match(number):
        number = "0" + number
    if not _DIGITS.match(number) or len(number) != 10:
        raise IdentifierError("een KBO-nummer bestaat uit 10 cijfers")
    if number[0] not in "01":
        raise IdentifierError("een KBO-nummer begint met 0 of 1")
    if 97 - int(number[:8]) % 97 != int(number[8:]):
        raise IdentifierError("controlegetal (mod 97) klopt niet")
    try:
        return str(_kbo.validate(number))
    except _StdnumError as exc:
        raise IdentifierError(f"geen geldig KBO-nummer: {exc}") from exc


def parse_oin(raw: str) -> str:
    """Validate a Dutch organisation identification number (OIN, 20 digits)."""
    number = raw.strip()
    if not _DIGITS.match(number) or len(number) != 20:
        raise IdentifierError("een OIN bestaat uit 20 cijfers")
    if not number.strip("0"):
        raise IdentifierError("een OIN bestaat niet uit enkel nullen")
    return number
