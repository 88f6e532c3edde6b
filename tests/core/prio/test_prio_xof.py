"""XofTurboShake128 of VDAF-08 against the draft's vector, and its rejection sampling."""

from __future__ import annotations

import pytest

from tests.core.prio.vectors_util import load
from tray_app.core.rules.prio.prime_field import FIELD128, PrimeField
from tray_app.core.rules.prio.xof import XofTurboShake128, derive_seed, expand_into_vec


def test_the_xof_reproduces_the_vdaf_08_vector() -> None:
    v = load("XofTurboShake128")
    seed, dst, binder = (bytes.fromhex(v[k]) for k in ("seed", "dst", "binder"))
    assert derive_seed(seed, dst, binder).hex() == v["derived_seed"]
    expanded = expand_into_vec(FIELD128, seed, dst, binder, v["length"])
    assert FIELD128.encode_vec(expanded).hex() == v["expanded_vec_field128"]


def test_the_stream_is_the_same_however_it_is_read() -> None:
    seed, dst = bytes(range(16)), b"dst"
    whole = XofTurboShake128(seed, dst, b"b").next(100)
    pieces = XofTurboShake128(seed, dst, b"b")
    assert pieces.next(1) + pieces.next(33) + pieces.next(66) == whole
    # the length of dst is part of the message: moving a byte from dst to the binder changes it
    assert XofTurboShake128(seed, b"ds", b"tb").next(100) != whole


def test_rejection_sampling_reads_the_stream_element_by_element_as_the_draft_does() -> None:
    # A tiny field rejects about half the values, which Field64/Field128 almost never do.
    tiny = PrimeField("Tiny", 257, 2, 256, 3)
    seed, dst = bytes(16), b"reject"
    got = XofTurboShake128(seed, dst, b"").next_vec(tiny, 50)
    reference = XofTurboShake128(seed, dst, b"")
    want: list[int] = []
    while len(want) < 50:  # the draft's next_vec, one element at a time
        x = int.from_bytes(reference.next(2), "little") & 511
        if x < 257:
            want.append(x)
    assert got == want


def test_a_seed_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        XofTurboShake128(bytes(32), b"", b"")
