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
import gc
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
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
    """The first seq in (lo, hi] that can be bad: the start of the first 256-block that differs
    from the cached subtree (a lower bound: the rewrite lies in that block or later), else lo + 1."""
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
            # Records up to ``lo`` are vouched for by the last matching checkpoint.
            return max(block * BLOCK + 1, lo + 1)
    return lo + 1


class _Walk:
    """Where the pass stands: records checked, the last two hashes, the tree's right edge."""

    def __init__(self, checkpoints: list[Checkpoint], keep_leaves: bool) -> None:
        self.count = 0
        self.prev_hex = GENESIS
        self.prev_prev_hex = GENESIS
        self.stack: list[tuple[int, bytes]] = []
        self.cps = checkpoints
        self.cp_pos = 0
        self.good_size = 0
        self.good_cps = 0
        self.keep_leaves = keep_leaves
        self.leaves: list[bytes] = []

    @property
    def next_cp(self) -> Checkpoint | None:
        return self.cps[self.cp_pos] if self.cp_pos < len(self.cps) else None

    def root_with(self, extra: list[bytes]) -> bytes:
        parts = [h for _, h in self.stack] + extra
        if not parts:
            return EMPTY_ROOT
        root = parts[-1]
        for left in reversed(parts[:-1]):
            root = node_hash(left, root)
        return root

    def push(self, level: int, h: bytes) -> None:
        stack = self.stack
        while stack and stack[-1][0] == level:
            h = node_hash(stack.pop()[1], h)
            level += 1
        stack.append((level, h))


def _layers(leaves: list[bytes]) -> list[list[bytes]]:
    """Every complete level of the subtree over ``leaves`` (level 0 = the leaves)."""
    sha = hashlib.sha256
    layers = [leaves]
    cur = leaves
    while len(cur) > 1:
        cur = [sha(b"\x01" + cur[i] + cur[i + 1]).digest() for i in range(0, len(cur) - 1, 2)]
        layers.append(cur)
    return layers


def _decompose(layers: list[list[bytes]], k: int) -> list[bytes]:
    """The perfect subtrees covering the first ``k`` leaves of an aligned page, largest first."""
    out: list[bytes] = []
    offset = 0
    for level in range(k.bit_length() - 1, -1, -1):
        if k >> level & 1:
            out.append(layers[level][offset >> level])
            offset += 1 << level
    return out


def _fast_page(rows: Sequence[Any], walk: _Walk) -> list[bytes] | None:
    """Check a page of SQLite rows in bulk; None if anything differs (then :func:`_slow_page` looks closer).

    SQLite keeps occurred_at as naive UTC text ``YYYY-MM-DD HH:MM:SS.ffffff``;
    its canonical form only swaps the space for a ``T`` and adds ``+00:00``.
    The writer stores ``detail`` as canonical JSON text, spliced in as is
    (``orjson.Fragment``); a page written otherwise is retried with ``detail``
    parsed and re-serialised. Because every other field is JSON-escaped by
    orjson and delimits itself, equal bytes mean equal field values; any other
    spelling fails the hash here and is parsed properly by the slow path.
    """
    dumps, fragment = orjson.dumps, orjson.Fragment
    sha = hashlib.sha256
    n = len(rows)
    if rows[0][0] != walk.count + 1 or rows[-1][0] != walk.count + n:
        return None
    stored = [r[2] for r in rows]
    links = [r[1] for r in rows]
    try:
        canon = [
            dumps(
                {
                    "actor": r[3], "detail": fragment(r[4]), "event": r[5], "message_id": r[6], "message_type": r[7],
                    "occurred_at": r[8].replace(" ", "T", 1) + "+00:00", "parent_span_id": r[9],
                    "protocol_id": r[10], "receiver": r[11], "sender": r[12], "seq": r[0], "span_id": r[13],
                    "status": r[14], "subject_hash": r[15], "subject_type": r[16], "trace_id": r[17],
                }
            )
            for r in rows
        ]  # fmt: skip
        digests = [sha(r[1].encode() + c).digest() for r, c in zip(rows, canon, strict=True)]
        hexes = [d.hex() for d in digests]
        if hexes != stored:
            loads, opt = orjson.loads, orjson.OPT_SORT_KEYS
            empty: dict[str, Any] = {}
            canon = [
                dumps(
                    {
                        "actor": r[3], "detail": empty if r[4] == "{}" else loads(r[4]), "event": r[5],
                        "message_id": r[6], "message_type": r[7], "occurred_at": r[8].replace(" ", "T", 1) + "+00:00",
                        "parent_span_id": r[9], "protocol_id": r[10], "receiver": r[11], "sender": r[12],
                        "seq": r[0], "span_id": r[13], "status": r[14], "subject_hash": r[15],
                        "subject_type": r[16], "trace_id": r[17],
                    },
                    option=opt,
                )
                for r in rows
            ]  # fmt: skip
            digests = [sha(r[1].encode() + c).digest() for r, c in zip(rows, canon, strict=True)]
            hexes = [d.hex() for d in digests]
    except (ValueError, TypeError, AttributeError):
        return None
    if hexes != stored or links != [walk.prev_hex, *hexes[:-1]]:
        return None
    walk.prev_prev_hex = hexes[-2] if n > 1 else walk.prev_hex
    walk.prev_hex = hexes[-1]
    return digests


