"""HPKE base mode (RFC 9180) for the one suite DAP requires: DHKEM(X25519, HKDF-SHA256),
HKDF-SHA256, AES-128-GCM (kem 0x0020, kdf 0x0001, aead 0x0001), with the AAD DAP needs.

``cryptography``'s own ``hpke.Suite.encrypt`` takes an ``info`` but no AAD, and DAP binds
each input share to its report with an AAD (the ``InputShareAad``), so this is RFC 9180 written
out on cryptography's primitives (X25519 and AESGCM) and the standard library's HMAC:

* §4.1 DHKEM ``Encap``/``Decap`` with ``ExtractAndExpand`` (suite id ``"KEM" || 0x0020``);
* §5.1 ``KeySchedule`` for mode base (empty psk and psk_id; suite id
  ``"HPKE" || 0x0020 || 0x0001 || 0x0001``);
* §5.2 ``Seal``/``Open`` with the nonce ``base_nonce XOR seq`` (one context can seal several
  messages; DAP seals one per context).

It is checked against RFC 9180 Appendix A.1.1 (the ephemeral key is a parameter, so a given
``skE`` gives the vector's bytes). The ephemeral private key is 32 random bytes from the
caller (``secrets.token_bytes(32)``): X25519 clamps any 32 bytes into a valid key.
``cryptography`` is imported on first use, like pycryptodome in :mod:`.xof`.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

__all__ = [
    "AEAD_AES_128_GCM",
    "KDF_HKDF_SHA256",
    "KEM_X25519_HKDF_SHA256",
    "X25519_KEY_SIZE",
    "HpkeContext",
    "KeySchedule",
    "open_base",
    "public_key_of",
    "seal_base",
    "setup_base_r",
    "setup_base_s",
]

KEM_X25519_HKDF_SHA256 = 0x0020
KDF_HKDF_SHA256 = 0x0001
AEAD_AES_128_GCM = 0x0001
X25519_KEY_SIZE = 32  # Nsk = Npk = Nenc

_KEM_SUITE = b"KEM" + KEM_X25519_HKDF_SHA256.to_bytes(2, "big")
_HPKE_SUITE = (
    b"HPKE"
    + KEM_X25519_HKDF_SHA256.to_bytes(2, "big")
    + KDF_HKDF_SHA256.to_bytes(2, "big")
    + AEAD_AES_128_GCM.to_bytes(2, "big")
)
_NK, _NN, _NH = 16, 12, 32  # AES-128-GCM key and nonce sizes; SHA-256's output size
_MODE_BASE = 0x00


def _extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt or bytes(_NH), ikm, hashlib.sha256).digest()


def _expand(prk: bytes, info: bytes, length: int) -> bytes:
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def _labeled_extract(suite: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return _extract(salt, b"HPKE-v1" + suite + label + ikm)


def _labeled_expand(suite: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    return _expand(prk, length.to_bytes(2, "big") + b"HPKE-v1" + suite + label + info, length)


def public_key_of(private_key: bytes) -> bytes:
    """The X25519 public key of a 32-byte private key (``pk(skX)``, serialized)."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    return X25519PrivateKey.from_private_bytes(_key_bytes(private_key, "private")).public_key().public_bytes_raw()


def _key_bytes(key: bytes, what: str) -> bytes:
    if len(key) != X25519_KEY_SIZE:
        raise ValueError(f"an X25519 {what} key is {X25519_KEY_SIZE} bytes, not {len(key)}")
    return key


def _dh(private_key: bytes, public_key: bytes) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

    private = X25519PrivateKey.from_private_bytes(_key_bytes(private_key, "private"))
    public = X25519PublicKey.from_public_bytes(_key_bytes(public_key, "public"))
    try:
        secret = private.exchange(public)
    except ValueError:  # OpenSSL refuses the all-zero result itself
        secret = bytes(X25519_KEY_SIZE)
    if not any(secret):  # RFC 9180 §7.1.4: a low-order public key gives all zeros
        raise ValueError("the X25519 public key is of low order: no shared secret")
    return secret


