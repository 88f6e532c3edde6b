"""Parsing an aggregator's HpkeConfigList (DAP-09 §4.3.1) and choosing the suite we support."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tray_app.core.errors import InputError, MalformedError
from tray_app.core.rules.prio.dap_report import (
    HpkeConfig,
    decode_hpke_config_list,
    encode_hpke_config_list,
    select_hpke_config,
)

KEY = bytes(range(32))
X25519 = HpkeConfig(7, 0x0020, 0x0001, 0x0001, KEY)
P256 = HpkeConfig(3, 0x0010, 0x0001, 0x0001, b"\x04" + bytes(64))  # DHKEM(P-256): not ours
CHACHA = HpkeConfig(4, 0x0020, 0x0001, 0x0003, KEY)  # ChaCha20Poly1305: not ours


def test_the_encoding_is_the_tls_layout_of_dap_09() -> None:
    encoded = encode_hpke_config_list([X25519])
    assert encoded == bytes.fromhex("0029070020000100010020") + KEY
    assert decode_hpke_config_list(encoded) == (X25519,)


def test_an_unknown_kem_beside_a_supported_entry_picks_the_supported_one() -> None:
    data = encode_hpke_config_list([P256, CHACHA, X25519])
    assert decode_hpke_config_list(data) == (P256, CHACHA, X25519)  # all parsed, in order
    assert select_hpke_config(data) == X25519


def test_the_first_supported_entry_wins_the_order_is_the_aggregators_preference() -> None:
    other = HpkeConfig(9, 0x0020, 0x0001, 0x0001, bytes(32))
    assert select_hpke_config(encode_hpke_config_list([other, X25519])) == other


def test_a_supported_suite_with_a_key_of_the_wrong_size_is_skipped() -> None:
    short = HpkeConfig(1, 0x0020, 0x0001, 0x0001, bytes(31))
    assert select_hpke_config(encode_hpke_config_list([short, X25519])) == X25519


def test_no_supported_entry_is_a_clear_typed_error_naming_what_was_offered() -> None:
    with pytest.raises(MalformedError) as caught:
        select_hpke_config(encode_hpke_config_list([P256, CHACHA]), "helper.example.net")
    assert caught.value.title == "Unsupported aggregator"
    assert "helper.example.net offers no HPKE configuration" in caught.value.message
    assert "kem 0x0010, kdf 0x0001, aead 0x0001" in caught.value.message


def test_every_truncation_is_a_clear_malformed_error() -> None:
    data = encode_hpke_config_list([P256, X25519])
    for cut in range(len(data)):
        with pytest.raises(MalformedError, match="HPKE configuration list is malformed"):
            decode_hpke_config_list(data[:cut])


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "ends early"),
        (bytes.fromhex("0000"), "empty"),
        (encode_hpke_config_list([X25519]) + b"\x00", "follow its end"),
        (bytes.fromhex("0009010020000100010000"), "empty public key"),
        (b"<html>503 Service Unavailable</html>", "ends early"),
    ],
    ids=["nothing", "empty-list", "trailing-byte", "empty-key", "html"],
)
def test_junk_is_a_clear_malformed_error(data: bytes, problem: str) -> None:
    with pytest.raises(MalformedError, match=problem):
        select_hpke_config(data)


@given(st.binary(max_size=200))
def test_random_bytes_parse_or_raise_a_malformed_error_never_anything_else(data: bytes) -> None:
    configs: tuple[HpkeConfig, ...] | None = None
    error: MalformedError | None = None
    try:
        configs = decode_hpke_config_list(data)
    except MalformedError as exc:
        error = exc
    if error is not None:
        assert isinstance(error, InputError)
        assert error.message.startswith("The HPKE configuration list is malformed")
    else:
        assert configs is not None
        assert encode_hpke_config_list(configs) == data  # a parse is exact: it re-encodes to the input