def _slow_page(rows: Sequence[Any], walk: _Walk) -> list[bytes] | str:
    """Check a page record by record; returns the digests, or why the first bad record is bad.

    On failure ``walk.count`` is left at the last good record and the reason
    is prefixed with the bad seq as ``"<seq>|"``.
    """
    sha = hashlib.sha256
    loads, dumps, opt = orjson.loads, orjson.dumps, orjson.OPT_SORT_KEYS
    digests: list[bytes] = []
    count, prev_hex, prev_prev_hex = walk.count, walk.prev_hex, walk.prev_prev_hex
    for (seq, prev, h, actor, detail, event, mid, mtype, occ, psid, proto, recv, send, sid, status,
         shash, stype, tid) in rows:  # fmt: skip
        expected = count + 1
        if seq != expected:
            return f"{expected}|record {expected} is missing (the next record is {seq})"
        try:
            d = loads(detail) if isinstance(detail, str | bytes) else detail
            body = {
                "actor": actor, "detail": d, "event": event, "message_id": mid, "message_type": mtype,
                "occurred_at": _ts(occ), "parent_span_id": psid, "protocol_id": proto, "receiver": recv,
                "sender": send, "seq": seq, "span_id": sid, "status": status, "subject_hash": shash,
                "subject_type": stype, "trace_id": tid,
            }  # fmt: skip
            digest = sha(str(prev).encode() + dumps(body, option=opt)).digest()
        except (ValueError, TypeError) as exc:
            return f"{seq}|record {seq} cannot be read: {exc}"
        hx = digest.hex()
        if hx != h or prev != prev_hex:
            if h == prev_hex:
                return f"{seq}|record {seq} is a copy of record {count}"
            if prev != prev_hex and prev == prev_prev_hex and count > 0:
                body["seq"] = count
                if sha(str(prev).encode() + dumps(body, option=opt)).hexdigest() == h:
                    return f"{count}|record {count} was inserted: the next record links past it"
            if prev != prev_hex:
                return f"{seq}|prev_hash does not match the previous record's hash"
            return f"{seq}|the record's content does not match its hash (changed or moved)"
        digests.append(digest)
        prev_prev_hex, prev_hex, count = prev_hex, hx, seq
    walk.prev_prev_hex, walk.prev_hex = prev_prev_hex, prev_hex
    return digests


