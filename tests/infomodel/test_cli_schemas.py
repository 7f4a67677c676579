"""`knooppunt schemas` through typer's CliRunner."""

import json
from pathlib import Path

from lxml import etree
from typer.testing import CliRunner

from hub.cli.schemas import app

runner = CliRunner()
EXAMPLES = Path(__file__).resolve().parents[2] / "schemas" / "inburgering"


def test_list_shows_every_type_and_version() -> None:
    result = runner.invoke(app, ["list"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    for name in ("klantprofiel", "ontheemde-registratie", "monitoring", "pip"):
        assert name in result.output
    assert "1.1" in result.output


def test_show_lists_fields_of_the_newest_version_by_default() -> None:
    result = runner.invoke(app, ["show", "pip"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "pip 1.1" in result.output
    assert "ontzorging/vasteLast" in result.output


def test_show_an_older_version_and_the_json_schema() -> None:
    result = runner.invoke(app, ["show", "pip", "--version", "1.0", "--format", "json"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.output)
    assert schema["$id"].endswith(":pip:1.0")
    assert "ontzorging" not in schema["properties"]


def test_show_xsd_is_self_contained() -> None:
    result = runner.invoke(app, ["show", "klantprofiel", "--format", "xsd"])
    assert result.exit_code == 0
    etree.XMLSchema(etree.fromstring(result.output.encode()))


def test_show_unknown_type_suggests_a_name() -> None:
    result = runner.invoke(app, ["show", "klantprofiel2"])
    assert result.exit_code == 2
    assert "klantprofiel" in result.output


def test_validate_valid_xml_and_json() -> None:
    xml = EXAMPLES / "1.0" / "examples" / "pip" / "valid-b1-route.xml"
    assert runner.invoke(app, ["validate", str(xml)]).exit_code == 0
    js = xml.with_suffix(".json")
    result = runner.invoke(app, ["validate", str(js), "--type", "pip", "--version", "1.0"])
    assert result.exit_code == 0, result.output
    assert "geldig pip 1.0" in result.output


def test_validate_infers_a_json_type_from_its_folder() -> None:
    js = EXAMPLES / "1.0" / "examples" / "klantprofiel" / "valid-minimaal.json"
    assert runner.invoke(app, ["validate", str(js)]).exit_code == 0


def test_validate_prints_every_error_and_exits_1(tmp_path: Path) -> None:
    source = EXAMPLES / "1.0" / "examples" / "pip" / "valid-b1-route.xml"
    text = (
        source.read_text(encoding="utf-8")
        .replace("<leerroute>B1", "<leerroute>A2")
        .replace("<gemeentecode>0363", "<gemeentecode>363")
    )
    bad = tmp_path / "bad.xml"
    bad.write_text(text, encoding="utf-8")
    result = runner.invoke(app, ["validate", str(bad), "--version", "1.0"])
    assert result.exit_code == 1
    assert "/Pip/leerroute  [enumeration]" in result.output
    assert "/Pip/gemeentecode  [pattern]" in result.output


def test_validate_json_errors_use_pointers(tmp_path: Path) -> None:
    data = json.loads((EXAMPLES / "1.0" / "examples" / "pip" / "valid-z-route.json").read_text(encoding="utf-8"))
    data["leerroute"] = "A2"
    data["extra"] = 1
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data), encoding="utf-8")
    result = runner.invoke(app, ["validate", str(bad), "--type", "pip", "--version", "1.0"])
    assert result.exit_code == 1
    assert "/payload/leerroute  [enumeration]" in result.output
    assert "/payload/extra  [unexpected]" in result.output


def test_validate_an_envelope_uses_its_type_and_version(tmp_path: Path) -> None:
    payload = (EXAMPLES / "1.1" / "examples" / "pip" / "valid-met-ontzorging.xml").read_bytes().split(b"?>", 1)[1]
    envelope = (
        b'<Envelope xmlns="urn:knooppunt:envelope:1"><header>'
        b"<messageId>6f1c2a4e-0b7d-4c1a-9e3f-2a5b8c7d9e01</messageId><type>pip</type><version>1.0</version>"
        b'<subject type="BSN">908301662</subject><purpose>nl-pip</purpose></header><payload>'
        + payload
        + b"</payload></Envelope>"
    )
    path = tmp_path / "envelope.xml"
    path.write_bytes(envelope)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1  # a 1.1 payload in a 1.0 envelope
    assert "/Envelope/payload/Pip/ontzorging  [unexpected]" in result.output


def test_convert_round_trips_xml_and_json(tmp_path: Path) -> None:
    xml = EXAMPLES / "1.0" / "examples" / "verhuizing" / "valid-warme-overdracht.xml"
    as_json = tmp_path / "verhuizing.json"
    result = runner.invoke(app, ["convert", str(xml), "--output", str(as_json)])
    assert result.exit_code == 0, result.output
    assert json.loads(as_json.read_text(encoding="utf-8")) == json.loads(xml.with_suffix(".json").read_text("utf-8"))
    back = runner.invoke(app, ["convert", str(as_json), "--type", "verhuizing"])
    assert back.exit_code == 0, back.output
    c14n = lambda b: etree.tostring(etree.fromstring(b), method="c14n2", strip_text=True)  # noqa: E731
    assert c14n(back.output.encode()) == c14n(xml.read_bytes())


def test_convert_json_without_type_outside_an_examples_folder_asks_for_it(tmp_path: Path) -> None:
    path = tmp_path / "payload.json"
    path.write_text("{}", encoding="utf-8")
    result = runner.invoke(app, ["convert", str(path)])
    assert result.exit_code == 2
    assert "--type" in result.output


def test_docs_check_passes_on_the_committed_doc_and_fails_on_a_stale_one(tmp_path: Path) -> None:
    assert runner.invoke(app, ["docs", "--check"]).exit_code == 0
    stale = tmp_path / "information-model.md"
    stale.write_text("# oud\n", encoding="utf-8")
    assert runner.invoke(app, ["docs", "--check", "--doc", str(stale)]).exit_code == 1
