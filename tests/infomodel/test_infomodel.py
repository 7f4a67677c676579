"""The InfoModel's public behaviour beyond the examples: errors, subjects, JSON Schemas, downloads."""

import copy
import json
import shutil
from pathlib import Path

import jsonschema
import pytest
import yaml
from lxml import etree

from hub.errors import ConfigurationError, UnknownMessageType, ValidationFailed
from hub.infomodel import InfoModel

NS = "{urn:knooppunt:inburgering:1}"


def _load(schemas_dir: Path, version: str, mtype: str, name: str) -> etree._Element:
    return etree.parse(str(schemas_dir / "inburgering" / version / "examples" / mtype / f"{name}.xml")).getroot()


def test_every_flow_of_the_domain_table_has_a_type(model: InfoModel) -> None:
    flows = {t.flow for t in model.types()}
    assert {
        "voorinburgering",
        "vestiging",
        "maatschappelijke begeleiding",
        "brede intake",
        "PIP",
        "MAP, PVT",
        "B1 route, Z-route",
        "handhaving",
        "monitoring",
        "aanmelding",
        "contract",
        "attest",
        "onderwijs",
        "ontheemden",
        "reporting",
        "verhuizing",
    } <= flows


def test_all_errors_are_reported_at_once(schemas_dir: Path, model: InfoModel) -> None:
    element = _load(schemas_dir, "1.0", "pip", "valid-b1-route")
    element.find(f"{NS}leerroute").text = "A2"
    element.find(f"{NS}gemeentecode").text = "12"
    bsn = element.find(f"{NS}persoon/{NS}identificatie/{NS}bsn")
    bsn.text = bsn.text[:-1] + ("0" if bsn.text[-1] != "0" else "1")
    with pytest.raises(ValidationFailed) as caught:
        model.validate_payload(model.get("pip", "1.0"), element, pointer="json")
    assert sorted((p.name, p.code) for p in caught.value.invalid_params) == [
        ("/payload/gemeentecode", "pattern"),
        ("/payload/leerroute", "enumeration"),
        ("/payload/persoon/identificatie/bsn", "identifier"),
    ]


def test_json_with_schema_and_identifier_errors_reports_both(schemas_dir: Path, model: InfoModel) -> None:
    mtype = model.get("klantprofiel", "1.0")
    data = model.xml_to_json(mtype, _load(schemas_dir, "1.0", "klantprofiel", "valid-statushouder"))
    data["taalniveau"] = "Z9"
    data["persoon"]["identificatie"]["bsn"] = "123456789"
    with pytest.raises(ValidationFailed) as caught:
        model.json_to_xml(mtype, data)
    assert sorted((p.name, p.code) for p in caught.value.invalid_params) == [
        ("/payload/persoon/identificatie/bsn", "identifier"),
        ("/payload/taalniveau", "enumeration"),
    ]


def test_json_key_order_does_not_matter(schemas_dir: Path, model: InfoModel) -> None:
    mtype = model.get("voortgang", "1.0")
    element = _load(schemas_dir, "1.0", "voortgang", "valid-b1-route")
    data = model.xml_to_json(mtype, element)
    shuffled = dict(reversed(list(data.items())))
    back = model.validate_json(mtype, shuffled)
    assert etree.tostring(back, method="c14n2", strip_text=True) == etree.tostring(
        element, method="c14n2", strip_text=True
    )


def test_json_that_is_not_an_object_is_refused(model: InfoModel) -> None:
    with pytest.raises(ValidationFailed) as caught:
        model.validate_json(model.get("pip", "1.0"), ["not", "an", "object"])
    assert caught.value.invalid_params[0].name == "/payload"


def test_test_persons_pass_only_when_allowed(schemas_dir: Path, model: InfoModel) -> None:
    element = _load(schemas_dir, "1.0", "aanmelding", "invalid-testpersoon")
    mtype = model.get("aanmelding", "1.0")
    with pytest.raises(ValidationFailed):
        model.validate_payload(mtype, element)
    model.validate_payload(mtype, element, allow_test_numbers=True)


@pytest.mark.parametrize(
    ("mtype", "version", "example", "subject"),
    [
        ("pip", "1.0", "valid-b1-route", ("BSN", "908301662")),
        ("aanmelding", "1.0", "valid-bisnummer", ("INSZ", "78252208796")),
        ("ontheemde-registratie", "1.0", "valid-registratie", ("INSZ", "03070245613")),
        ("monitoring", "1.0", "valid-kwartaal", None),
    ],
)
def test_subject_of_finds_the_person_or_none_for_aggregates(
    schemas_dir: Path, model: InfoModel, mtype: str, version: str, example: str, subject: tuple[str, str] | None
) -> None:
    t = model.get(mtype, version)
    assert model.subject_of(t, _load(schemas_dir, version, mtype, example)) == subject
    assert t.aggregated is (subject is None)


def test_unknown_type_and_version_say_what_exists(model: InfoModel) -> None:
    with pytest.raises(UnknownMessageType, match=r"1\.0, 1\.1"):
        model.get("pip", "2.0")
    with pytest.raises(UnknownMessageType, match="klantprofiel"):
        model.get("klantprofiel2", "1.0")


