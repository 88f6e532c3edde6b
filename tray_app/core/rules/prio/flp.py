"""The FLP of VDAF-08 (draft-irtf-cfrg-vdaf-08, the generic FLP of its ``flp_generic``, after
[BBCGGI19] Theorem 4.3), its gadgets, and the validity circuits of Prio3Count, Prio3Sum and
Prio3Histogram: the client's half, proving.

A validity circuit is evaluated on the encoded measurement; each gadget call goes through a
hook (:data:`GadgetCall`), so the prover can record the inputs of every call on its wires
and a verifier (the aggregators' side, which the client never runs) can answer each call
from the proof instead. The prover, per gadget:

1. wire ``j`` holds a random seed (from ``prove_rand``) at position 0, then the ``j``-th
   input of call ``k`` at position ``k``, zeros after, ``P = next_power_of_2(1 + calls)`` in all;
2. each wire polynomial is interpolated on the ``P``-th roots of unity ``alpha^k``,
   ``alpha = generator^(GEN_ORDER / P)``, in the monomial basis;
3. the gadget polynomial is the gadget applied to the wire polynomials, ``DEGREE·(P−1)+1``
   coefficients;
4. the proof is, gadget after gadget, the wire seeds then the gadget polynomial.

This is VDAF-08's prover. VDAF-18 uses the Lagrange basis and other circuits: a second
profile gets its own module, not a flag in this one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ...errors import ReportError
from .prime_field import FIELD64, FIELD128, PrimeField, interpolate_on_roots, next_power_of_2, poly_mul

__all__ = [
    "Circuit",
    "CountCircuit",
    "Gadget",
    "GadgetCall",
    "HistogramCircuit",
    "Mul",
    "ParallelSumMul",
    "Range2",
    "SumCircuit",
    "prove",
]

# A gadget call as a circuit makes it: (index of the gadget in ``Circuit.gadgets``, inputs) → output.
GadgetCall = Callable[[int, list[int]], int]


class Gadget(ABC):
    """A gadget: a small non-linear sub-circuit of fixed arity and degree."""

    arity: int
    degree: int

    @abstractmethod
    def eval(self, field: PrimeField, inp: Sequence[int]) -> int:
        """The gadget on field elements."""

    @abstractmethod
    def eval_poly(self, field: PrimeField, polys: Sequence[list[int]]) -> list[int]:
        """The gadget on polynomials (all of one length ``n``): ``degree·(n−1)+1`` coefficients."""


class Mul(Gadget):
    """``x·y`` (the draft's ``Mul``)."""

    arity = 2
    degree = 2

    def eval(self, field: PrimeField, inp: Sequence[int]) -> int:
        return inp[0] * inp[1] % field.modulus

    def eval_poly(self, field: PrimeField, polys: Sequence[list[int]]) -> list[int]:
        return poly_mul(field, polys[0], polys[1])


class Range2(Gadget):
    """``x² − x`` (VDAF-08 ``Range2``, used by Prio3Sum): zero exactly on 0 and 1."""

    arity = 1
    degree = 2

    def eval(self, field: PrimeField, inp: Sequence[int]) -> int:
        x = inp[0]
        return (x * x - x) % field.modulus

    def eval_poly(self, field: PrimeField, polys: Sequence[list[int]]) -> list[int]:
        x = polys[0]
        out = poly_mul(field, x, x)
        p = field.modulus
        for i, c in enumerate(x):
            out[i] = (out[i] - c) % p
        return out


class ParallelSumMul(Gadget):
    """``ParallelSum(Mul, count)`` (the draft's ``ParallelSum``): the sum of ``count`` products
    ``inp[2i]·inp[2i+1]``, so one gadget call checks ``count`` elements at once."""

    degree = 2

    def __init__(self, count: int) -> None:
        if count < 1:
            raise ValueError("ParallelSum needs a count of at least 1")
        self.count = count
        self.arity = 2 * count

    def eval(self, field: PrimeField, inp: Sequence[int]) -> int:
        return sum(inp[2 * i] * inp[2 * i + 1] for i in range(self.count)) % field.modulus

    def eval_poly(self, field: PrimeField, polys: Sequence[list[int]]) -> list[int]:
        n = len(polys[0])
        out = [0] * (2 * n - 1)
        for i in range(self.count):
            for k, c in enumerate(poly_mul(field, polys[2 * i], polys[2 * i + 1])):
                out[k] += c
        p = field.modulus
        return [c % p for c in out]


class Circuit(ABC):
    """A validity circuit (the draft's ``Valid``): zero on valid encoded measurements only."""

    field: PrimeField
    meas_len: int  # encoded measurement length, in field elements
    joint_rand_len: int
    output_len: int  # aggregatable output length
    gadgets: tuple[Gadget, ...]
    gadget_calls: tuple[int, ...]  # calls of each gadget in one evaluation

    @abstractmethod
    def encode(self, measurement: int) -> list[int]:
        """The measurement as field elements (ReportError when it is out of range)."""

    @abstractmethod
    def truncate(self, meas: Sequence[int]) -> list[int]:
        """An encoded measurement (or a share of it) to its aggregatable output."""

    @abstractmethod
    def decode(self, output: Sequence[int], num_measurements: int) -> int | list[int]:
        """An aggregate of outputs to the aggregate result."""

    @abstractmethod
    def eval(self, meas: Sequence[int], joint_rand: Sequence[int], num_shares: int, call: GadgetCall) -> int:
        """The circuit's output, calling gadget ``i`` through ``call(i, inputs)``."""

    @property
    def prove_rand_len(self) -> int:
        return sum(g.arity for g in self.gadgets)

    @property
    def query_rand_len(self) -> int:
        return len(self.gadgets)

    @property
    def proof_len(self) -> int:
        return sum(
            g.arity + g.degree * (next_power_of_2(1 + calls) - 1) + 1
            for g, calls in zip(self.gadgets, self.gadget_calls, strict=True)
        )

    @property
    def verifier_len(self) -> int:
        return 1 + sum(g.arity + 1 for g in self.gadgets)


class CountCircuit(Circuit):
    """Prio3Count: one element, valid when 0 or 1 (``m·m − m = 0``), over Field64."""

    field = FIELD64
    meas_len = 1
    joint_rand_len = 0
    output_len = 1
    gadgets = (Mul(),)
    gadget_calls = (1,)

    def encode(self, measurement: int) -> list[int]:
        if measurement not in (0, 1):
            raise ReportError(f"A count measurement is true or false (0 or 1), not {measurement!r}.")
        return [int(measurement)]

    def truncate(self, meas: Sequence[int]) -> list[int]:
        return list(meas)

    def decode(self, output: Sequence[int], num_measurements: int) -> int:
        return output[0]

    def eval(self, meas: Sequence[int], joint_rand: Sequence[int], num_shares: int, call: GadgetCall) -> int:
        return (call(0, [meas[0], meas[0]]) - meas[0]) % self.field.modulus


class SumCircuit(Circuit):
    """Prio3Sum with ``bits`` (VDAF-08): the measurement's ``bits`` bits, least
    significant first, each checked by ``Range2`` and combined with powers of one joint
    random element, over Field128."""

    field = FIELD128
    joint_rand_len = 1
    output_len = 1
    gadgets = (Range2(),)

    def __init__(self, bits: int) -> None:
        if bits < 1 or 2**bits >= self.field.modulus:
            raise ValueError(f"Prio3Sum needs 1 ≤ bits < {self.field.modulus.bit_length() - 1}, not {bits}")
        self.bits = bits
        self.meas_len = bits
        self.gadget_calls = (bits,)

    def encode(self, measurement: int) -> list[int]:
        if not 0 <= measurement < 2**self.bits:
            raise ReportError(
                f"A sum measurement with {self.bits} bits is in 0..{2**self.bits - 1}, not {measurement}."
            )
        return [(measurement >> i) & 1 for i in range(self.bits)]

    def truncate(self, meas: Sequence[int]) -> list[int]:
        return [sum(b << i for i, b in enumerate(meas)) % self.field.modulus]

    def decode(self, output: Sequence[int], num_measurements: int) -> int:
        return output[0]

    def eval(self, meas: Sequence[int], joint_rand: Sequence[int], num_shares: int, call: GadgetCall) -> int:
        p = self.field.modulus
        out = 0
        r = joint_rand[0]
        for b in meas:
            out = (out + r * call(0, [b])) % p
            r = r * joint_rand[0] % p
        return out


class HistogramCircuit(Circuit):
    """Prio3Histogram with ``length`` buckets and ``chunk_length``: a one-hot vector,
    each element checked to be 0 or 1 by ``ParallelSum(Mul, chunk_length)`` (weighted by
    powers of the first joint random element) and the elements summing to 1, over Field128."""

    field = FIELD128
    joint_rand_len = 2

    def __init__(self, length: int, chunk_length: int) -> None:
        if length < 1:
            raise ValueError(f"a histogram has at least one bucket, not {length}")
        if chunk_length < 1:
            raise ValueError(f"the chunk length is at least 1, not {chunk_length}")
        self.length = length
        self.chunk_length = chunk_length
        self.meas_len = length
        self.output_len = length
        self.gadgets = (ParallelSumMul(chunk_length),)
        self.gadget_calls = ((length + chunk_length - 1) // chunk_length,)

    def encode(self, measurement: int) -> list[int]:
        if not 0 <= measurement < self.length:
            raise ReportError(f"A histogram measurement is a bucket index in 0..{self.length - 1}, not {measurement}.")
        encoded = [0] * self.length
        encoded[measurement] = 1
        return encoded

    def truncate(self, meas: Sequence[int]) -> list[int]:
        return list(meas)

    def decode(self, output: Sequence[int], num_measurements: int) -> list[int]:
        return list(output)

    def eval(self, meas: Sequence[int], joint_rand: Sequence[int], num_shares: int, call: GadgetCall) -> int:
        p = self.field.modulus
        r = joint_rand[0]
        r_power = r
        shares_inv = self.field.inv(num_shares)
        range_check = 0
        for i in range(self.gadget_calls[0]):
            inputs = [0] * (2 * self.chunk_length)
            for j in range(self.chunk_length):
                index = i * self.chunk_length + j
                elem = meas[index] if index < len(meas) else 0
                inputs[2 * j] = r_power * elem % p
                inputs[2 * j + 1] = (elem - shares_inv) % p
                r_power = r_power * r % p
            range_check = (range_check + call(0, inputs)) % p
        sum_check = (sum(meas) - shares_inv) % p
        return (joint_rand[1] * range_check + joint_rand[1] * joint_rand[1] * sum_check) % p


@dataclass(frozen=True)
class _Wires:
    """The input wires of one gadget during proving: ``values[j][k]`` is input ``j`` of call ``k``."""

    values: list[list[int]]


def prove(circuit: Circuit, meas: Sequence[int], prove_rand: Sequence[int], joint_rand: Sequence[int]) -> list[int]:
    """The FLP proof that ``meas`` is valid (the draft's ``prove``), ``circuit.proof_len`` elements."""
    if len(meas) != circuit.meas_len:
        raise ValueError(f"the encoded measurement has {len(meas)} elements, not {circuit.meas_len}")
    if len(prove_rand) != circuit.prove_rand_len or len(joint_rand) != circuit.joint_rand_len:
        raise ValueError("the prover or joint randomness has the wrong length")
    field = circuit.field
    wires: list[_Wires] = []
    offset = 0
    for g, calls in zip(circuit.gadgets, circuit.gadget_calls, strict=True):
        size = next_power_of_2(1 + calls)
        wires.append(_Wires([[prove_rand[offset + j]] + [0] * (size - 1) for j in range(g.arity)]))
        offset += g.arity
    counts = [0] * len(circuit.gadgets)

    def record(index: int, inputs: list[int]) -> int:
        counts[index] += 1
        k = counts[index]
        for j, x in enumerate(inputs):
            wires[index].values[j][k] = x
        return circuit.gadgets[index].eval(field, inputs)

    circuit.eval(meas, joint_rand, 1, record)

    proof: list[int] = []
    for g, w in zip(circuit.gadgets, wires, strict=True):
        size = len(w.values[0])
        wire_polys = [interpolate_on_roots(field, values) for values in w.values]
        gadget_poly = g.eval_poly(field, wire_polys)
        length = g.degree * (size - 1) + 1
        proof += [values[0] for values in w.values]
        proof += (gadget_poly + [0] * length)[:length]
    return proof
