"""Field64 and Field128 (draft-irtf-cfrg-vdaf-08 §6.1) and the polynomial helpers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tray_app.core.rules.prio.prime_field import (
    FIELD64,
    FIELD128,
    PrimeField,
    interpolate_on_roots,
    next_power_of_2,
    poly_eval,
    poly_mul,
)

FIELDS = [FIELD64, FIELD128]


def test_the_moduli_and_sizes_are_the_drafts() -> None:
    assert FIELD64.modulus == 18446744069414584321 == 2**64 - 2**32 + 1
    assert FIELD128.modulus == 340282366920938462946865773367900766209
    assert (FIELD64.encoded_size, FIELD128.encoded_size) == (8, 16)
    assert (FIELD64.gen_order, FIELD128.gen_order) == (2**32, 2**66)


@pytest.mark.parametrize("field", FIELDS, ids=lambda f: f.name)
def test_the_generator_has_exactly_the_stated_order(field: PrimeField) -> None:
    p = field.modulus
    assert pow(field.generator, field.gen_order, p) == 1
    assert pow(field.generator, field.gen_order // 2, p) != 1  # so the order is 2^n, not less
    assert field.root_of_unity(4) == pow(field.generator, field.gen_order // 4, p)
    with pytest.raises(ValueError, match="power of 2"):
        field.root_of_unity(3)


@pytest.mark.parametrize("field", FIELDS, ids=lambda f: f.name)
@given(data=st.data())
def test_vectors_round_trip_little_endian(field: PrimeField, data: st.DataObject) -> None:
    vec = data.draw(st.lists(st.integers(0, field.modulus - 1), max_size=20))
    encoded = field.encode_vec(vec)
    assert len(encoded) == field.encoded_size * len(vec)
    assert field.decode_vec(encoded) == vec
    if vec:
        assert encoded[: field.encoded_size] == vec[0].to_bytes(field.encoded_size, "little")


@pytest.mark.parametrize("field", FIELDS, ids=lambda f: f.name)
def test_decoding_refuses_a_partial_element_and_a_value_at_or_over_the_modulus(field: PrimeField) -> None:
    with pytest.raises(ValueError, match="whole number"):
        field.decode_vec(bytes(field.encoded_size + 1))
    with pytest.raises(ValueError, match="modulus"):
        field.decode_vec(field.modulus.to_bytes(field.encoded_size, "little"))


@pytest.mark.parametrize("field", FIELDS, ids=lambda f: f.name)
@given(data=st.data())
def test_interpolation_on_the_roots_of_unity_passes_through_every_point(field: PrimeField, data: st.DataObject) -> None:
    n = data.draw(st.sampled_from([1, 2, 4, 8, 16, 32]))
    values = data.draw(st.lists(st.integers(0, field.modulus - 1), min_size=n, max_size=n))
    poly = interpolate_on_roots(field, values)
    assert len(poly) == n
    alpha = field.root_of_unity(n)
    assert [poly_eval(field, poly, pow(alpha, k, field.modulus)) for k in range(n)] == values


@given(
    a=st.lists(st.integers(0, FIELD64.modulus - 1), min_size=1, max_size=8),
    b=st.lists(st.integers(0, FIELD64.modulus - 1), min_size=1, max_size=8),
    x=st.integers(0, FIELD64.modulus - 1),
)
def test_a_product_evaluates_to_the_product_of_the_evaluations(a: list[int], b: list[int], x: int) -> None:
    p = FIELD64.modulus
    product = poly_mul(FIELD64, a, b)
    assert len(product) == len(a) + len(b) - 1
    assert poly_eval(FIELD64, product, x) == poly_eval(FIELD64, a, x) * poly_eval(FIELD64, b, x) % p


def test_next_power_of_2() -> None:
    assert [next_power_of_2(n) for n in (1, 2, 3, 4, 5, 9, 16, 17)] == [1, 2, 4, 4, 8, 16, 16, 32]
