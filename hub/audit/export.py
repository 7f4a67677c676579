"""Export a range of audit records with the proofs a third party checks offline.

The export is one JSON document (``format: knooppunt-audit-export/1``)::

    {
      "format": "knooppunt-audit-export/1",
      "origin": "knooppunt.local/audit",
      "range": {"first": 101, "last": 200},
      "checkpoint": {"treeSize": 5000, "rootHash": "<b64>", "note": "<signed note>", ...},
      "records": [
        {"leafIndex": 100,
         "record": {<the hashed fields, snake_case, occurred_at as hashed>, "prev_hash": ..., "hash": ...},
         "inclusionProof": ["<b64>", ...]},
        ...
      ],
      "previousCheckpoint": {...} | null,
      "consistencyProof": ["<b64>", ...]
    }

Each record's ``hash`` is recomputed from its fields (``SHA-256(prev_hash ||
sorted compact JSON)``), its leaf is proven under the signed checkpoint's
root, and the consistency proof shows that the checkpoint extends the
earlier one the reader may already trust. ``tools/verify_audit_export.py``
checks all of it with the standard library and ``cryptography`` only.
Records hold the subject's keyed hash, never a national number.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
from sqlalchemy import Connection, func, select

from hub.audit.chain import HASHED_FIELDS, ts_text
from hub.audit.checkpoint import (
    Checkpoint,
    CheckpointSigner,
    checkpoint_by_id,
    checkpoint_covering,
    latest_checkpoint,
)
from hub.audit.merkle import consistency_proof, inclusion_proof
from hub.audit.tree import AuditIntegrityError, TreeReader
from hub.errors import InputError, NotFound
from hub.store.tables import audit_events

FORMAT = "knooppunt-audit-export/1"
MAX_EXPORT = 50_000


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def export_range(
    conn: Connection,
    first: int,
    last: int,
    signer: CheckpointSigner | None = None,
    *,
    checkpoint_id: int | None = None,
    since_checkpoint_id: int | None = None,
) -> dict[str, Any]:
    """Records ``first..last`` (seq, inclusive), each with its inclusion proof.

    Args:
        signer: only to name the public key in the document (the reader must get the key elsewhere).
        checkpoint_id: prove against this checkpoint; default the latest (it must cover ``last``).
        since_checkpoint_id: the earlier checkpoint for the consistency proof;
            default the largest one below the chosen checkpoint.

    Raises:
        InputError: a bad range, or no signed checkpoint covers it yet (run ``audit checkpoint``).
        NotFound: an unknown checkpoint id.
        AuditIntegrityError: records in the range are missing.
    """
    if first < 1 or last < first:
        raise InputError(f"invalid range {first}..{last}")
    if last - first + 1 > MAX_EXPORT:
        raise InputError(f"an export holds at most {MAX_EXPORT} records")
    cp: Checkpoint | None
    if checkpoint_id is not None:
        cp = checkpoint_by_id(conn, checkpoint_id)
        if cp is None:
            raise NotFound(f"no checkpoint {checkpoint_id}")
    else:
        cp = latest_checkpoint(conn)
    if cp is None or cp.size < last:
        raise InputError(f"no signed checkpoint covers record {last} yet; create one first")
    previous: Checkpoint | None
    if since_checkpoint_id is not None:
        previous = checkpoint_by_id(conn, since_checkpoint_id)
        if previous is None:
            raise NotFound(f"no checkpoint {since_checkpoint_id}")
        if previous.size > cp.size:
            raise InputError("the earlier checkpoint must not be larger than the one proven against")
    else:
        previous = checkpoint_covering(conn, cp.size, before=True)

    rows = (
        conn.execute(
            select(audit_events)
            .where(audit_events.c.seq >= first, audit_events.c.seq <= last)
            .order_by(audit_events.c.seq)
        )
        .mappings()
        .all()
    )
    if len(rows) != last - first + 1:
        raise AuditIntegrityError(f"records {first}..{last} are not all present")
    reader = TreeReader(conn)
    items: list[dict[str, Any]] = []
    for row in rows:
        record = {k: row[k] for k in HASHED_FIELDS}
        record["occurred_at"] = ts_text(row["occurred_at"])
        if isinstance(record["detail"], str | bytes):
            record["detail"] = orjson.loads(record["detail"])
        record["prev_hash"] = row["prev_hash"]
        record["hash"] = row["hash"]
        index = int(row["seq"]) - 1
        proof = inclusion_proof(index, cp.size, reader.range_hash)
        items.append({"leafIndex": index, "record": record, "inclusionProof": [_b64(p) for p in proof]})
    doc: dict[str, Any] = {
        "format": FORMAT,
        "origin": cp.origin,
        "range": {"first": first, "last": last},
        "checkpoint": cp.as_json(),
        "records": items,
        "previousCheckpoint": None,
        "consistencyProof": [],
    }
    if signer is not None:
        doc["publicKey"] = signer.public_key_b64()
    if previous is not None:
        doc["previousCheckpoint"] = previous.as_json()
        doc["consistencyProof"] = [_b64(p) for p in consistency_proof(previous.size, cp.size, reader.range_hash)]
    return doc


def export_json(conn: Connection, first: int, last: int, signer: CheckpointSigner | None = None, **kw: Any) -> bytes:
    """:func:`export_range` as indented UTF-8 JSON bytes (what the CLI writes and the API serves)."""
    return orjson.dumps(export_range(conn, first, last, signer, **kw), option=orjson.OPT_INDENT_2)


def inclusion_json(conn: Connection, seq: int, tree_size: int | None = None) -> dict[str, Any]:
    """An inclusion proof for record ``seq`` in the tree of ``tree_size`` (default: the latest checkpoint).

    The CT-style answer for ``GET /v1/audit/proofs/inclusion``: check it with
    ``hub.audit.merkle.verify_inclusion`` against a signed root of that size.

    Raises:
        InputError: ``seq`` is not in a tree of that size, or no checkpoint exists yet.
    """
    if tree_size is None:
        cp = latest_checkpoint(conn)
        if cp is None:
            raise InputError("no signed checkpoint yet; create one first")
        tree_size = cp.size
    if not 1 <= seq <= tree_size:
        raise InputError(f"record {seq} is not in a tree of size {tree_size}")
    reader = TreeReader(conn)
    leaf_data = conn.execute(select(audit_events.c.hash).where(audit_events.c.seq == seq)).scalar()
    if leaf_data is None:
        raise AuditIntegrityError(f"record {seq} is missing")
    return {
        "seq": seq,
        "leafIndex": seq - 1,
        "treeSize": tree_size,
        "recordHash": leaf_data,
        "rootHash": _b64(reader.root(tree_size)),
        "auditPath": [_b64(p) for p in inclusion_proof(seq - 1, tree_size, reader.range_hash)],
    }


def consistency_json(conn: Connection, first: int, second: int) -> dict[str, Any]:
    """A consistency proof between tree sizes ``first <= second`` (``GET /v1/audit/proofs/consistency``).

    Raises:
        InputError: the sizes are out of order or beyond the log.
    """
    size = int(conn.execute(select(func.coalesce(func.max(audit_events.c.seq), 0))).scalar_one())
    if not 0 <= first <= second <= size:
        raise InputError(f"no consistency proof from {first} to {second} in a log of {size} records")
    reader = TreeReader(conn)
    return {
        "first": first,
        "second": second,
        "firstRootHash": _b64(reader.root(first)),
        "secondRootHash": _b64(reader.root(second)),
        "proof": [_b64(p) for p in consistency_proof(first, second, reader.range_hash)],
    }
