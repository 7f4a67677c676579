"""Walk the whole audit log and prove it intact, or name the first bad record.

One pass over the records, in seq order, through a raw DBAPI cursor (no
per-row SQLAlchemy objects): for each record it checks that the seq follows
on, that ``prev_hash`` is the previous record's hash, and that ``hash`` is
the hash of the record's content; it grows the Merkle tree as it goes and
compares the tree head with every stored signed checkpoint when it passes
that checkpoint's size. That detects:

- a changed record (its content no longer matches its hash);
- a deleted record (a gap in seq, or a broken ``prev_hash`` link);
- an inserted record (a broken link; when the next record links past it, the
  inserted one is named);
- reordered records (seq is hashed, and the links break);
- a truncated tail (fewer records than the last checkpoint signed, or than
  the head says);
- a consistent rewrite (hashes recomputed after a change): the tree head no
  longer matches a signed checkpoint. The first bad seq is then narrowed to
  the first 256-record block that differs from the subtree cache recorded at
  checkpoint time, or else to the records after the last matching checkpoint.
"""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, select

from hub.audit.chain import GENESIS, ts_text
from hub.audit.checkpoint import Checkpoint, CheckpointError, all_checkpoints, verify_note
from hub.audit.merkle import EMPTY_ROOT, node_hash
from hub.audit.tree import BLOCK, CACHE_LEVEL
from hub.store.tables import audit_head, audit_tree

_COLUMNS = (
    "seq, prev_hash, hash, actor, detail, event, message_id, message_type, occurred_at, parent_span_id,"
    " protocol_id, receiver, sender, span_id, status, subject_hash, subject_type, trace_id"
)


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """Outcome of walking the chain; ``first_bad_seq`` names where it breaks."""

    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason: str = ""
    checkpoint: Checkpoint | None = None
    checkpoints_checked: int = 0
    seconds: float = 0.0
    problems: tuple[str, ...] = field(default=())

    @property
    def exit_code(self) -> int:
        """What ``knooppunt audit verify`` exits with: 0 intact, 1 broken."""
        return 0 if self.ok else 1

    @property
    def records_per_second(self) -> float:
        return self.checked / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """One paragraph for the CLI and the portal."""
        cp = self.checkpoint
        signed = f"; last signed checkpoint: size {cp.size}, {cp.timestamp:%Y-%m-%d %H:%M:%S} UTC" if cp else ""
        if self.ok:
            return (
                f"audit log intact: {self.checked} records, {self.checkpoints_checked} checkpoints"
                f" checked in {self.seconds:.2f} s{signed}"
            )
        return f"audit log BROKEN at seq {self.first_bad_seq}: {self.reason} ({self.checked} records checked{signed})"

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "firstBadSeq": self.first_bad_seq,
            "reason": self.reason,
            "checkpoint": self.checkpoint.as_json() if self.checkpoint else None,
            "checkpointsChecked": self.checkpoints_checked,
            "seconds": round(self.seconds, 3),
        }


def _placeholder(conn: Connection) -> str:
    style = conn.dialect.paramstyle
    return "?" if style == "qmark" else ":1" if style == "numeric" else ":p" if style == "named" else "%s"


def _ts(value: object) -> str:
    if isinstance(value, str):
        if len(value) == 26 and value[10] == " ":
            return value[:10] + "T" + value[11:] + "+00:00"
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        return ts_text(value)
    raise ValueError(f"occurred_at {value!r} is not a timestamp")


