"""The published contracts: committed copies match the code, and the OpenAPI document
passes the NLGov API Design Rules linter with zero errors."""

from __future__ import annotations

import json
import subprocess

from hub.api import contracts
from hub.settings import ROOT
from tests.conftest import SHARED


def test_committed_openapi_and_wsdl_match_the_code() -> None:
    rendered = contracts.render()
    for path, text in rendered.items():
        assert path.read_text(encoding="utf-8") == text, f"{path.name} drifted: run `make openapi`"


def test_openapi_passes_the_nlgov_design_rules() -> None:
    spectral = ROOT / ".tools" / "node_modules" / ".bin" / "spectral"
    assert spectral.exists(), "spectral is installed by `make test` (npm); run it through make"
    result = subprocess.run(
        [str(spectral), "lint", "-r", str(SHARED / "lint" / "adr-ruleset.yaml"), "-f", "json", str(contracts.OPENAPI)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    findings = json.loads(result.stdout or "[]")
    errors = [f for f in findings if f["severity"] == 0]
    assert errors == [], errors


def test_openapi_keeps_personal_numbers_out_of_urls() -> None:
    spec = json.loads(contracts.OPENAPI.read_text(encoding="utf-8"))
    for path, item in spec["paths"].items():
        for op in item.values():
            for param in op.get("parameters", []):
                assert param["name"].lower() not in {"insz", "bsn"}, (path, param)
