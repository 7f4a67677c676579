"""Signed checkpoints of the audit tree (C2SP tlog-checkpoint in a signed note).

A checkpoint commits to the first ``size`` records: the Merkle tree head
(RFC 6962) over their hashes, signed with the hub's Ed25519 key. Its text::

    knooppunt.local/audit                      <- origin (KNOOPPUNT_AUDIT_ORIGIN)
    1048576                                    <- tree size
    q2bJ...=                                   <- base64 root hash
    chain 5f0c...e1                            <- hex hash of record ``size`` (the chain head)
    timestamp 2026-11-24T01:18:16.123456Z      <- when it was signed (UTC)

    — knooppunt.local/audit AbCd...==          <- key name, base64(key id || signature)

The body lines end in a newline; the signature covers the body. The key id
is the first 4 bytes of SHA-256(key name || "\\n" || 0x01 || public key), as
in the signed-note format, so standard note verifiers can check it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import structlog
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Connection, insert, select

from hub.audit.chain import GENESIS, utc
from hub.audit.merkle import consistency_proof, verify_consistency
from hub.audit.tree import AuditIntegrityError, TreeReader, tree_size, update_tree
from hub.errors import HubError
from hub.settings import Settings
from hub.store.tables import audit_checkpoints, audit_events

if TYPE_CHECKING:
    from hub.store.database import Tx, Writer

log = structlog.get_logger(__name__)

SIG_PREFIX = "\u2014 "


class CheckpointError(HubError):
    """A checkpoint note is malformed or its signature does not verify."""

    code = "checkpoint_invalid"
    status = 500
    title = "Ongeldig controlepunt"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """One signed tree head."""

    origin: str
    size: int
    root: bytes
    chain_hash: str
    timestamp: datetime
    key_id: str
    note: str
    id: int | None = None

    def as_json(self) -> dict[str, str | int | None]:
        """The checkpoint as the API and exports show it."""
        return {
            "id": self.id,
            "origin": self.origin,
            "treeSize": self.size,
            "rootHash": base64.b64encode(self.root).decode(),
            "chainHash": self.chain_hash,
            "timestamp": _ts(self.timestamp),
            "keyId": self.key_id,
            "note": self.note,
        }


def _ts(value: datetime) -> str:
    return utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def note_key_id(name: str, public_raw: bytes) -> bytes:
    """The signed-note key id: SHA-256(name || "\\n" || 0x01 || key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n\x01" + public_raw).digest()[:4]


class CheckpointSigner:
    """Signs checkpoint notes with the hub's Ed25519 key; exports the public half."""

    def __init__(self, seed: bytes, name: str) -> None:
        if len(seed) != 32:
            raise CheckpointError("an Ed25519 seed is 32 bytes")
        if not name or any(c.isspace() for c in name) or "+" in name:
            raise CheckpointError(f"key name {name!r} must be non-empty, without spaces or '+'")
        self.name = name
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        self.public_key: Ed25519PublicKey = self._key.public_key()
        self.public_raw = self.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.key_id = note_key_id(name, self.public_raw)

    @classmethod
    def from_settings(cls, settings: Settings) -> CheckpointSigner:
        """The signer configured by KNOOPPUNT_AUDIT_SIGNING_KEY and KNOOPPUNT_AUDIT_ORIGIN."""
        return cls(settings.audit_signing_seed, settings.audit_origin)

    def public_key_pem(self) -> str:
        """SubjectPublicKeyInfo PEM, for /v1/audit/public-key."""
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    def public_key_b64(self) -> str:
        """The raw 32-byte public key, base64."""
        return base64.b64encode(self.public_raw).decode()

    def verifier_key(self) -> str:
        """The signed-note verifier key: ``<name>+<hex key id>+<base64(0x01 || key)>``."""
        encoded = base64.b64encode(b"\x01" + self.public_raw).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    def public_key_document(self) -> dict[str, str]:
        """What /v1/audit/public-key publishes."""
        return {
            "algorithm": "Ed25519",
            "origin": self.name,
            "keyId": self.key_id.hex(),
            "publicKey": self.public_key_b64(),
            "pem": self.public_key_pem(),
            "verifierKey": self.verifier_key(),
        }

    def sign_note(self, body: str) -> str:
        """The signed note: body, a blank line, one signature line."""
        signature = self._key.sign(body.encode())
        return f"{body}\n{SIG_PREFIX}{self.name} {base64.b64encode(self.key_id + signature).decode()}\n"


def note_body(origin: str, size: int, root: bytes, chain_hash: str, timestamp: datetime) -> str:
    """The signed part of a checkpoint."""
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\nchain {chain_hash}\ntimestamp {_ts(timestamp)}\n"


def parse_note(note: str) -> Checkpoint:
    """Read a checkpoint note without checking its signature (see :func:`verify_note`)."""
    body, sep, sigs = note.partition("\n\n")
    if not sep or not body:
        raise CheckpointError("a checkpoint note has a body, a blank line and signatures")
    lines = body.split("\n")
    try:
        origin, size_text, root_text = lines[0], lines[1], lines[2]
        ext = dict(line.split(" ", 1) for line in lines[3:])
        size = int(size_text)
        root = base64.b64decode(root_text, validate=True)
        when = datetime.strptime(ext["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        chain_hash = ext["chain"]
    except (IndexError, KeyError, ValueError) as exc:
        raise CheckpointError(f"malformed checkpoint note: {exc}") from exc
    if size < 0 or len(root) != 32 or not size_text.isdigit():
        raise CheckpointError("malformed checkpoint note: size or root hash")
    key_id = ""
    for line in sigs.splitlines():
        if line.startswith(SIG_PREFIX):
            parts = line[len(SIG_PREFIX) :].split(" ")
            if len(parts) == 2:
                raw = base64.b64decode(parts[1] + "==")
                key_id = raw[:4].hex()
                break
    return Checkpoint(origin, size, root, chain_hash, when, key_id, note)


def verify_note(note: str, public_raw: bytes, name: str | None = None) -> Checkpoint:
    """Check a checkpoint note's signature by the key ``public_raw``; returns the checkpoint.

    Raises:
        CheckpointError: malformed, no signature by this key, or a bad signature.
    """
    cp = parse_note(note)
    name = name or cp.origin
    body = note[: note.index("\n\n") + 1]
    want = note_key_id(name, public_raw)
    key = Ed25519PublicKey.from_public_bytes(public_raw)
    for line in note[len(body) + 1 :].splitlines():
        if not line.startswith(SIG_PREFIX):
            continue
        parts = line[len(SIG_PREFIX) :].split(" ")
        if len(parts) != 2 or parts[0] != name:
            continue
        try:
            raw = base64.b64decode(parts[1], validate=True)
        except ValueError:
            continue
        if raw[:4] != want:
            continue
        try:
            key.verify(raw[4:], body.encode())
        except InvalidSignature as exc:
            raise CheckpointError("the checkpoint signature does not verify") from exc
        return cp
    raise CheckpointError(f"the checkpoint carries no signature by key {name}+{want.hex()}")


def _row_to_checkpoint(row: object) -> Checkpoint:
    cp = parse_note(row.note)  # type: ignore[attr-defined]
    return Checkpoint(cp.origin, cp.size, cp.root, cp.chain_hash, cp.timestamp, cp.key_id, cp.note, row.id)  # type: ignore[attr-defined]


def latest_checkpoint(conn: Connection) -> Checkpoint | None:
    """The checkpoint with the largest tree size (the newest among equals)."""
    row = conn.execute(
        select(audit_checkpoints.c.id, audit_checkpoints.c.note)
        .order_by(audit_checkpoints.c.tree_size.desc(), audit_checkpoints.c.id.desc())
        .limit(1)
    ).first()
    return None if row is None else _row_to_checkpoint(row)


def checkpoint_by_id(conn: Connection, checkpoint_id: int) -> Checkpoint | None:
    """One stored checkpoint."""
    row = conn.execute(
        select(audit_checkpoints.c.id, audit_checkpoints.c.note).where(audit_checkpoints.c.id == checkpoint_id)
    ).first()
    return None if row is None else _row_to_checkpoint(row)


def checkpoint_covering(conn: Connection, size: int, *, before: bool = False) -> Checkpoint | None:
    """The smallest checkpoint with at least ``size`` records, or with ``before``: the largest below ``size``."""
    q = select(audit_checkpoints.c.id, audit_checkpoints.c.note)
    if before:
        q = q.where(audit_checkpoints.c.tree_size < size).order_by(audit_checkpoints.c.tree_size.desc())
    else:
        q = q.where(audit_checkpoints.c.tree_size >= size).order_by(audit_checkpoints.c.tree_size)
    row = conn.execute(q.order_by(audit_checkpoints.c.id.desc()).limit(1)).first()
    return None if row is None else _row_to_checkpoint(row)


def all_checkpoints(conn: Connection) -> list[Checkpoint]:
    """Every stored checkpoint, by tree size."""
    rows = conn.execute(
        select(audit_checkpoints.c.id, audit_checkpoints.c.note).order_by(
            audit_checkpoints.c.tree_size, audit_checkpoints.c.id
        )
    ).all()
    return [_row_to_checkpoint(r) for r in rows]


def create_checkpoint(
    conn: Connection, signer: CheckpointSigner, *, now: datetime | None = None, only_if_grown: bool = False
) -> Checkpoint:
    """Sign the current tree head and store it; call inside a write transaction.

    The new head must be an append-only extension of the last signed one
    (checked with a consistency proof), so a rewritten log is never signed.
    With ``only_if_grown`` it returns the last checkpoint when no record was
    added since (the periodic job uses this).

    Raises:
        AuditIntegrityError: records are missing, or the log is not an extension of the last checkpoint.
    """
    size = tree_size(conn)
    previous = latest_checkpoint(conn)
    if only_if_grown and previous is not None and previous.size == size:
        return previous
    update_tree(conn, size)
    reader = TreeReader(conn)
    root = reader.root(size)
    if previous is not None:
        if previous.size > size:
            raise AuditIntegrityError(
                f"the log holds {size} records but checkpoint {previous.id} signed {previous.size}"
            )
        proof = consistency_proof(previous.size, size, reader.range_hash)
        if not verify_consistency(previous.size, size, previous.root, root, proof):
            raise AuditIntegrityError(
                f"the log is not an append-only extension of checkpoint {previous.id} (size {previous.size})"
            )
    chain_hash = GENESIS
    if size:
        chain_hash = str(conn.execute(select(audit_events.c.hash).where(audit_events.c.seq == size)).scalar_one())
    when = utc(now or datetime.now(UTC))
    note = signer.sign_note(note_body(signer.name, size, root, chain_hash, when))
    new_id = conn.execute(
        insert(audit_checkpoints).values(
            origin=signer.name,
            tree_size=size,
            root_hash=root.hex(),
            chain_hash=chain_hash,
            created_at=when,
            key_id=signer.key_id.hex(),
            note=note,
        )
    ).inserted_primary_key
    return Checkpoint(
        signer.name, size, root, chain_hash, when, signer.key_id.hex(), note, int(new_id[0]) if new_id else None
    )


def checkpoint_unit(signer: CheckpointSigner, *, only_if_grown: bool = False) -> Callable[[Tx], Checkpoint]:
    """:func:`create_checkpoint` as a writer unit: ``writer.run_sync(checkpoint_unit(signer))``.

    The periodic job passes ``only_if_grown=True`` so an idle hub does not pile up checkpoints.
    """

    def unit(tx: Tx) -> Checkpoint:
        # appenders take the head only when they flush: hold it so that no other process's
        # checkpoint (or records) land between reading the log's size and signing it
        tx.chain.lock_head()
        return create_checkpoint(tx.conn, signer, now=tx.now, only_if_grown=only_if_grown)

    return unit


async def checkpoint_periodically(writer: Writer, signer: CheckpointSigner, every_seconds: float) -> None:
    """Sign a checkpoint every ``every_seconds`` while the log grows; run it as a task, cancel it to stop.

    A failure (e.g. a tampered log that is no longer an extension of the last
    checkpoint) is logged as ``audit_checkpoint_failed`` and retried next round:
    the hub keeps serving, and ``audit verify`` names the damage.
    """
    while True:
        await asyncio.sleep(every_seconds)
        try:
            cp = await writer.submit(checkpoint_unit(signer, only_if_grown=True))
        except HubError as exc:
            log.error("audit_checkpoint_failed", code=exc.code, error=exc.detail)
            continue
        log.debug("audit_checkpoint_signed", size=cp.size, checkpoint_id=cp.id)


def integrity_status(conn: Connection, signer: CheckpointSigner | None = None) -> dict[str, object]:
    """What the DPO pages show next to the search: records, the last signed checkpoint, unsigned tail.

    Cheap (two indexed reads and one signature check); the full proof is ``verify``.
    """
    size = tree_size(conn)
    cp = latest_checkpoint(conn)
    signature_ok: bool | None = None
    if cp is not None and signer is not None:
        try:
            verify_note(cp.note, signer.public_raw, signer.name)
            signature_ok = True
        except CheckpointError:
            signature_ok = False
    return {
        "records": size,
        "checkpoint": cp.as_json() if cp else None,
        "signatureValid": signature_ok,
        "unsignedRecords": size - cp.size if cp else size,
        "publicKey": signer.public_key_b64() if signer else None,
    }
