"""XofTurboShake128 as VDAF-08 defines it (draft-irtf-cfrg-vdaf-08, "XofTurboShake128").

The XOF is TurboSHAKE128 with domain byte ``D = 1`` over the message
``len(dst) (1 byte) || dst || seed || binder``; its output is read as one stream, and
:meth:`XofTurboShake128.next_vec` turns it into field elements by rejection sampling
(the draft's ``next_vec``: read ``ENCODED_SIZE`` bytes little-endian, mask to the next power of 2
above the modulus, keep the value if it is below the modulus). VDAF-08 seeds are 16 bytes.

VDAF-18 changed the message (a 2-byte ``dst`` length and a length-prefixed 32-byte seed):
that is a different XOF for a different profile, not a flag here.

TurboSHAKE128 comes from pycryptodome (``Crypto.Hash.TurboSHAKE128``, since 3.20), imported
on first use so that a tray which sends no DAP report never loads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .prime_field import PrimeField

if TYPE_CHECKING:
    from Crypto.Hash.TurboSHAKE128 import TurboSHAKE

__all__ = ["SEED_SIZE", "XofTurboShake128", "derive_seed", "expand_into_vec"]

SEED_SIZE = 16  # VDAF-08: XofTurboShake128.SEED_SIZE


class XofTurboShake128:
    """One XOF stream: ``TurboSHAKE128(len(dst) || dst || seed || binder, D=1)``."""

    def __init__(self, seed: bytes, dst: bytes, binder: bytes) -> None:
        if len(seed) != SEED_SIZE:
            raise ValueError(f"an XofTurboShake128 seed is {SEED_SIZE} bytes, not {len(seed)}")
        if len(dst) > 255:
            raise ValueError("the domain separation tag is longer than 255 bytes")
        from Crypto.Hash import TurboSHAKE128  # lazy: see the module's docstring

        self._stream: TurboSHAKE = TurboSHAKE128.new(domain=1, data=bytes([len(dst)]) + dst + seed + binder)

    def next(self, length: int) -> bytes:
        """The next ``length`` bytes of the stream."""
        return self._stream.read(length)

    def next_vec(self, field: PrimeField, length: int) -> list[int]:
        """The next ``length`` field elements, by rejection sampling.

        Reads the bytes of all the elements at once (the stream is the same however it is
        cut) and more only when a value is rejected, which for these fields happens with
        probability below 2^-31 per element.
        """
        size = field.encoded_size
        mask = (1 << field.modulus.bit_length()) - 1  # next_power_of_2(p) - 1
        p = field.modulus
        out: list[int] = []
        while len(out) < length:
            want = length - len(out)
            data = self._stream.read(want * size)
            for i in range(0, want * size, size):
                x = int.from_bytes(data[i : i + size], "little") & mask
                if x < p:
                    out.append(x)
        return out


def derive_seed(seed: bytes, dst: bytes, binder: bytes) -> bytes:
    """A new seed from this one (``Xof.derive_seed``: the first ``SEED_SIZE`` bytes)."""
    return XofTurboShake128(seed, dst, binder).next(SEED_SIZE)


def expand_into_vec(field: PrimeField, seed: bytes, dst: bytes, binder: bytes, length: int) -> list[int]:
    """``length`` field elements expanded from ``seed`` (``Xof.expand_into_vec``)."""
    return XofTurboShake128(seed, dst, binder).next_vec(field, length)