def verify(
    conn: Connection,
    *,
    public_key: bytes | None = None,
    key_name: str | None = None,
    page_level: int = 10,
    keep_leaves: bool = False,
) -> VerifyResult:
    """Check every record and every signed checkpoint; name the first bad seq.

    On SQLite the pass reads one snapshot (the connection's transaction). On
    PostgreSQL it checks the records up to the head it read first; run it at
    REPEATABLE READ to also check checkpoints and head from one snapshot.

    Args:
        public_key: the raw Ed25519 public key; when given, every checkpoint's
            signature is checked too (a checkpoint that does not verify is not trusted).
        key_name: the signer's name, when it differs from the checkpoint origin.
        page_level: rows per round trip as a power of two (pages stay aligned to Merkle subtrees).
        keep_leaves: keep all leaf hashes to narrow a rewrite down (used only on a failed pass).
    """
    started = time.perf_counter()
    checkpoints = all_checkpoints(conn)
    if public_key is not None:
        for signed in checkpoints:
            try:
                verify_note(signed.note, public_key, key_name)
            except CheckpointError as exc:
                return VerifyResult(
                    False, 0, None, f"checkpoint {signed.id} (size {signed.size}): {exc.detail}",
                    seconds=time.perf_counter() - started,
                )  # fmt: skip
    last_cp = checkpoints[-1] if checkpoints else None
    walk = _Walk(checkpoints, keep_leaves)

    def fail(seq: int | None, reason: str) -> VerifyResult:
        return VerifyResult(False, walk.count, seq, reason, last_cp, walk.good_cps, time.perf_counter() - started)

    while walk.next_cp is not None and walk.next_cp.size == 0:
        if walk.next_cp.root != EMPTY_ROOT:
            return fail(1, "the checkpoint of the empty log has a wrong root")
        walk.cp_pos += 1
        walk.good_cps += 1

    page = 1 << page_level
    ph = _placeholder(conn)
    fast = conn.dialect.name == "sqlite"
    cursor = conn.connection.cursor()
    if fast:
        # One streaming statement: SQLite reads the table in rowid (= seq) order.
        cursor.execute(f"SELECT {_COLUMNS} FROM audit_events ORDER BY seq")  # noqa: S608
    # Outside SQLite each page may see a newer snapshot (READ COMMITTED): read the
    # head first and stop there, so records committed meanwhile are not half-seen.
    head = conn.execute(select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)).first()
    bound = "" if fast or head is None else f" AND seq <= {int(head.seq)}"
    keyset_sql = f"SELECT {_COLUMNS} FROM audit_events WHERE seq > {ph}{bound} ORDER BY seq LIMIT {page}"  # noqa: S608
    # The pass allocates millions of short-lived objects and keeps none: cyclic GC
    # would only rescan the live pages over and over.
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        while True:
            base = walk.count
            if fast:
                rows = cursor.fetchmany(page)
            else:
                cursor.execute(keyset_sql, (base,))
                rows = cursor.fetchall()
            if not rows:
                break
            digests = _fast_page(rows, walk) if fast else None
            if digests is None:
                checked = _slow_page(rows, walk)
                if isinstance(checked, str):
                    seq_text, reason = checked.split("|", 1)
                    walk.count = int(seq_text) - 1
                    return fail(int(seq_text), reason)
                digests = checked
            if walk.next_cp is None:
                # Past the last checkpoint no tree head is compared: the chain checks suffice.
                walk.count = base + len(digests)
                continue
            sha = hashlib.sha256
            leaves = [sha(b"\x00" + d).digest() for d in digests]
            if walk.keep_leaves:
                walk.leaves.extend(leaves)
            layers = _layers(leaves)
            n = len(leaves)
            cp: Checkpoint | None = walk.next_cp
            while cp is not None and cp.size <= base + n:
                root = walk.root_with(_decompose(layers, cp.size - base))
                if root != cp.root:
                    walk.count = base + n
                    if not walk.keep_leaves:
                        return verify(
                            conn, public_key=public_key, key_name=key_name, page_level=page_level, keep_leaves=True
                        )
                    first = _localize(conn, walk.good_size, cp.size, walk.leaves)
                    return fail(
                        first,
                        f"records {walk.good_size + 1}..{cp.size} were rewritten: the tree head differs from"
                        f" signed checkpoint {cp.id} (root {base64.b64encode(cp.root).decode()})",
                    )
                if digests[cp.size - base - 1].hex() != cp.chain_hash:
                    return fail(cp.size, f"signed checkpoint {cp.id} names another hash for record {cp.size}")
                walk.good_size = cp.size
                walk.good_cps += 1
                walk.cp_pos += 1
                cp = walk.next_cp
            if n == page:
                walk.push(page_level, layers[page_level][0])
            else:
                levels = [lvl for lvl in range(n.bit_length() - 1, -1, -1) if n >> lvl & 1]
                for level, h in zip(levels, _decompose(layers, n), strict=True):
                    walk.push(level, h)
            walk.count = base + n
    finally:
        cursor.close()
        if gc_was_on:
            gc.enable()

    count = walk.count
    cp = walk.next_cp
    if cp is not None:
        return fail(
            count + 1, f"the log ends at {count} but signed checkpoint {cp.id} covers {cp.size} records (truncated)"
        )
    if head is not None and (int(head.seq) != count or head.hash != walk.prev_hex):
        return fail(min(count, int(head.seq)) + 1, f"the log ends at {count} but its head says {head.seq}")
    return VerifyResult(True, count, None, "", last_cp, walk.good_cps, time.perf_counter() - started)