def _kem_shared_secret(dh: bytes, enc: bytes, pk_r: bytes) -> bytes:
    eae_prk = _labeled_extract(_KEM_SUITE, b"", b"eae_prk", dh)
    return _labeled_expand(_KEM_SUITE, eae_prk, b"shared_secret", enc + pk_r, _NH)


@dataclass(frozen=True)
class KeySchedule:
    """What ``KeySchedule`` derives (RFC 9180 §5.1), kept for the known-answer test."""

    key_schedule_context: bytes
    secret: bytes
    key: bytes
    base_nonce: bytes
    exporter_secret: bytes


def _key_schedule(shared_secret: bytes, info: bytes) -> KeySchedule:
    psk_id_hash = _labeled_extract(_HPKE_SUITE, b"", b"psk_id_hash", b"")
    info_hash = _labeled_extract(_HPKE_SUITE, b"", b"info_hash", info)
    context = bytes([_MODE_BASE]) + psk_id_hash + info_hash
    secret = _labeled_extract(_HPKE_SUITE, shared_secret, b"secret", b"")
    return KeySchedule(
        key_schedule_context=context,
        secret=secret,
        key=_labeled_expand(_HPKE_SUITE, secret, b"key", context, _NK),
        base_nonce=_labeled_expand(_HPKE_SUITE, secret, b"base_nonce", context, _NN),
        exporter_secret=_labeled_expand(_HPKE_SUITE, secret, b"exp", context, _NH),
    )


@dataclass
class HpkeContext:
    """An HPKE encryption context (RFC 9180 §5.2): seals or opens messages in order, each
    with the nonce ``base_nonce XOR seq``."""

    schedule: KeySchedule
    seq: int = field(default=0)

    def _nonce(self) -> bytes:
        if self.seq >= 2 ** (8 * _NN) - 1:
            raise ValueError("the HPKE context's sequence number is exhausted")
        seq = self.seq.to_bytes(_NN, "big")
        return bytes(a ^ b for a, b in zip(self.schedule.base_nonce, seq, strict=True))

    def seal(self, aad: bytes, plaintext: bytes) -> bytes:
        """``ContextS.Seal(aad, pt)``: the ciphertext with its 16-byte tag."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        ciphertext = AESGCM(self.schedule.key).encrypt(self._nonce(), plaintext, aad)
        self.seq += 1
        return ciphertext

    def open(self, aad: bytes, ciphertext: bytes) -> bytes:
        """``ContextR.Open(aad, ct)``; ``cryptography.exceptions.InvalidTag`` if it was altered."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        plaintext = AESGCM(self.schedule.key).decrypt(self._nonce(), ciphertext, aad)
        self.seq += 1
        return plaintext


def setup_base_s(pk_r: bytes, info: bytes, sk_e: bytes) -> tuple[bytes, HpkeContext]:
    """``SetupBaseS(pkR, info)`` with the ephemeral private key ``sk_e``: ``(enc, context)``."""
    enc = public_key_of(sk_e)
    shared_secret = _kem_shared_secret(_dh(sk_e, pk_r), enc, _key_bytes(pk_r, "public"))
    return enc, HpkeContext(_key_schedule(shared_secret, info))


def setup_base_r(enc: bytes, sk_r: bytes, info: bytes) -> HpkeContext:
    """``SetupBaseR(enc, skR, info)``: the receiver's context."""
    shared_secret = _kem_shared_secret(_dh(sk_r, enc), enc, public_key_of(sk_r))
    return HpkeContext(_key_schedule(shared_secret, info))


def seal_base(pk_r: bytes, info: bytes, aad: bytes, plaintext: bytes, sk_e: bytes) -> tuple[bytes, bytes]:
    """Single-shot ``SealBase(pkR, info, aad, pt)`` (RFC 9180 §6.1): ``(enc, ciphertext)``."""
    enc, context = setup_base_s(pk_r, info, sk_e)
    return enc, context.seal(aad, plaintext)


def open_base(enc: bytes, sk_r: bytes, info: bytes, aad: bytes, ciphertext: bytes) -> bytes:
    """Single-shot ``OpenBase(enc, skR, info, aad, ct)``: the plaintext."""
    return setup_base_r(enc, sk_r, info).open(aad, ciphertext)
