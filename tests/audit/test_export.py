from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine

from hub.audit.checkpoint import CheckpointSigner, checkpoint_unit
from hub.audit.export import consistency_json, export_json, export_range, inclusion_json
from hub.audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from hub.errors import InputError
from hub.store.database import Writer

from .conftest import HASHER, INSZ_A, fill

TOOL = Path(__file__).resolve().parents[2] / "tools" / "verify_audit_export.py"


def run_tool(export: Path, key: str) -> subprocess.CompletedProcess[str]:
    # -I: isolated mode, so the tool cannot import the hub even by accident.
    return subprocess.run(
        [sys.executable, "-I", str(TOOL), "--public-key", key, str(export)],
        capture_output=True,
        text=True,
        check=False,
        cwd=export.parent,
    )


@pytest.fixture
def exported(engine: Engine, writer: Writer, signer: CheckpointSigner, tmp_path: Path) -> Path:
    fill(writer, 270)
    first = writer.run_sync(checkpoint_unit(signer))
    fill(writer, 50, start=270)
    writer.run_sync(checkpoint_unit(signer))
    with engine.connect() as conn:
        data = export_json(conn, 250, 300, signer, since_checkpoint_id=first.id)
    path = tmp_path / "export.json"
    path.write_bytes(data)
    return path


def test_an_export_verifies_offline_with_the_public_key(exported: Path, signer: CheckpointSigner) -> None:
    done = run_tool(exported, signer.public_key_b64())
    assert done.returncode == 0, done.stdout + done.stderr
    assert "records 250..300" in done.stdout
    assert "extends the signed checkpoint at size 270" in done.stdout


def test_the_offline_verifier_takes_a_pem_key(exported: Path, signer: CheckpointSigner, tmp_path: Path) -> None:
    pem = tmp_path / "audit-key.pem"
    pem.write_text(signer.public_key_pem())
    assert run_tool(exported, str(pem)).returncode == 0


def test_the_export_holds_no_national_number(exported: Path) -> None:
    text = exported.read_text()
    assert INSZ_A not in text
    assert HASHER("INSZ", INSZ_A) in text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["records"][3]["record"].__setitem__("receiver", "ind"), "record 253: its content"),
        (
            lambda d: d["records"][3]["inclusionProof"].__setitem__(0, d["records"][3]["inclusionProof"][1]),
            "inclusion proof",
        ),
        (lambda d: d["records"].pop(5), "record 255 is missing"),
        (
            lambda d: d["checkpoint"].__setitem__("note", d["checkpoint"]["note"].replace("\n320\n", "\n321\n")),
            "signature",
        ),
        (lambda d: d["consistencyProof"].reverse(), "append-only"),
        (lambda d: d["records"][0]["record"]["detail"].__setitem__("n", 1), "content"),
    ],
)
def test_an_altered_export_fails_offline(exported: Path, signer: CheckpointSigner, change, message: str) -> None:  # type: ignore[no-untyped-def]
    doc = json.loads(exported.read_text())
    change(doc)
    exported.write_text(json.dumps(doc))
    done = run_tool(exported, signer.public_key_b64())
    assert done.returncode == 1
    assert "INVALID" in done.stdout
    assert message in done.stdout, done.stdout


def test_another_key_fails_offline(exported: Path) -> None:
    other = CheckpointSigner(b"\x07" * 32, "knooppunt.local/audit")
    done = run_tool(exported, other.public_key_b64())
    assert done.returncode == 1
    assert "no signature by this key" in done.stdout


def test_an_export_needs_a_covering_checkpoint(engine: Engine, writer: Writer, signer: CheckpointSigner) -> None:
    fill(writer, 20)
    writer.run_sync(checkpoint_unit(signer))
    fill(writer, 5, start=20)
    with engine.connect() as conn:
        with pytest.raises(InputError, match="no signed checkpoint covers record 25"):
            export_range(conn, 1, 25)
        doc = export_range(conn, 1, 20)
    assert doc["checkpoint"]["treeSize"] == 20
    assert doc["previousCheckpoint"] is None


def test_single_proofs_verify_against_signed_roots(engine: Engine, writer: Writer, signer: CheckpointSigner) -> None:
    fill(writer, 300)
    first = writer.run_sync(checkpoint_unit(signer))
    fill(writer, 77, start=300)
    second = writer.run_sync(checkpoint_unit(signer))
    with engine.connect() as conn:
        inc = inclusion_json(conn, 123)
        con = consistency_json(conn, first.size, second.size)
        with pytest.raises(InputError):
            inclusion_json(conn, 400)
        with pytest.raises(InputError):
            consistency_json(conn, 10, 5)
    assert inc["treeSize"] == second.size
    assert base64.b64decode(inc["rootHash"]) == second.root
    lh = leaf_hash(bytes.fromhex(inc["recordHash"]))
    path = [base64.b64decode(p) for p in inc["auditPath"]]
    assert verify_inclusion(lh, 122, second.size, path, second.root)
    proof = [base64.b64decode(p) for p in con["proof"]]
    assert verify_consistency(first.size, second.size, first.root, second.root, proof)
