"""Person and organisation identifiers: INSZ, BSN, KBO, OIN.

Validated once at the edge and carried as types afterwards. The check-digit
rules come from python-stdnum where it has them (``be.nn``, ``be.bis``,
``nl.bsn``, ``be.vat`` for KBO); the MAGDA test-person range (months 61-72)
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
from stdnum.nl import bsn as _bsn

SubjectType = Literal["INSZ", "BSN"]

_DIGITS = re.compile(r"^\d+$")
_SEPARATORS = re.compile(r"[\s.\-/]")


class IdentifierError(ValueError):
    """An identifier failed its format or check-digit rule."""


def _compact(value: str) -> str:
    return _SEPARATORS.sub("", value.strip())


def _insz_checksum_ok(number: str) -> bool:
    """Mod-97 over the first nine digits, with the '2' prefix for births from 2000."""
    body, check = int(number[:9]), int(number[9:])
    return 97 - body % 97 == check or 97 - int("2" + number[:9]) % 97 == check


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

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class BSN:
    """Dutch burgerservicenummer (nine digits, 11-proef)."""

    value: str

    def __str__(self) -> str:
        return self.value


def parse_insz(raw: str, *, allow_test_numbers: bool = False) -> INSZ:
    """Validate an INSZ and return it compacted.

    Accepts national numbers (month 00-12), bis numbers (month +20 or +40),
    unknown day/month (00) and serial overflow (day above 31). MAGDA test
    persons (month 61-72, 60 when the month is unknown) only with ``allow_test_numbers``.

    Raises:
        IdentifierError: with a reason a person can act on.
    """
    number = _compact(raw)
    if not _DIGITS.match(number):
        raise IdentifierError("een INSZ bestaat uit 11 cijfers")
    if len(number) != 11:
        raise IdentifierError(f"een INSZ heeft 11 cijfers, niet {len(number)}")
    if not _insz_checksum_ok(number):
        raise IdentifierError("controlegetal (mod 97) klopt niet")
    month = int(number[2:4])
    if 60 <= month <= 72:
        if not allow_test_numbers:
            raise IdentifierError("MAGDA-testpersoon (maand 60-72) niet toegelaten in deze omgeving")
        return INSZ(number)
    try:
        if month >= 20:
            _bis.validate(number)
        else:
            _nn.validate(number)
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
    if not _bsn.is_valid(number):
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
    """Validate a Belgian enterprise number (KBO, ten digits, mod 97)."""
    number = _compact(raw).upper().removeprefix("BE")
    try:
        return str(_kbo.validate(number))
    except _StdnumError as exc:
        raise IdentifierError(f"geen geldig KBO-nummer: {exc}") from exc


def parse_oin(raw: str) -> str:
    """Validate a Dutch organisation identification number (OIN, 20 digits)."""
    number = raw.strip()
    if not _DIGITS.match(number) or len(number) != 20:
        raise IdentifierError("een OIN bestaat uit 20 cijfers")
    return number
