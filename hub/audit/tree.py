"""The Merkle tree over ``audit_events``, read from the database.

Leaf ``i`` is the record with ``seq = i + 1``; its leaf data is the 32 raw
bytes of the record's ``hash``. Completed perfect subtrees of 256 leaves and
up are cached in ``audit_tree`` (level, idx, hash) by :func:`update_tree`,
which the checkpoint job calls, so a tree head or a proof costs O(log n)
small reads instead of a pass over a million records. The cache is only a
convenience for the prover: proofs are checked against signed roots, and
:func:`hub.audit.verify.verify` recomputes every hash from the records.
"""

from __future__ import annotations

from sqlalchemy import Connection, func, insert, select

from hub.audit.merkle import EMPTY_ROOT, leaf_hash, node_hash, split_point
from hub.errors import HubError
from hub.store.tables import audit_events, audit_tree

CACHE_LEVEL = 8
BLOCK = 1 << CACHE_LEVEL


class AuditIntegrityError(HubError):
    """The audit records needed for a tree hash or proof are missing or malformed."""

    code = "audit_integrity"
    status = 500
    title = "Auditlog is niet intact"


class TreeReader:
    """``MTH(D[a:b])`` for any range, from cached subtrees and records (memoised per reader)."""

    def __init__(self, conn: Connection, *, use_cache: bool = True) -> None:
        self.conn = conn
        self.use_cache = use_cache
        self.memo: dict[tuple[int, int], bytes] = {}

    def leaf_hashes(self, a: int, b: int) -> list[bytes]:
        """Leaf hashes of leaves ``a <= i < b`` (records ``a+1 .. b``)."""
        rows = self.conn.execute(
            select(audit_events.c.seq, audit_events.c.hash)
            .where(audit_events.c.seq > a, audit_events.c.seq <= b)
            .order_by(audit_events.c.seq)
        ).all()
        if len(rows) != b - a or (rows and (rows[0][0] != a + 1 or rows[-1][0] != b)):
            raise AuditIntegrityError(f"audit records {a + 1}..{b} are not all present")
        try:
            return [leaf_hash(bytes.fromhex(h)) for _, h in rows]
        except ValueError as exc:
            raise AuditIntegrityError(f"an audit record in {a + 1}..{b} has a malformed hash") from exc

    def _cached(self, level: int, idx: int) -> bytes | None:
        if not self.use_cache or level < CACHE_LEVEL:
            return None
        h = self.conn.execute(
            select(audit_tree.c.hash).where(audit_tree.c.level == level, audit_tree.c.idx == idx)
        ).scalar()
        return bytes.fromhex(h) if h is not None else None

    def perfect(self, level: int, idx: int) -> bytes:
        """The root of the perfect subtree of ``2**level`` leaves starting at leaf ``idx << level``."""
        key = (level, idx)
        found = self.memo.get(key)
        if found is not None:
            return found
        found = self._cached(level, idx)
        if found is None:
            if level <= CACHE_LEVEL:
                # Read the subtree's leaves once and remember every node inside it.
                nodes = self.leaf_hashes(idx << level, (idx + 1) << level)
                lvl, base = 0, idx << level
                while True:
                    for j, h in enumerate(nodes):
                        self.memo[(lvl, base + j)] = h
                    if lvl == level:
                        break
                    nodes = [node_hash(nodes[j], nodes[j + 1]) for j in range(0, len(nodes), 2)]
                    lvl, base = lvl + 1, base >> 1
                found = nodes[0]
            else:
                found = node_hash(self.perfect(level - 1, 2 * idx), self.perfect(level - 1, 2 * idx + 1))
        self.memo[key] = found
        return found

    def range_hash(self, a: int, b: int) -> bytes:
        """MTH(D[a:b]) where ``[a, b)`` is a node of the tree (perfect, or on the right edge)."""
        n = b - a
        if n <= 0:
            return EMPTY_ROOT
        if n & (n - 1) == 0 and a % n == 0:
            return self.perfect(n.bit_length() - 1, a // n)
        k = split_point(n)
        return node_hash(self.range_hash(a, a + k), self.range_hash(a + k, b))

    def root(self, size: int) -> bytes:
        """The tree head (root hash) at ``size`` records."""
        return self.range_hash(0, size)


def tree_size(conn: Connection) -> int:
    """How many records the log holds (the highest seq)."""
    return int(conn.execute(select(func.coalesce(func.max(audit_events.c.seq), 0))).scalar_one())


def update_tree(conn: Connection, size: int | None = None) -> int:
    """Cache every completed subtree of 256+ leaves up to ``size``; returns how many nodes it wrote.

    Call inside a write transaction (the checkpoint job does, through the writer).
    """
    if size is None:
        size = tree_size(conn)
    last = conn.execute(select(func.max(audit_tree.c.idx)).where(audit_tree.c.level == CACHE_LEVEL)).scalar()
    start_block = 0 if last is None else int(last) + 1
    end_block = size // BLOCK
    reader = TreeReader(conn)
    written = 0
    chunk = 64
    for first in range(start_block, end_block, chunk):
        stop = min(first + chunk, end_block)
        leaves = reader.leaf_hashes(first * BLOCK, stop * BLOCK)
        rows: list[dict[str, object]] = []
        for block in range(first, stop):
            nodes = leaves[(block - first) * BLOCK : (block - first + 1) * BLOCK]
            while len(nodes) > 1:
                nodes = [node_hash(nodes[j], nodes[j + 1]) for j in range(0, len(nodes), 2)]
            level, idx, h = CACHE_LEVEL, block, nodes[0]
            reader.memo[(level, idx)] = h
            rows.append({"level": level, "idx": idx, "hash": h.hex()})
            while idx & 1:
                h = node_hash(reader.perfect(level, idx - 1), h)
                level, idx = level + 1, idx >> 1
                reader.memo[(level, idx)] = h
                rows.append({"level": level, "idx": idx, "hash": h.hex()})
        conn.execute(insert(audit_tree), rows)
        written += len(rows)
    return written
