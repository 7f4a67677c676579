"""Data minimisation on the ingest path: ``fields_outside`` prunes its walk, and must name
exactly the paths the plain definition names (every payload path no listed field allows)."""

from __future__ import annotations

import random

from lxml import etree

from hub.infomodel import InfoModel
from hub.protocols import _allowed, _paths, fields_outside
from hub.settings import ROOT


def _by_definition(payload: etree._Element, fields: tuple[str, ...]) -> list[str]:
    return sorted({p for p, _ in _paths(payload) if not _allowed(p, fields)})


def test_fields_outside_names_what_the_definition_names_for_every_example() -> None:
    model = InfoModel(ROOT / "schemas")
    rnd = random.Random(20261124)
    checked = 0
    for example in model.examples():
        if example.path.suffix != ".xml":
            continue
        payload = etree.parse(str(example.path)).getroot()
        paths = [p for p, _ in _paths(payload)]
        # parents and leaves as listed fields, a few at a time, plus none and all
        choices = [(), tuple(paths)] + [tuple(rnd.sample(paths, min(len(paths), rnd.randint(1, 5)))) for _ in range(30)]
        for fields in choices:
            assert fields_outside(payload, fields) == _by_definition(payload, fields), (example.path, fields)
            checked += 1
    assert checked > 500


def test_a_field_outside_the_protocol_is_named_with_everything_below_it() -> None:
    payload = etree.fromstring(b"<p><a><b>1</b><c><d>2</d></c></a><e>3</e></p>")
    assert fields_outside(payload, ("e",)) == ["a", "a/b", "a/c", "a/c/d"]
    assert fields_outside(payload, ("a/c/d", "e")) == ["a/b"]
    assert fields_outside(payload, ("a", "e")) == []
