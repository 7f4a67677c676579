#!/usr/bin/env python3
"""Check a Knooppunt audit export offline, with nothing but the hub's public key.

    python tools/verify_audit_export.py --public-key KEY export.json

KEY is the raw Ed25519 public key in base64 (``publicKey`` of
/v1/audit/public-key) or a path to its PEM file. Needs Python 3.11+ and the
``cryptography`` package; it imports nothing from the hub on purpose.

It checks that:
1. the checkpoint note is signed by that key (C2SP signed note, Ed25519);
2. every record's hash is SHA-256(prev_hash || the record's fields as
   sorted, compact JSON), and each record links to the one before it;
3. every record's inclusion proof leads to the checkpoint's root (RFC 9162 2.1.3.2);
4. the previous checkpoint, when present, is signed too and the consistency
   proof shows the later tree extends it (RFC 9162 2.1.4.2).

Exit status 0 when all holds, 1 when something does not (printed), 2 for usage errors.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

HASHED = (
    "seq", "event", "occurred_at", "status", "trace_id", "span_id", "parent_span_id", "message_id",
    "message_type", "sender", "receiver", "actor", "protocol_id", "subject_type", "subject_hash", "detail",
)  # fmt: skip
SIG_PREFIX = "\u2014 "


class InvalidExportError(Exception):
    """The export does not verify."""


def node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(lh: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> bool:
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, lh
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes, proof: list[bytes]) -> bool:
    if not 0 <= first <= second:
        return False
    if first == second:
        return not proof and first_root == second_root
    if first == 0:
        return not proof
    if not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node(c, fr), node(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_root and sr == second_root


def load_key(text: str) -> tuple[Ed25519PublicKey, bytes]:
    path = Path(text)
    if path.is_file():
        key = serialization.load_pem_public_key(path.read_bytes())
        if not isinstance(key, Ed25519PublicKey):
            raise SystemExit("the PEM key is not an Ed25519 public key")
    else:
        try:
            raw = base64.b64decode(text, validate=True)
            key = Ed25519PublicKey.from_public_bytes(raw)
        except ValueError as exc:
            raise SystemExit(f"--public-key is neither a PEM file nor a base64 Ed25519 key: {exc}") from exc
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return key, raw


def check_note(note: str, key: Ed25519PublicKey, raw_key: bytes) -> tuple[str, int, bytes]:
    """Verify a signed checkpoint note; returns (origin, size, root)."""
    cut = note.find("\n\n")
    if cut < 0:
        raise InvalidExportError("the checkpoint note has no signature block")
    body = note[: cut + 1]
    lines = body.split("\n")
    if len(lines) < 4:
        raise InvalidExportError("the checkpoint note is too short")
    origin = lines[0]
    try:
        size = int(lines[1])
        root = base64.b64decode(lines[2], validate=True)
    except ValueError as exc:
        raise InvalidExportError(f"malformed checkpoint: {exc}") from exc
    key_id = hashlib.sha256(origin.encode() + b"\n\x01" + raw_key).digest()[:4]
    for line in note[cut + 2 :].splitlines():
        if not line.startswith(SIG_PREFIX):
            continue
        parts = line[len(SIG_PREFIX) :].split(" ")
        if len(parts) != 2 or parts[0] != origin:
            continue
        try:
            sig = base64.b64decode(parts[1], validate=True)
        except ValueError:
            continue
        if sig[:4] != key_id:
            continue
        try:
            key.verify(sig[4:], body.encode())
        except InvalidSignature as exc:
            raise InvalidExportError("the checkpoint signature does not verify with this key") from exc
        return origin, size, root
    raise InvalidExportError("the checkpoint carries no signature by this key")


def record_hash(record: dict[str, object]) -> str:
    body = {k: record.get(k) for k in HASHED}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(str(record["prev_hash"]).encode() + canonical.encode()).hexdigest()


def verify_export(doc: dict[str, object], key: Ed25519PublicKey, raw_key: bytes) -> list[str]:
    """Every check passed, as lines to print; raises InvalidExportError at the first failure."""
    if doc.get("format") != "knooppunt-audit-export/1":
        raise InvalidExportError(f"unknown format {doc.get('format')!r}")
    cp = doc["checkpoint"]
    if not isinstance(cp, dict):
        raise InvalidExportError("no checkpoint")
    origin, size, root = check_note(str(cp["note"]), key, raw_key)
    done = [f"checkpoint signed by {origin}: size {size}, root {base64.b64encode(root).decode()}"]
    records = doc["records"]
    if not isinstance(records, list) or not records:
        raise InvalidExportError("no records")
    rng = doc["range"]
    if not isinstance(rng, dict):
        raise InvalidExportError("no range")
    prev_hash: str | None = None
    expected = int(rng["first"])
    for item in records:
        rec = item["record"]
        seq = rec["seq"]
        if seq != expected:
            raise InvalidExportError(f"record {expected} is missing from the export (found {seq})")
        if item["leafIndex"] != seq - 1:
            raise InvalidExportError(f"record {seq}: leaf index {item['leafIndex']} should be {seq - 1}")
        if prev_hash is not None and rec["prev_hash"] != prev_hash:
            raise InvalidExportError(f"record {seq} does not link to record {seq - 1}")
        if record_hash(rec) != rec["hash"]:
            raise InvalidExportError(f"record {seq}: its content does not match its hash")
        lh = hashlib.sha256(b"\x00" + bytes.fromhex(rec["hash"])).digest()
        proof = [base64.b64decode(p) for p in item["inclusionProof"]]
        if not verify_inclusion(lh, seq - 1, size, proof, root):
            raise InvalidExportError(f"record {seq}: the inclusion proof does not lead to the signed root")
        prev_hash = rec["hash"]
        expected += 1
    if expected - 1 != int(rng["last"]):
        raise InvalidExportError(f"the export stops at {expected - 1}, not at {rng['last']}")
    done.append(f"records {rng['first']}..{rng['last']}: hashes, links and inclusion proofs verify")
    previous = doc.get("previousCheckpoint")
    if isinstance(previous, dict):
        p_origin, p_size, p_root = check_note(str(previous["note"]), key, raw_key)
        if p_origin != origin:
            raise InvalidExportError("the previous checkpoint is from another log")
        proof = [base64.b64decode(p) for p in doc.get("consistencyProof") or []]  # type: ignore[union-attr]
        if not verify_consistency(p_size, size, p_root, root, proof):
            raise InvalidExportError(
                f"the tree at {size} is not an append-only extension of the checkpoint at {p_size}"
            )
        done.append(f"consistency: size {size} extends the signed checkpoint at size {p_size}")
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify a Knooppunt audit export offline.")
    parser.add_argument("--public-key", required=True, help="base64 raw Ed25519 key or a PEM file")
    parser.add_argument("export", type=Path)
    args = parser.parse_args(argv)
    key, raw = load_key(args.public_key)
    try:
        doc = json.loads(args.export.read_text(encoding="utf-8"))
        for line in verify_export(doc, key, raw):
            print(f"ok: {line}")
    except InvalidExportError as exc:
        print(f"INVALID: {exc}")
        return 1
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        print(f"INVALID: malformed export ({exc.__class__.__name__}: {exc})")
        return 1
    print("the export verifies")
    return 0


if __name__ == "__main__":
    sys.exit(main())