@pytest.mark.parametrize("key", ["pip@1.0", "pip@1.1", "monitoring@1.0", "ontheemde-registratie@1.0"])
def test_generated_json_schema_is_valid_draft_2020_12(model: InfoModel, key: str) -> None:
    name, version = key.split("@")
    schema = model.json_schema(model.get(name, version))
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$id"] == f"urn:knooppunt:inburgering:1:{name}:{version}"
    json.dumps(schema)  # serialisable as it is


def test_json_schema_states_choices_lists_and_code_lists(model: InfoModel) -> None:
    schema = model.json_schema(model.get("pip", "1.0"))
    assert schema["required"] == ["persoon", "gemeentecode", "vastgesteldOp", "leerroute"]
    assert schema["properties"]["afspraak"]["maxItems"] == 10
    assert schema["$defs"]["Leerroute"]["enum"] == ["B1", "ONDERWIJS", "Z"]
    assert {"anyOf": [{"required": ["insz"]}, {"required": ["bsn"]}]} in schema["$defs"]["Persoonsidentificatie"][
        "allOf"
    ]


def test_json_schema_does_not_change_the_cached_copy(model: InfoModel) -> None:
    mtype = model.get("pip", "1.0")
    before = copy.deepcopy(model.json_schema(mtype))
    model.json_errors(mtype, {"x": 1})
    assert model.json_schema(mtype) == before


@pytest.mark.parametrize(
    "key", [f"{t.name}@{t.version}" for t in InfoModel(Path(__file__).resolve().parents[2] / "schemas").types()]
)
def test_standalone_xsd_compiles_alone_and_validates_the_examples(model: InfoModel, key: str) -> None:
    name, version = key.split("@")
    mtype = model.get(name, version)
    xsd = model.standalone_xsd(mtype)
    assert b"schemaLocation" not in xsd
    schema = etree.XMLSchema(etree.fromstring(xsd))
    for example in (mtype.file.parent / "examples" / name).glob("valid-*.xml"):
        assert schema.validate(etree.parse(str(example))), example


def test_business_rules_are_published_in_the_json_schema(model: InfoModel) -> None:
    rules = model.json_schema(model.get("handhaving", "1.0"))["x-knooppunt-rules"]
    assert {"boete-heeft-bedrag", "verlenging-heeft-termijn", "periode-einde-na-begin"} <= {r["id"] for r in rules}


def test_business_rules_wait_for_a_structurally_valid_payload(schemas_dir: Path, model: InfoModel) -> None:
    element = _load(schemas_dir, "1.0", "handhaving", "valid-boete")
    element.remove(element.find(f"{NS}boetebedrag"))
    element.find(f"{NS}overtreding").text = "ONBEKEND"
    with pytest.raises(ValidationFailed) as caught:
        model.validate_payload(model.get("handhaving", "1.0"), element)
    assert [(p.name, p.code) for p in caught.value.invalid_params] == [("/Handhaving/overtreding", "enumeration")]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"id": "x", "test": "k:a[", "message": "m"}, "rule x"),
        ({"test": "true()", "message": "m"}, "rule without id"),
    ],
)
def test_a_broken_rule_in_a_catalog_does_not_load(tmp_path: Path, schemas_dir: Path, rule: dict, message: str) -> None:
    shutil.copytree(schemas_dir, tmp_path / "schemas", ignore=shutil.ignore_patterns("examples"))
    catalog = tmp_path / "schemas" / "inburgering" / "1.0" / "catalog.yaml"
    spec = yaml.safe_load(catalog.read_text(encoding="utf-8"))
    spec["types"]["pip"]["rules"] = [rule]
    catalog.write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigurationError, match=message):
        InfoModel(tmp_path / "schemas")


def test_every_code_list_is_a_named_type(model: InfoModel) -> None:
    """Anonymous enumerations would not show up as code lists in the docs."""
    for mtype in model.types():
        root = model.release_of(mtype).conversion_schema().elements[mtype.element]
        for element in root.iter():
            xsd_type = element.type
            if xsd_type.is_simple() and getattr(xsd_type, "enumeration", None):
                assert xsd_type.is_global(), f"{mtype.name}: {element.name} has an anonymous code list"


def test_validation_from_many_threads_keeps_each_callers_errors(schemas_dir: Path, model: InfoModel) -> None:
    from concurrent.futures import ThreadPoolExecutor

    mtype = model.get("pip", "1.0")
    valid = _load(schemas_dir, "1.0", "pip", "valid-b1-route")
    invalid = _load(schemas_dir, "1.0", "pip", "invalid-leerroute")

    def check(i: int) -> list[tuple[str, str]]:
        try:
            model.validate_payload(mtype, invalid if i % 2 else valid)
        except ValidationFailed as exc:
            return [(p.name, p.code) for p in exc.invalid_params]
        return []

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(check, range(200)))
    assert all(r == ([("/Pip/leerroute", "enumeration")] if i % 2 else []) for i, r in enumerate(results))
