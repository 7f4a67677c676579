"""Minor versions: 1.1 extends 1.0 without breaking senders; receivers on 1.0 get a
downgrade or a refusal, as each type's policy states."""

import shutil
from datetime import date
from pathlib import Path

import pytest
import yaml
from lxml import etree

from hub.errors import ConfigurationError, ValidationFailed
from hub.infomodel import InfoModel, VersionRefused

NS = "{urn:knooppunt:inburgering:1}"


def _example(schemas_dir: Path, version: str, mtype: str, name: str) -> etree._Element:
    return etree.parse(str(schemas_dir / "inburgering" / version / "examples" / mtype / f"{name}.xml")).getroot()


def _c14n(element: etree._Element) -> bytes:
    return etree.tostring(element, method="c14n2", strip_text=True)


def test_pip_and_inburgeringsplicht_exist_in_two_versions_of_one_namespace(model: InfoModel) -> None:
    for name in ("pip", "inburgeringsplicht"):
        assert model.versions_of(name) == ["1.0", "1.1"]
        old, new = (model.get(name, v) for v in ("1.0", "1.1"))
        assert old.namespace == new.namespace == "urn:knooppunt:inburgering:1"
        assert model.compatibility_problems(old, new) == []


def test_every_type_states_its_downgrade_policy_and_deprecation(schemas_dir: Path, model: InfoModel) -> None:
    for catalog in schemas_dir.glob("*/*/catalog.yaml"):
        for name, spec in yaml.safe_load(catalog.read_text(encoding="utf-8"))["types"].items():
            assert spec["downgrade"] in {"drop", "refuse"}, name
            assert "deprecation" in spec, name
    assert model.get("pip", "1.0").deprecation == date(2028, 6, 30)
    assert model.get("pip", "1.1").deprecation is None


def test_versions_sort_numerically(model: InfoModel) -> None:
    assert model.versions_of("klantprofiel") == ["1.0"]


@pytest.mark.parametrize("example", ["valid-b1-route", "valid-z-route", "valid-onderwijsroute"])
def test_every_1_0_pip_is_a_valid_1_1_pip(schemas_dir: Path, model: InfoModel, example: str) -> None:
    element = _example(schemas_dir, "1.0", "pip", example)
    upgraded = model.convert_version(model.get("pip", "1.0"), model.get("pip", "1.1"), element)
    model.validate_payload(model.get("pip", "1.1"), upgraded)
    assert _c14n(upgraded) == _c14n(element)


def test_downgrading_pip_drops_ontzorging_and_keeps_the_rest(schemas_dir: Path, model: InfoModel) -> None:
    element = _example(schemas_dir, "1.1", "pip", "valid-met-ontzorging")
    down = model.convert_version(model.get("pip", "1.1"), model.get("pip", "1.0"), element)
    assert down.find(f"{NS}ontzorging") is None
    assert element.find(f"{NS}ontzorging") is not None, "the input is not changed"
    model.validate_payload(model.get("pip", "1.0"), down)
    expected = etree.fromstring(etree.tostring(element))
    expected.remove(expected.find(f"{NS}ontzorging"))
    assert _c14n(down) == _c14n(expected)


def test_a_1_1_pip_is_not_valid_1_0_without_downgrade(schemas_dir: Path, model: InfoModel) -> None:
    element = _example(schemas_dir, "1.1", "pip", "valid-met-ontzorging")
    with pytest.raises(ValidationFailed) as caught:
        model.validate_payload(model.get("pip", "1.0"), element)
    assert [(p.name, p.code) for p in caught.value.invalid_params] == [("/Pip/ontzorging", "unexpected")]


def test_inburgeringsplicht_with_ontheffing_is_refused_for_a_1_0_receiver(schemas_dir: Path, model: InfoModel) -> None:
    element = _example(schemas_dir, "1.1", "inburgeringsplicht", "valid-ontheffing")
    with pytest.raises(VersionRefused) as caught:
        model.convert_version(model.get("inburgeringsplicht", "1.1"), model.get("inburgeringsplicht", "1.0"), element)
    assert caught.value.code == "version_refused"
    assert [p.name for p in caught.value.invalid_params] == ["/Inburgeringsplicht/ontheffing"]


def test_inburgeringsplicht_without_new_fields_passes_to_a_1_0_receiver(schemas_dir: Path, model: InfoModel) -> None:
    element = _example(schemas_dir, "1.1", "inburgeringsplicht", "valid-zonder-ontheffing")
    down = model.convert_version(
        model.get("inburgeringsplicht", "1.1"), model.get("inburgeringsplicht", "1.0"), element
    )
    assert _c14n(down) == _c14n(element)


def test_converting_between_types_is_refused(schemas_dir: Path, model: InfoModel) -> None:
    element = _example(schemas_dir, "1.0", "pip", "valid-z-route")
    with pytest.raises(VersionRefused):
        model.convert_version(model.get("pip", "1.0"), model.get("klantprofiel", "1.0"), element)


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ('<xs:element name="beoogdTaalniveau" type="Taalniveau" minOccurs="0"/>', "", "beoogdTaalniveau removed"),
        (
            '<xs:element name="toelichting" type="Tekst" minOccurs="0"/>',
            '<xs:element name="toelichting" type="Tekst"/>',
            "toelichting minOccurs raised",
        ),
        (
            '<xs:element name="toelichting" type="Tekst" minOccurs="0"/>',
            '<xs:element name="toelichting" type="Tekst" minOccurs="0"/><xs:element name="nieuw" type="Tekst"/>',
            "nieuw added as required",
        ),
        (
            'name="afspraak" type="Afspraak" minOccurs="0" maxOccurs="10"',
            'name="afspraak" type="Afspraak" minOccurs="0" maxOccurs="3"',
            "afspraak maxOccurs lowered",
        ),
    ],
)
def test_a_minor_version_that_breaks_senders_does_not_load(
    tmp_path: Path, schemas_dir: Path, old: str, new: str, problem: str
) -> None:
    shutil.copytree(schemas_dir, tmp_path / "schemas", ignore=shutil.ignore_patterns("examples"))
    xsd = tmp_path / "schemas" / "inburgering" / "1.1" / "pip.xsd"
    text = xsd.read_text(encoding="utf-8")
    assert old in text
    xsd.write_text(text.replace(old, new), encoding="utf-8")
    with pytest.raises(ConfigurationError, match=problem):
        InfoModel(tmp_path / "schemas")


def test_a_version_is_accepted_until_its_deprecation_date(model: InfoModel) -> None:
    old = model.get("pip", "1.0")
    model.ensure_accepted(old, date(2028, 6, 30))
    with pytest.raises(VersionRefused, match=r"gebruik 1\.1") as caught:
        model.ensure_accepted(old, date(2028, 7, 1))
    assert caught.value.invalid_params[0].code == "deprecated"
    model.ensure_accepted(model.get("pip", "1.1"), date(2099, 1, 1))
