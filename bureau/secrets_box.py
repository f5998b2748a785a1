"""Encryption at rest and keyed lookup hashes for personal data, keyed by DATA_KEY."""

from __future__ import annotations

import base64
import hashlib
import hmac
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken

from bureau.settings import get_settings


def _derive(data_key: str, purpose: bytes) -> bytes:
    # Separate keys for encryption and for hashing, so one never weakens the other.
    return hmac.new(data_key.encode("utf-8"), purpose, hashlib.sha256).digest()


@lru_cache(maxsize=8)
def _fernet(data_key: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(_derive(data_key, b"zhanyou/encrypt/v1")))


def _key(data_key: str | None) -> str:
    return data_key or get_settings().data_key


def encrypt(plaintext: str, data_key: str | None = None) -> str:
    """Encrypt text (authenticated, randomised) for storage."""
    return _fernet(_key(data_key)).encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt(token: str, data_key: str | None = None) -> str:
    """Decrypt what `encrypt` stored; raises ValueError when the key is wrong or the data altered."""
    try:
        return _fernet(_key(data_key)).decrypt(token.encode("ascii")).decode("utf-8")
    except InvalidToken as exc:
        raise ValueError("cannot decrypt: wrong DATA_KEY or corrupted value") from exc


@lru_cache(maxsize=8)
def _lookup_key(data_key: str) -> bytes:
    return _derive(data_key, b"zhanyou/lookup/v1")


def lookup_hash(value: str, data_key: str | None = None) -> str:
    """A keyed hash to find a row by an encrypted value without decrypting every row."""
    return hmac.new(_lookup_key(_key(data_key)), value.encode("utf-8"), hashlib.sha256).hexdigest()


def openid_tag(openid: str) -> str:
    """A short stable pseudonym of an OpenID for logs."""
    return _openid_tag(openid, _key(None))


# The webhook logs a few lines per message, each with the sender's tag: cached per (OpenID, key), so a
# changed DATA_KEY still gives new tags.
@lru_cache(maxsize=4096)
def _openid_tag(openid: str, data_key: str) -> str:
    return lookup_hash("openid:" + openid, data_key)[:12]