def _localize(conn: Connection, lo: int, hi: int, leaves: list[bytes]) -> int:
    """First seq in (lo, hi] whose 256-block differs from the cached subtree, else lo + 1."""
    cached = dict(
        conn.execute(
            select(audit_tree.c.idx, audit_tree.c.hash).where(
                audit_tree.c.level == CACHE_LEVEL,
                audit_tree.c.idx >= lo // BLOCK,
                audit_tree.c.idx < hi // BLOCK,
            )
        ).all()
    )
    for block in range(lo // BLOCK, hi // BLOCK):
        want = cached.get(block)
        nodes = leaves[block * BLOCK : (block + 1) * BLOCK]
        if want is None or len(nodes) < BLOCK:
            continue
        while len(nodes) > 1:
            nodes = [node_hash(nodes[j], nodes[j + 1]) for j in range(0, len(nodes), 2)]
        if nodes[0].hex() != want:
            return block * BLOCK + 1
    return lo + 1


def verify(
    conn: Connection,
    *,
    public_key: bytes | None = None,
    key_name: str | None = None,
    batch: int = 20_000,
    keep_leaves: bool = False,
) -> VerifyResult:
    """Check every record and every signed checkpoint; name the first bad seq.

    Run it inside one read transaction (on PostgreSQL at REPEATABLE READ) so
    appends made meanwhile are not half-seen.

    Args:
        public_key: the raw Ed25519 public key; when given, every checkpoint's
            signature is checked too (a checkpoint that does not verify is not trusted).
        key_name: the signer's name, when it differs from the checkpoint origin.
        batch: rows per round trip.
        keep_leaves: keep all leaf hashes to narrow a rewrite down (used only on a failed pass).
    """
    started = time.perf_counter()
    checkpoints = all_checkpoints(conn)
    trusted: list[Checkpoint] = []
    for cp in checkpoints:
        if public_key is not None:
            try:
                verify_note(cp.note, public_key, key_name)
            except CheckpointError as exc:
                return VerifyResult(
                    False, 0, None, f"checkpoint {cp.id} (size {cp.size}): {exc.detail}",
                    seconds=time.perf_counter() - started,
                )
        trusted.append(cp)
    last_cp = trusted[-1] if trusted else None
    cp_iter = iter(trusted)
    next_cp = next(cp_iter, None)
    while next_cp is not None and next_cp.size == 0:
        if next_cp.root != EMPTY_ROOT:
            return VerifyResult(False, 0, 1, "checkpoint of the empty log has a wrong root")
        next_cp = next(cp_iter, None)
    good_size = 0
    checked_cps = 0

    sha = hashlib.sha256
    loads, dumps, opt = orjson.loads, orjson.dumps, orjson.OPT_SORT_KEYS
    stack: list[bytes] = []
    leaves: list[bytes] = []
    prev_hex, prev_prev_hex = GENESIS, GENESIS
    count = 0
    ph = _placeholder(conn)
    sql = f"SELECT {_COLUMNS} FROM audit_events WHERE seq > {ph} ORDER BY seq LIMIT {int(batch)}"  # noqa: S608
    cursor = conn.connection.cursor()

    def fail(seq: int | None, reason: str) -> VerifyResult:
        return VerifyResult(
            False, count, seq, reason, last_cp, checked_cps, time.perf_counter() - started
        )

    try:
        while True:
            cursor.execute(sql, (count,))
            rows = cursor.fetchall()
            if not rows:
                break
            for (seq, prev, h, actor, detail, event, mid, mtype, occ, psid, proto, recv, send, sid, status,
                 shash, stype, tid) in rows:
                expected = count + 1
                if seq != expected:
                    return fail(expected, f"record {expected} is missing (the next record is {seq})")
                if detail == "{}":
                    d: Any = {}
                elif isinstance(detail, str | bytes):
                    d = loads(detail)
                else:
                    d = detail
                if occ.__class__ is str and len(occ) == 26:
                    when = occ[:10] + "T" + occ[11:] + "+00:00"
                else:
                    when = _ts(occ)
                body = {
                    "actor": actor, "detail": d, "event": event, "message_id": mid, "message_type": mtype,
                    "occurred_at": when, "parent_span_id": psid, "protocol_id": proto, "receiver": recv,
                    "sender": send, "seq": seq, "span_id": sid, "status": status, "subject_hash": shash,
                    "subject_type": stype, "trace_id": tid,
                }  # fmt: skip
                digest = sha(prev.encode() + dumps(body, option=opt)).digest()
                hx = digest.hex()
                if hx != h or prev != prev_hex:
                    if h == prev_hex:
                        return fail(seq, f"record {seq} is a copy of record {count}")
                    if prev != prev_hex and prev == prev_prev_hex and count > 0:
                        body["seq"] = count
                        if sha(prev.encode() + dumps(body, option=opt)).hexdigest() == h:
                            return fail(count, f"record {count} was inserted: the next record links past it")
                    if prev != prev_hex:
                        return fail(seq, "prev_hash does not match the previous record's hash")
                    return fail(seq, "the record's content does not match its hash (changed or moved)")
                prev_prev_hex, prev_hex = prev_hex, hx
                lh = sha(b"\x00" + digest).digest()
                if keep_leaves:
                    leaves.append(lh)
                stack.append(lh)
                count = seq
                n = seq
                while not n & 1:
                    right = stack.pop()
                    stack[-1] = sha(b"\x01" + stack[-1] + right).digest()
                    n >>= 1
                while next_cp is not None and next_cp.size == count:
                    root = stack[-1]
                    for left in reversed(stack[:-1]):
                        root = node_hash(left, root)
                    if root != next_cp.root:
                        if not keep_leaves:
                            return verify(conn, public_key=public_key, key_name=key_name, batch=batch, keep_leaves=True)
                        first = _localize(conn, good_size, count, leaves)
                        return fail(
                            first,
                            f"records {good_size + 1}..{count} were rewritten: the tree head differs from"
                            f" signed checkpoint {next_cp.id} (root {base64.b64encode(next_cp.root).decode()})",
                        )
                    good_size = count
                    checked_cps += 1
                    next_cp = next(cp_iter, None)
    except (ValueError, TypeError, orjson.JSONDecodeError) as exc:
        return fail(count + 1, f"record {count + 1} cannot be read: {exc}")
    finally:
        cursor.close()

    if next_cp is not None:
        return fail(count + 1, f"the log ends at {count} but signed checkpoint {next_cp.id} covers {next_cp.size} records (truncated)")
    head = conn.execute(select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)).first()
    if head is not None and (int(head.seq) != count or head.hash != prev_hex):
        return fail(min(count, int(head.seq)) + 1, f"the log ends at {count} but its head says {head.seq}")
    return VerifyResult(True, count, None, "", last_cp, checked_cps, time.perf_counter() - started)
