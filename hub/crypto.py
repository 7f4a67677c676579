"""Payload encryption at rest (AES-256-GCM) and keyed hashes of identifiers.

Envelope encryption: each (protocol, month) has its own data key, stored
wrapped by the master key (``KNOOPPUNT_PAYLOAD_KEY``). Destroying a data key
crypto-shreds every payload of that protocol and month at once, while the
audit chain, which never holds a payload, stays verifiable. Old master keys
(``KNOOPPUNT_PAYLOAD_OLD_KEYS``) still unwrap the data keys they wrapped.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import threading

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hub.errors import ConfigurationError


def key_id(key: bytes) -> str:
    """A short public name for a key: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(key).hexdigest()[:16]


class MasterKeys:
    """The active master key and the old ones kept for unwrapping."""

    def __init__(self, active: bytes, old: list[bytes] | None = None) -> None:
        self.active = active
        self.active_kid = key_id(active)
        self._by_kid = {key_id(k): k for k in [active, *(old or [])]}

    def wrap(self, data_key: bytes, context: str) -> bytes:
        nonce = os.urandom(12)
        return nonce + AESGCM(self.active).encrypt(nonce, data_key, context.encode())

    def unwrap(self, kid: str, wrapped: bytes, context: str) -> bytes:
        master = self._by_kid.get(kid)
        if master is None:
            raise ConfigurationError(f"master key {kid} is not configured (KNOOPPUNT_PAYLOAD_OLD_KEYS?)")
        try:
            return AESGCM(master).decrypt(wrapped[:12], wrapped[12:], context.encode())
        except InvalidTag as exc:
            raise ConfigurationError(f"data key for {context} does not unwrap with master key {kid}") from exc


class _Nonces:
    """Random 96-bit nonces, read from the OS 4 KiB at a time (one syscall per 341 nonces)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool = b""

    def take(self) -> bytes:
        with self._lock:
            if len(self._pool) < 12:
                self._pool = os.urandom(4092)
            nonce, self._pool = self._pool[:12], self._pool[12:]
        return nonce


_NONCES = _Nonces()


@functools.lru_cache(maxsize=256)
def _aead(data_key: bytes) -> AESGCM:
    """The cipher of a data key, set up once (a data key serves a protocol for a month)."""
    return AESGCM(data_key)


def forget_ciphers() -> None:
    """Drop every cached cipher (a data key was destroyed: none of it may stay in memory)."""
    _aead.cache_clear()


def encrypt(data_key: bytes, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes]:
    """AES-GCM with a fresh random 96-bit nonce; the message id is bound as associated data."""
    nonce = _NONCES.take()
    return nonce, _aead(data_key).encrypt(nonce, plaintext, aad)


def decrypt(data_key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    return _aead(data_key).decrypt(nonce, ciphertext, aad)


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


class SubjectHasher:
    """Keyed hash (HMAC-SHA256) of a national number: searchable, not reversible."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        # keyed once: each hash copies this state instead of setting the key up again, and (unlike
        # the one-shot ``hmac.digest``) does not release the GIL for a few bytes on the ingest path
        self._keyed = hmac.new(key, digestmod=hashlib.sha256)

    def __call__(self, subject_type: str, subject_id: str) -> str:
        mac = self._keyed.copy()
        mac.update(f"{subject_type}:{subject_id}".encode())
        return mac.hexdigest()


def token_hash(token: str) -> str:
    """Bearer tokens are stored as SHA-256 (they are 256-bit random, so no slow hash is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()
