"""Merkle tree hashing, proofs and proof checking as in RFC 6962 / RFC 9162.

Pure functions over 32-byte hashes; the tree's leaves are the audit records'
hashes (the raw 32 bytes of ``audit_events.hash``), so leaf ``i`` is record
``seq = i + 1``. Proof *generation* takes a ``range_hash(a, b)`` callable
returning ``MTH(D[a:b])`` so the caller decides where subtree hashes come
from (a list in memory, or :class:`hub.audit.tree.TreeReader` over the
database). Proof *verification* follows RFC 9162 sections 2.1.3.2 and
2.1.4.2 literally; ``tools/verify_audit_export.py`` carries a copy of it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

RangeHash = Callable[[int, int], bytes]

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """HASH(0x00 || leaf)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """HASH(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class CompactRange:
    """The right edge of a growing tree: one perfect subtree root per set bit of ``size``.

    Appending is amortised two hash calls per leaf, and :meth:`root` is
    O(log n), so a streaming pass can compare the root at any size it passes.
    """

    __slots__ = ("size", "stack")

    def __init__(self) -> None:
        self.size = 0
        self.stack: list[bytes] = []

    def append_leaf_hash(self, lh: bytes) -> None:
        """Add one leaf (already ``leaf_hash``-ed)."""
        stack = self.stack
        stack.append(lh)
        n = self.size + 1
        self.size = n
        while not n & 1:
            right = stack.pop()
            stack[-1] = hashlib.sha256(b"\x01" + stack[-1] + right).digest()
            n >>= 1

    def root(self) -> bytes:
        """MTH over every leaf appended so far."""
        if not self.stack:
            return EMPTY_ROOT
        r = self.stack[-1]
        for h in reversed(self.stack[:-1]):
            r = node_hash(h, r)
        return r


def root_of(leaf_hashes: Iterable[bytes]) -> bytes:
    """MTH of leaves given as leaf hashes."""
    cr = CompactRange()
    for lh in leaf_hashes:
        cr.append_leaf_hash(lh)
    return cr.root()


def list_range_hash(leaf_hashes: Sequence[bytes]) -> RangeHash:
    """A ``range_hash`` over leaf hashes in memory (for tests and small trees)."""

    def mth(a: int, b: int) -> bytes:
        if b - a == 1:
            return leaf_hashes[a]
        k = split_point(b - a)
        return node_hash(mth(a, a + k), mth(a + k, b))

    return mth


def inclusion_proof(index: int, size: int, range_hash: RangeHash) -> list[bytes]:
    """PATH(index, D[0:size]) of RFC 6962 2.1.1."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of size {size}")
    path: list[bytes] = []
    a, b, m = 0, size, index
    while b - a > 1:
        k = split_point(b - a)
        if m < k:
            path.append(range_hash(a + k, b))
            b = a + k
        else:
            path.append(range_hash(a, a + k))
            a, m = a + k, m - k
    path.reverse()
    return path


def consistency_proof(first: int, second: int, range_hash: RangeHash) -> list[bytes]:
    """PROOF(first, D[0:second]) of RFC 6962 2.1.2 (empty when first is 0 or equals second)."""
    if not 0 <= first <= second:
        raise ValueError(f"no consistency proof from size {first} to {second}")
    if first in (0, second):
        return []
    proof: list[bytes] = []
    a, b, m, whole = 0, second, first, True
    while True:
        n = b - a
        if m == n:
            if not whole:
                proof.append(range_hash(a, b))
            break
        k = split_point(n)
        if m <= k:
            proof.append(range_hash(a + k, b))
            b = a + k
        else:
            proof.append(range_hash(a, a + k))
            a, m, whole = a + k, m - k, False
    proof.reverse()
    return proof


def verify_inclusion(lh: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 2.1.3.2: does ``proof`` put leaf hash ``lh`` at ``index`` under ``root``?"""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, lh
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]) -> bool:
    """RFC 9162 2.1.4.2: is the tree of size ``second`` an append-only extension of ``first``?"""
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
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_root and sr == second_root
