"""Every example in schemas/: valid ones pass both routes and round-trip; invalid ones
give exactly the errors their .expect.yaml states (field path and rule)."""

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from lxml import etree

from hub.errors import ValidationFailed
from hub.infomodel import InfoModel, _xpath_to_pointer

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
VALID = sorted(SCHEMAS.glob("*/*/examples/*/valid-*.xml"))
INVALID = sorted(SCHEMAS.glob("*/*/examples/*/invalid-*.xml"))


def _id(path: Path) -> str:
    return f"{path.parts[-4]}/{path.parent.name}/{path.stem}"


def _type_of(model: InfoModel, path: Path):
    return model.get(path.parent.name, path.parts[-4])


def _c14n(element: etree._Element) -> bytes:
    return etree.tostring(element, method="c14n2", strip_text=True)


def test_every_type_has_a_valid_and_several_invalid_examples(model: InfoModel) -> None:
    for mtype in model.types():
        folder = mtype.file.parent / "examples" / mtype.name
        assert list(folder.glob("valid-*.xml")), f"{mtype.name} {mtype.version} has no valid example"
        assert len(list(folder.glob("invalid-*.xml"))) >= 2, f"{mtype.name} {mtype.version} needs invalid examples"
        for invalid in folder.glob("invalid-*.xml"):
            assert invalid.with_suffix(".expect.yaml").is_file(), f"{invalid} has no .expect.yaml"


@pytest.mark.parametrize("path", VALID, ids=_id)
def test_valid_example_passes_as_xml_and_as_json_and_round_trips(model: InfoModel, path: Path) -> None:
    mtype = _type_of(model, path)
    element = etree.parse(str(path)).getroot()
    model.validate_payload(mtype, element)

    data = model.xml_to_json(mtype, element)
    committed = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    assert data == committed, (
        f"{path.with_suffix('.json')} drifted: regenerate with python -m hub.infomodel_docs --write"
    )
    jsonschema.Draft202012Validator(model.json_schema(mtype)).validate(committed)

    back = model.validate_json(mtype, committed)
    assert _c14n(back) == _c14n(element)
    assert model.xml_to_json(mtype, back) == committed


@pytest.mark.parametrize("path", INVALID, ids=_id)
def test_invalid_example_gives_exactly_its_stated_errors(model: InfoModel, path: Path) -> None:
    mtype = _type_of(model, path)
    expect = yaml.safe_load(path.with_suffix(".expect.yaml").read_text(encoding="utf-8"))
    element = etree.parse(str(path)).getroot()

    with pytest.raises(ValidationFailed) as caught:
        model.validate_payload(mtype, element)
    got = sorted((p.name, p.code) for p in caught.value.invalid_params)
    assert got == sorted((e["path"], e["rule"]) for e in expect["errors"])
    assert all(p.reason for p in caught.value.invalid_params)

    json_expect = expect.get(
        "json", [{"path": _xpath_to_pointer(e["path"]), "rule": e["rule"]} for e in expect["errors"]]
    )
    example = next(e for e in model.examples(mtype) if e.path == path)
    assert example.errors == tuple((e["path"], e["rule"]) for e in expect["errors"])
    if json_expect is None:  # the error cannot be written in JSON (e.g. a non-boolean in a boolean field)
        assert example.json_errors is None
        return
    assert example.json_errors == tuple((e["path"], e["rule"]) for e in json_expect)
    data = model.xml_to_json(mtype, element)
    for e in json_expect:  # the converter drops undeclared elements; a JSON client would send them as keys
        if e["rule"] == "unexpected":
            _put(data, e["path"], element.xpath("string(" + _xpath_of(e["path"]) + ")"))
    with pytest.raises(ValidationFailed) as caught_json:
        model.validate_json(mtype, data)
    got_json = sorted((p.name, p.code) for p in caught_json.value.invalid_params)
    assert got_json == sorted((e["path"], e["rule"]) for e in json_expect)


def _put(data: dict, pointer: str, value: str) -> None:
    *parents, last = pointer.split("/")[2:]
    for step in parents:
        data = data[int(step)] if isinstance(data, list) else data[step]
    data[last] = value


def _xpath_of(pointer: str) -> str:
    steps = pointer.split("/")[2:]
    return "/*/" + "/".join(f"*[local-name()='{s}']" for s in steps)


def test_examples_lists_every_file(model: InfoModel) -> None:
    listed = {e.path for e in model.examples()}
    assert listed == set(VALID) | set(INVALID)
    assert sum(e.valid for e in model.examples()) == len(VALID)


def test_the_combined_rule_check_agrees_with_the_rules_one_by_one(model: InfoModel) -> None:
    """Valid payloads are checked by one XPath holding every rule of their type; on every
    example, valid or not, it must say exactly what running the rules one by one says."""
    checked = 0
    for path in VALID + INVALID:
        mtype = _type_of(model, path)
        if not mtype.rules:
            continue
        assert mtype.rules_hold is not None, f"{mtype.name} {mtype.version}: the rules do not combine"
        element = etree.parse(str(path)).getroot()
        one_by_one = not any(rule.violations(element) for rule in mtype.rules)
        assert (mtype.rules_hold(element) is True) == one_by_one, path
        checked += 1
    assert checked > 20
    broken = [p for p in INVALID if any(e["rule"] in {r.id for r in _type_of(model, p).rules} for e in _expect(p))]
    assert broken, "some examples break a business rule"


def _expect(path: Path) -> list[dict]:
    return yaml.safe_load(path.with_suffix(".expect.yaml").read_text(encoding="utf-8"))["errors"]
