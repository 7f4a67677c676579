from __future__ import annotations

import hashlib

import pytest

from hub.audit.merkle import (
    CompactRange,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    list_range_hash,
    node_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)


def mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 2.1 written as recursion, the reference the fast code must match."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


LEAVES = [leaf_hash(bytes([i]) * 32) for i in range(40)]


@pytest.mark.parametrize("n", range(41))
def test_compact_range_root_matches_the_rfc_recursion(n: int) -> None:
    cr = CompactRange()
    for lh in LEAVES[:n]:
        cr.append_leaf_hash(lh)
    assert cr.root() == mth(LEAVES[:n]) == root_of(LEAVES[:n])


def test_every_inclusion_proof_verifies_and_fails_when_altered() -> None:
    for size in range(1, 41):
        rh = list_range_hash(LEAVES[:size])
        root = mth(LEAVES[:size])
        for i in range(size):
            proof = inclusion_proof(i, size, rh)
            assert verify_inclusion(LEAVES[i], i, size, proof, root)
            assert not verify_inclusion(LEAVES[(i + 1) % 40], i, size, proof, root)
            if proof:
                bad = [*proof]
                bad[0] = bytes(32)
                assert not verify_inclusion(LEAVES[i], i, size, bad, root)
                assert not verify_inclusion(LEAVES[i], i, size, proof[:-1], root)
            if size > 1:
                assert (
                    not verify_inclusion(LEAVES[i], (i + 1) % size, size, proof, root)
                    or LEAVES[i] == LEAVES[(i + 1) % size]
                )


def test_every_consistency_proof_verifies_and_fails_when_altered() -> None:
    for second in range(1, 41):
        rh = list_range_hash(LEAVES[:second])
        root2 = mth(LEAVES[:second])
        for first in range(0, second + 1):
            root1 = mth(LEAVES[:first])
            proof = consistency_proof(first, second, rh)
            assert verify_consistency(first, second, root1, root2, proof), (first, second)
            if 0 < first < second:
                assert not verify_consistency(first, second, bytes(32), root2, proof)
                assert not verify_consistency(first, second, root1, bytes(32), proof)
                bad = [*proof]
                bad[-1] = bytes(32)
                assert not verify_consistency(first, second, root1, root2, bad)
