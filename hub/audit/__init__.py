"""The audit log: data, not logging.

An append-only, hash-chained table of audit records (:mod:`hub.audit.chain`),
a Merkle tree over it with inclusion and consistency proofs in the manner of
Certificate Transparency (:mod:`hub.audit.merkle`, :mod:`hub.audit.tree`),
Ed25519-signed checkpoints (:mod:`hub.audit.checkpoint`), a fast verifier
(:mod:`hub.audit.verify`), exports with proofs (:mod:`hub.audit.export`),
DPO searches and reports (:mod:`hub.audit.search`) and retention
(:mod:`hub.audit.retention`). The event catalogue is ``docs/audit-events.md``.
"""

from __future__ import annotations

from hub.audit.chain import EVENTS, GENESIS, AuditEvent, ChainWriter, canonical, record_hash
from hub.audit.verify import VerifyResult, verify

__all__ = ["EVENTS", "GENESIS", "AuditEvent", "ChainWriter", "VerifyResult", "canonical", "record_hash", "verify"]
