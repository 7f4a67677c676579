"""INSZ, BSN, KBO and OIN rules. Numbers are generated here with their check digits."""

import os
import re
from pathlib import Path

import pytest

from hub.identifiers import BSN, INSZ, IdentifierError, parse_bsn, parse_insz, parse_kbo, parse_oin, parse_subject


def insz(yy: int, mm: int, dd: int, serial: int, *, born_2000: bool = False) -> str:
    body = f"{yy:02d}{mm:02d}{dd:02d}{serial:03d}"
    return body + f"{97 - int(('2' if born_2000 else '') + body) % 97:02d}"


def bsn(eight: str) -> str:
    total = sum((9 - i) * int(d) for i, d in enumerate(eight)) % 11
    assert total < 10, "pick other digits"
    return eight + str(total)


def kbo(eight: str) -> str:
    return eight + f"{97 - int(eight) % 97:02d}"


# -- INSZ ----------------------------------------------------------------------


def test_national_number_before_2000_is_accepted_and_compacted() -> None:
    number = insz(85, 3, 14, 123)
    parsed = parse_insz(f"{number[:2]}.{number[2:4]}.{number[4:6]}-{number[6:9]}.{number[9:]}")
    assert parsed == INSZ(number)
    assert parsed.kind == "rijksregisternummer"


def test_national_number_from_2000_uses_the_2_prefix_rule() -> None:
    number = insz(3, 7, 2, 456, born_2000=True)
    assert parse_insz(number).value == number


def test_born_2000_number_with_the_old_rule_check_digits_is_refused() -> None:
    body = "030702456"
    old_rule = body + f"{97 - int(body) % 97:02d}"
    new_rule = insz(3, 7, 2, 456, born_2000=True)
    assert old_rule != new_rule
    parse_insz(old_rule)  # also a valid number: a person born in 1903
    wrong = body + f"{(int(new_rule[9:]) + 1) % 97:02d}"
    if wrong not in {old_rule, new_rule}:
        with pytest.raises(IdentifierError, match="controlegetal"):
            parse_insz(wrong)


@pytest.mark.parametrize("digit", range(1, 10))
def test_any_changed_check_digit_is_refused(digit: int) -> None:
    number = insz(85, 3, 14, 123)
    changed = number[:10] + str((int(number[10]) + digit) % 10)
    with pytest.raises(IdentifierError, match="controlegetal"):
        parse_insz(changed)


@pytest.mark.parametrize(("mm", "dd"), [(0, 0), (5, 0)])
def test_unknown_day_or_month_is_accepted(mm: int, dd: int) -> None:
    assert parse_insz(insz(90, mm, dd, 231)).kind == "rijksregisternummer"


@pytest.mark.parametrize("day", [32, 45, 99])
def test_day_above_31_after_serial_overflow_is_accepted(day: int) -> None:
    parse_insz(insz(92, 4, day, 1))


@pytest.mark.parametrize(("offset", "sex"), [(20, None), (40, "V")])
def test_bis_numbers_add_20_or_40_to_the_month(offset: int, sex: str | None) -> None:
    parsed = parse_insz(insz(78, 5 + offset, 22, 88))
    assert parsed.kind == "bisnummer"
    assert parsed.sex == sex


def test_bis_number_with_unknown_month_and_2000_rule() -> None:
    assert parse_insz(insz(5, 40, 0, 14, born_2000=True)).kind == "bisnummer"


@pytest.mark.parametrize("month", [13, 19, 33, 39, 53, 59, 73, 99])
def test_month_outside_every_range_is_refused(month: int) -> None:
    with pytest.raises(IdentifierError, match=f"maand {month}"):
        parse_insz(insz(80, month, 1, 5))


@pytest.mark.parametrize("serial", [0, 998, 999])
def test_serial_outside_001_997_is_refused(serial: int) -> None:
    with pytest.raises(IdentifierError, match="volgnummer"):
        parse_insz(insz(80, 1, 1, serial))


def test_sex_follows_the_serial() -> None:
    assert parse_insz(insz(85, 3, 14, 123)).sex == "M"
    assert parse_insz(insz(85, 3, 14, 124)).sex == "V"


@pytest.mark.parametrize("month", [60, 61, 66, 72])
def test_magda_test_persons_only_when_configured(month: int) -> None:
    number = insz(80, month, 15, 3)
    with pytest.raises(IdentifierError, match="testpersoon"):
        parse_insz(number)
    assert parse_insz(number, allow_test_numbers=True).kind == "testpersoon"


@pytest.mark.parametrize("serial", [998, 999])
def test_magda_test_persons_may_use_serials_998_and_999(serial: int) -> None:
    assert parse_insz(insz(6, 70, 12, serial), allow_test_numbers=True).kind == "testpersoon"


