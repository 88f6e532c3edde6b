"""HPKE base mode with AAD against RFC 9180 Appendix A.1.1, and our open of our seal."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke as pyca_hpke

from tests.core.prio.vectors_util import load
from tray_app.core.rules.prio.hpke import (
    AEAD_AES_128_GCM,
    KDF_HKDF_SHA256,
    KEM_X25519_HKDF_SHA256,
    open_base,
    public_key_of,
    seal_base,
    setup_base_r,
    setup_base_s,
)


def _vector() -> dict[str, Any]:
    (vector,) = load("hpke-rfc9180-A.1.1")
    assert (vector["mode"], vector["kem_id"], vector["kdf_id"], vector["aead_id"]) == (
        0,
        KEM_X25519_HKDF_SHA256,
        KDF_HKDF_SHA256,
        AEAD_AES_128_GCM,
    )
    return dict(vector)


def _hex(vector: dict[str, Any], key: str) -> bytes:
    return bytes.fromhex(vector[key])


def test_the_key_schedule_and_every_sequence_numbered_encryption_match_a_1_1() -> None:
    v = _vector()
    assert public_key_of(_hex(v, "skRm")) == _hex(v, "pkRm")
    assert public_key_of(_hex(v, "skEm")) == _hex(v, "pkEm")
    enc, context = setup_base_s(_hex(v, "pkRm"), _hex(v, "info"), _hex(v, "skEm"))
    assert enc == _hex(v, "enc")
    schedule = context.schedule
    assert schedule.key_schedule_context == _hex(v, "key_schedule_context")
    assert schedule.secret == _hex(v, "secret")
    assert schedule.key == _hex(v, "key")
    assert schedule.base_nonce == _hex(v, "base_nonce")
    assert schedule.exporter_secret == _hex(v, "exporter_secret")
    for encryption in v["encryptions"]:
        assert context._nonce().hex() == encryption["nonce"]
        assert context.seal(bytes.fromhex(encryption["aad"]), bytes.fromhex(encryption["pt"])).hex() == encryption["ct"]


def test_single_shot_seal_base_gives_the_first_encryption_and_opens_with_sk_r() -> None:
    v = _vector()
    first = v["encryptions"][0]
    aad, pt = bytes.fromhex(first["aad"]), bytes.fromhex(first["pt"])
    enc, ct = seal_base(_hex(v, "pkRm"), _hex(v, "info"), aad, pt, _hex(v, "skEm"))
    assert (enc.hex(), ct.hex()) == (v["enc"], first["ct"])
    assert open_base(enc, _hex(v, "skRm"), _hex(v, "info"), aad, ct) == pt
    receiver = setup_base_r(enc, _hex(v, "skRm"), _hex(v, "info"))
    for encryption in v["encryptions"]:
        assert (
            receiver.open(bytes.fromhex(encryption["aad"]), bytes.fromhex(encryption["ct"])).hex() == encryption["pt"]
        )


def test_our_open_of_our_seal_round_trips_and_the_aad_and_info_are_bound() -> None:
    sk_r = secrets.token_bytes(32)
    pk_r = public_key_of(sk_r)
    enc, ct = seal_base(pk_r, b"info", b"the aad", b"a secret share", secrets.token_bytes(32))
    assert open_base(enc, sk_r, b"info", b"the aad", ct) == b"a secret share"
    for info, aad in ((b"info", b"another aad"), (b"other info", b"the aad")):
        with pytest.raises(InvalidTag):
            open_base(enc, sk_r, info, aad, ct)


def test_with_an_empty_aad_it_agrees_with_cryptographys_own_hpke() -> None:
    # cryptography's Suite takes no AAD (why we have our own); with an empty one both must agree.
    suite = pyca_hpke.Suite(pyca_hpke.KEM.X25519, pyca_hpke.KDF.HKDF_SHA256, pyca_hpke.AEAD.AES_128_GCM)
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    sk = X25519PrivateKey.generate()
    pk = sk.public_key().public_bytes_raw()
    enc, ct = seal_base(pk, b"dap", b"", b"hello", secrets.token_bytes(32))
    assert suite.decrypt(enc + ct, sk, info=b"dap") == b"hello"
    theirs = suite.encrypt(b"hello", sk.public_key(), info=b"dap")
    assert open_base(theirs[:32], sk.private_bytes_raw(), b"dap", b"", theirs[32:]) == b"hello"


def test_a_low_order_public_key_is_refused() -> None:
    with pytest.raises(ValueError, match="low order"):
        seal_base(bytes(32), b"", b"", b"x", secrets.token_bytes(32))
