"""docs/information-model.md and the examples' JSON forms are generated: they must not drift."""

from pathlib import Path

from hub.infomodel import InfoModel
from hub.infomodel_docs import example_jsons, main, render

REPO = Path(__file__).resolve().parents[2]


def test_committed_doc_matches_the_schemas(model: InfoModel) -> None:
    committed = (REPO / "docs" / "information-model.md").read_text(encoding="utf-8")
    assert committed == render(model), "docs/information-model.md drifted: run python -m hub.infomodel_docs --write"


def test_committed_example_jsons_match_the_schemas(model: InfoModel) -> None:
    for path, text in example_jsons(model).items():
        assert path.read_text(encoding="utf-8") == text, f"{path} drifted: run python -m hub.infomodel_docs --write"


def test_doc_lists_every_type_with_roles_fields_and_code_lists(model: InfoModel) -> None:
    doc = render(model)
    for mtype in model.types():
        assert f"## {mtype.name} {mtype.version}" in doc
    assert "| `persoon/nationaliteit` | 0..5 | Landcode |" in doc
    assert "### Leerroute" in doc
    assert "`ONDERWIJS`" in doc
    assert "| centraal-register | wvg | `ontheemde/insz` |" in doc


def test_check_mode_fails_on_drift(tmp_path: Path, model: InfoModel) -> None:
    doc = tmp_path / "information-model.md"
    doc.write_text("# stale\n", encoding="utf-8")
    assert main(["--schemas", str(REPO / "schemas"), "--doc", str(doc), "--check"]) == 1
    doc.write_text(render(model), encoding="utf-8")
    assert main(["--schemas", str(REPO / "schemas"), "--doc", str(doc), "--check"]) == 0