def test_test_person_with_wrong_check_digits_is_refused_even_when_allowed() -> None:
    number = insz(80, 61, 15, 3)
    with pytest.raises(IdentifierError, match="controlegetal"):
        parse_insz(number[:9] + f"{(int(number[9:]) + 1) % 100:02d}", allow_test_numbers=True)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [("8503141230", "11 cijfers"), ("850314123021", "11 cijfers"), ("85O31412302", "11 cijfers"), ("", "11 cijfers")],
)
def test_insz_of_wrong_shape_is_refused(raw: str, reason: str) -> None:
    with pytest.raises(IdentifierError, match=reason):
        parse_insz(raw)


# -- BSN -----------------------------------------------------------------------


def test_bsn_passing_the_11_proef_is_accepted() -> None:
    number = bsn("90830166")
    assert parse_bsn(number) == BSN(number)


def test_bsn_of_eight_digits_gets_its_leading_zero() -> None:
    number = bsn("01234567")
    assert parse_bsn(number[1:]).value == number


@pytest.mark.parametrize("raw", ["908301663", "908301660", "123456789"])
def test_bsn_failing_the_11_proef_is_refused(raw: str) -> None:
    with pytest.raises(IdentifierError, match="11-proef"):
        parse_bsn(raw)


def test_bsn_11_proef_agrees_with_python_stdnum_on_a_hundred_thousand_numbers() -> None:
    """The hub writes the 11-proef out (it runs for every Dutch message); python-stdnum's
    nl.bsn is the reference, over every ending of a spread of prefixes and all zeros."""
    from stdnum.nl import bsn as reference

    numbers = ["000000000", *(f"{p:06d}{end:03d}" for p in range(0, 1_000_000, 9973) for end in range(1000))]
    disagree = []
    for number in numbers:
        try:
            ours = parse_bsn(number).value == number
        except IdentifierError:
            ours = False
        if ours != reference.is_valid(number):
            disagree.append(number)
    assert disagree == []
    assert sum(1 for n in numbers if reference.is_valid(n)) > 1000  # the sample holds valid ones


@pytest.mark.parametrize("raw", ["12345", "1234567890", "90830166x"])
def test_bsn_of_wrong_shape_is_refused(raw: str) -> None:
    with pytest.raises(IdentifierError, match="9 cijfers"):
        parse_bsn(raw)


def test_parse_subject_dispatches_on_kind() -> None:
    assert isinstance(parse_subject("BSN", bsn("90830166")), BSN)
    assert isinstance(parse_subject("INSZ", insz(85, 3, 14, 123)), INSZ)
    with pytest.raises(IdentifierError, match="onbekend"):
        parse_subject("RRN", "x")


# -- KBO and OIN ---------------------------------------------------------------


@pytest.mark.parametrize("raw", [kbo("04123456"), "BE" + kbo("08765432"), "0412.345.614", kbo("12345678")])
def test_kbo_with_valid_check_digits_is_accepted(raw: str) -> None:
    assert len(parse_kbo(raw)) == 10


def test_kbo_of_nine_digits_gets_its_leading_zero() -> None:
    assert parse_kbo(kbo("04123456")[1:]) == kbo("04123456")


@pytest.mark.parametrize(
    ("raw", "reason"), [("0412345615", "controlegetal"), ("2412345678", "begint met 0 of 1"), ("04123", "10 cijfers")]
)
def test_invalid_kbo_is_refused(raw: str, reason: str) -> None:
    with pytest.raises(IdentifierError, match=reason):
        parse_kbo(raw)


def test_oin_has_20_digits_and_is_not_all_zero() -> None:
    assert parse_oin("00000001234567890000") == "00000001234567890000"
    with pytest.raises(IdentifierError, match="20 cijfers"):
        parse_oin("0000000123456789000")
    with pytest.raises(IdentifierError, match="nullen"):
        parse_oin("0" * 20)


# -- the MAGDA samples ------------------------------------------------------------


def _shared_dir() -> Path:
    repo = Path(__file__).resolve().parents[2]
    configured = os.environ.get("KNOOPPUNT_SHARED_DIR")
    candidates = [Path(configured)] if configured else [repo.parent / "shared", repo.parent.parent / "shared"]
    for candidate in candidates:
        if (candidate / "contracts" / "magda").is_dir():
            return candidate
    raise AssertionError(f"shared MAGDA contracts not found in {candidates}; set KNOOPPUNT_SHARED_DIR")


def test_every_insz_in_the_magda_answers_is_a_test_person_we_accept() -> None:
    responses = _shared_dir() / "contracts" / "magda" / "responses"
    numbers = {
        m.group(1)
        for path in responses.rglob("*.xml")
        for m in re.finditer(r"<INSZ>(\d{11})</INSZ>", path.read_text(encoding="utf-8", errors="replace"))
    }
    assert numbers
    for number in numbers:
        assert parse_insz(number, allow_test_numbers=True).kind == "testpersoon"
        with pytest.raises(IdentifierError, match="testpersoon"):
            parse_insz(number)
