"""The two prime fields of VDAF-08 (``Field64``, ``Field128``) and the polynomial arithmetic
the FLP needs.

draft-irtf-cfrg-vdaf-08, "Finite Fields" and its table of parameters: each field has a
prime modulus ``p`` and a generator of a subgroup of order ``2^n`` (so polynomials can be
interpolated on the ``2^k``-th roots of unity), and its elements are encoded as
``ENCODED_SIZE`` bytes, little-endian (the draft's ``encode_vec``).

An element is a plain ``int`` in ``[0, p)``: the prover does a few thousand products per
report, and Python's integers are faster than any wrapper object around them. A
polynomial is a ``list[int]`` of coefficients, lowest degree first (the monomial basis
VDAF-08 uses; VDAF-18 moved to the Lagrange basis, which is a different prover).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "FIELD64",
    "FIELD128",
    "PrimeField",
    "interpolate_on_roots",
    "next_power_of_2",
    "poly_eval",
    "poly_mul",
]


@dataclass(frozen=True, slots=True)
class PrimeField:
    """A prime field with a power-of-two subgroup: its modulus, encoding size and generator."""

    name: str
    modulus: int
    encoded_size: int  # bytes per element on the wire
    gen_order: int  # order of ``generator``: a power of 2
    generator: int  # generates the subgroup of order ``gen_order``

    def encode_vec(self, vec: Sequence[int]) -> bytes:
        """Elements as the draft encodes them: each ``encoded_size`` bytes, little-endian."""
        size = self.encoded_size
        return b"".join(x.to_bytes(size, "little") for x in vec)

    def decode_vec(self, data: bytes) -> list[int]:
        """The inverse of :meth:`encode_vec`. ValueError when the length is not a multiple of
        the element size or an element is not below the modulus."""
        size = self.encoded_size
        if len(data) % size:
            raise ValueError(f"{len(data)} bytes are not a whole number of {self.name} elements ({size} bytes each)")
        vec = [int.from_bytes(data[i : i + size], "little") for i in range(0, len(data), size)]
        if any(x >= self.modulus for x in vec):
            raise ValueError(f"an encoded {self.name} element is not below the modulus")
        return vec

    def inv(self, x: int) -> int:
        """The multiplicative inverse of ``x`` (ValueError for 0)."""
        return pow(x, -1, self.modulus)

    def root_of_unity(self, n: int) -> int:
        """A primitive ``n``-th root of unity, ``generator^(gen_order / n)``: the ``alpha`` of the
        draft's ``prove`` and ``query``. ``n`` must be a power of 2 dividing ``gen_order``."""
        if n < 1 or n & (n - 1) or self.gen_order % n:
            raise ValueError(f"{n} is not a power of 2 dividing the generator's order")
        return pow(self.generator, self.gen_order // n, self.modulus)


_P64 = 2**32 * 4294967295 + 1
_P128 = 2**66 * 4611686018427387897 + 1

# draft-irtf-cfrg-vdaf-08, the table of field parameters (Field64, Field128).
FIELD64 = PrimeField("Field64", _P64, 8, 2**32, pow(7, 4294967295, _P64))
FIELD128 = PrimeField("Field128", _P128, 16, 2**66, pow(7, 4611686018427387897, _P128))


def next_power_of_2(n: int) -> int:
    """The smallest power of 2 that is at least ``n`` (``n`` ≥ 1)."""
    if n < 1:
        raise ValueError("n must be positive")
    return 1 << (n - 1).bit_length()


def poly_eval(field: PrimeField, poly: Sequence[int], x: int) -> int:
    """``poly(x)`` (Horner)."""
    p = field.modulus
    out = 0
    for coeff in reversed(poly):
        out = (out * x + coeff) % p
    return out


def poly_mul(field: PrimeField, a: Sequence[int], b: Sequence[int]) -> list[int]:
    """The product of two polynomials, of length ``len(a) + len(b) - 1`` (not stripped)."""
    if not a or not b:
        return []
    p = field.modulus
    out = [0] * (len(a) + len(b) - 1)
    for i, x in enumerate(a):
        if x:
            for j, y in enumerate(b):
                out[i + j] += x * y
    return [c % p for c in out]


def interpolate_on_roots(field: PrimeField, values: Sequence[int]) -> list[int]:
    """The polynomial of degree < n with ``poly(alpha^k) = values[k]``, where n = len(values)
    is a power of 2 and ``alpha = field.root_of_unity(n)``: the draft's ``poly_interp`` over
    the points ``alpha^0, …, alpha^(n-1)``, computed as an inverse NTT."""
    n = len(values)
    omega_inv = field.inv(field.root_of_unity(n))
    coeffs = _ntt(list(values), omega_inv, field.modulus)
    n_inv = field.inv(n)
    p = field.modulus
    return [c * n_inv % p for c in coeffs]


def _ntt(values: list[int], omega: int, p: int) -> list[int]:
    """``[Σ_k values[k]·omega^(i·k) for i < n]``, radix 2, recursive (n ≤ a few hundred here)."""
    n = len(values)
    if n == 1:
        return values
    omega_sq = omega * omega % p
    even = _ntt(values[0::2], omega_sq, p)
    odd = _ntt(values[1::2], omega_sq, p)
    out = [0] * n
    w = 1
    half = n // 2
    for i in range(half):
        t = w * odd[i] % p
        out[i] = (even[i] + t) % p
        out[i + half] = (even[i] - t) % p
        w = w * omega % p
    return out
