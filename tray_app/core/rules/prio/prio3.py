"""Prio3 sharding as VDAF-08 defines it (draft-irtf-cfrg-vdaf-08, "Prio3"): the client's half.

``Prio3.shard(measurement, nonce, rand)`` splits the encoded measurement into additive
shares, one per aggregator, proves it valid with the FLP (:mod:`.flp`) and splits the proof
the same way. The leader (aggregator 0) gets its shares as field elements; each helper gets
two 16-byte seeds the shares are expanded from (the draft's ``helper_meas_share`` and
``helper_proofs_share``). Prio3Sum and Prio3Histogram also use *joint randomness*: each
aggregator gets a blind, each share's joint-randomness part is
``derive_seed(blind, dst(7), agg_id || nonce || encode(meas_share))``, the parts form the
public share, and the joint randomness is expanded from the seed derived from all the parts
(``joint_rand_part``, ``joint_rand_seed``, ``joint_rands``), so the client cannot pick
it: each aggregator recomputes its own part and the seed must agree.

Every random input is a parameter (``rand``, ``RAND_SIZE`` bytes, and the nonce, which DAP
sets to the report id): the functions are pure, the caller passes ``secrets.token_bytes``, and
the draft's test vectors reproduce byte for byte.

Domain separation (the draft's ``format_dst`` and ``domain_separation_tag``):
``dst(usage) = VERSION (8) || 0 (the VDAF class) || be32(VDAF id) || be16(usage)``; the ids of
VDAF-08 are Count 0, Sum 1, SumVec 2, Histogram 3.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .flp import Circuit, CountCircuit, HistogramCircuit, SumCircuit, prove
from .prime_field import next_power_of_2
from .xof import SEED_SIZE, derive_seed, expand_into_vec

__all__ = [
    "NONCE_SIZE",
    "PRIO3_COUNT_ID",
    "PRIO3_HISTOGRAM_ID",
    "PRIO3_SUM_ID",
    "USAGE_JOINT_RANDOMNESS",
    "USAGE_JOINT_RAND_PART",
    "USAGE_JOINT_RAND_SEED",
    "USAGE_MEAS_SHARE",
    "USAGE_PROOF_SHARE",
    "USAGE_PROVE_RANDOMNESS",
    "USAGE_QUERY_RANDOMNESS",
    "VDAF_VERSION",
    "Prio3",
    "Prio3Shares",
    "clamp_to_bits",
    "optimal_chunk_length",
    "prio3_count",
    "prio3_histogram",
    "prio3_sum",
]

VDAF_VERSION = 8  # the draft's VERSION, the first byte of every domain separation tag
NONCE_SIZE = 16

# VDAF-08, IANA considerations: codepoints of the Prio3 variants (VDAF-18 renumbered them from 1).
PRIO3_COUNT_ID = 0x00000000
PRIO3_SUM_ID = 0x00000001
PRIO3_HISTOGRAM_ID = 0x00000003

USAGE_MEAS_SHARE = 1
USAGE_PROOF_SHARE = 2
USAGE_JOINT_RANDOMNESS = 3
USAGE_PROVE_RANDOMNESS = 4
USAGE_QUERY_RANDOMNESS = 5
USAGE_JOINT_RAND_SEED = 6
USAGE_JOINT_RAND_PART = 7

_VDAF_CLASS = 0  # format_dst's algo_class for a VDAF (1 is an IDPF)


@dataclass(frozen=True)
class Prio3Shares:
    """What ``shard`` makes: the encoded public share and each aggregator's encoded input share
    (leader first). These are the bytes DAP carries (the public share in the clear, each input
    share as the payload of a sealed PlaintextInputShare)."""

    public_share: bytes
    input_shares: tuple[bytes, ...]

    @property
    def leader(self) -> bytes:
        return self.input_shares[0]

    @property
    def helpers(self) -> tuple[bytes, ...]:
        return self.input_shares[1:]


class Prio3:
    """One Prio3 instance of VDAF-08: a validity circuit, its codepoint and the number of
    aggregators (DAP uses 2; the draft's vectors also have 3)."""

    proofs = 1  # VDAF-08's Prio3Count/Sum/Histogram use one proof

    def __init__(self, name: str, algorithm_id: int, circuit: Circuit, shares: int = 2) -> None:
        if not 2 <= shares <= 255:
            raise ValueError(f"Prio3 has 2 to 255 aggregators, not {shares}")
        self.name = name
        self.algorithm_id = algorithm_id
        self.circuit = circuit
        self.shares = shares

    def __repr__(self) -> str:
        return f"<{self.name}, {self.shares} shares>"

    @property
    def uses_joint_rand(self) -> bool:
        return self.circuit.joint_rand_len > 0

    @property
    def rand_size(self) -> int:
        """Bytes of randomness ``shard`` takes: two seeds per helper and one to prove, plus a
        blind per aggregator when the circuit uses joint randomness (the draft's ``RAND_SIZE``)."""
        seeds = 1 + 2 * (self.shares - 1)
        if self.uses_joint_rand:
            seeds += self.shares
        return seeds * SEED_SIZE

    @property
    def verify_key_size(self) -> int:
        return SEED_SIZE

    def dst(self, usage: int) -> bytes:
        """The domain separation tag for ``usage``."""
        return bytes([VDAF_VERSION, _VDAF_CLASS]) + self.algorithm_id.to_bytes(4, "big") + usage.to_bytes(2, "big")

    def shard(self, measurement: int, nonce: bytes, rand: bytes) -> Prio3Shares:
        """The public share and the input shares of ``measurement`` (the draft's ``shard``).

        ``nonce`` is ``NONCE_SIZE`` bytes (DAP: the report id), ``rand`` is ``rand_size``
        random bytes. A measurement out of range raises ReportError (clamp a sum first, with
        :func:`clamp_to_bits`, and say so)."""
        if len(nonce) != NONCE_SIZE:
            raise ValueError(f"the nonce is {NONCE_SIZE} bytes, not {len(nonce)}")
        if len(rand) != self.rand_size:
            raise ValueError(f"{self.name} takes {self.rand_size} bytes of randomness, not {len(rand)}")
        seeds = [rand[i : i + SEED_SIZE] for i in range(0, len(rand), SEED_SIZE)]
        meas = self.circuit.encode(measurement)
        if self.uses_joint_rand:
            return self._shard_with_joint_rand(meas, nonce, seeds)
        return self._shard_without_joint_rand(meas, seeds)

    def _shard_without_joint_rand(self, meas: list[int], seeds: list[bytes]) -> Prio3Shares:
        helpers = self.shares - 1
        meas_seeds = [seeds[2 * j] for j in range(helpers)]
        proof_seeds = [seeds[2 * j + 1] for j in range(helpers)]
        prove_seed = seeds[2 * helpers]
        leader_meas = meas
        for j in range(helpers):
            leader_meas = self._sub(leader_meas, self.helper_meas_share(j + 1, meas_seeds[j]))
        proof = prove(self.circuit, meas, self.prove_rands(prove_seed), [])
        leader_proof = self._helper_proofs_removed(proof, proof_seeds)
        field = self.circuit.field
        leader = field.encode_vec(leader_meas) + field.encode_vec(leader_proof)
        return Prio3Shares(b"", (leader, *(meas_seeds[j] + proof_seeds[j] for j in range(helpers))))

    def _shard_with_joint_rand(self, meas: list[int], nonce: bytes, seeds: list[bytes]) -> Prio3Shares:
        helpers = self.shares - 1
        meas_seeds = [seeds[3 * j] for j in range(helpers)]
        proof_seeds = [seeds[3 * j + 1] for j in range(helpers)]
        blinds = [seeds[3 * j + 2] for j in range(helpers)]
        leader_blind, prove_seed = seeds[3 * helpers], seeds[3 * helpers + 1]
        leader_meas = meas
        parts: list[bytes] = []
        for j in range(helpers):
            helper_meas = self.helper_meas_share(j + 1, meas_seeds[j])
            leader_meas = self._sub(leader_meas, helper_meas)
            parts.append(self.joint_rand_part(j + 1, blinds[j], helper_meas, nonce))
        parts.insert(0, self.joint_rand_part(0, leader_blind, leader_meas, nonce))
        joint_rand = self.joint_rands(self.joint_rand_seed(parts))
        proof = prove(self.circuit, meas, self.prove_rands(prove_seed), joint_rand)
        leader_proof = self._helper_proofs_removed(proof, proof_seeds)
        field = self.circuit.field
        leader = field.encode_vec(leader_meas) + field.encode_vec(leader_proof) + leader_blind
        helper_shares = (meas_seeds[j] + proof_seeds[j] + blinds[j] for j in range(helpers))
        return Prio3Shares(b"".join(parts), (leader, *helper_shares))

    def _helper_proofs_removed(self, proof: list[int], proof_seeds: Sequence[bytes]) -> list[int]:
        for j, seed in enumerate(proof_seeds):
            proof = self._sub(proof, self.helper_proofs_share(j + 1, seed))
        return proof

    def _sub(self, a: Sequence[int], b: Sequence[int]) -> list[int]:
        p = self.circuit.field.modulus
        return [(x - y) % p for x, y in zip(a, b, strict=True)]

    # The draft's auxiliary functions, public so that an aggregator (the tests' own)
    # derives exactly what the client derived.

    def helper_meas_share(self, agg_id: int, seed: bytes) -> list[int]:
        return expand_into_vec(
            self.circuit.field, seed, self.dst(USAGE_MEAS_SHARE), bytes([agg_id]), self.circuit.meas_len
        )

    def helper_proofs_share(self, agg_id: int, seed: bytes) -> list[int]:
        return expand_into_vec(
            self.circuit.field,
            seed,
            self.dst(USAGE_PROOF_SHARE),
            bytes([self.proofs, agg_id]),
            self.circuit.proof_len * self.proofs,
        )

    def prove_rands(self, seed: bytes) -> list[int]:
        return expand_into_vec(
            self.circuit.field,
            seed,
            self.dst(USAGE_PROVE_RANDOMNESS),
            bytes([self.proofs]),
            self.circuit.prove_rand_len * self.proofs,
        )

    def joint_rand_part(self, agg_id: int, blind: bytes, meas_share: Sequence[int], nonce: bytes) -> bytes:
        binder = bytes([agg_id]) + nonce + self.circuit.field.encode_vec(meas_share)
        return derive_seed(blind, self.dst(USAGE_JOINT_RAND_PART), binder)

    def joint_rand_seed(self, parts: Sequence[bytes]) -> bytes:
        return derive_seed(bytes(SEED_SIZE), self.dst(USAGE_JOINT_RAND_SEED), b"".join(parts))

    def joint_rands(self, seed: bytes) -> list[int]:
        return expand_into_vec(
            self.circuit.field,
            seed,
            self.dst(USAGE_JOINT_RANDOMNESS),
            bytes([self.proofs]),
            self.circuit.joint_rand_len * self.proofs,
        )


def prio3_count(shares: int = 2) -> Prio3:
    """Prio3Count: a boolean (0 or 1) per report; the aggregate is how many were true."""
    return Prio3("Prio3Count", PRIO3_COUNT_ID, CountCircuit(), shares)


def prio3_sum(bits: int, shares: int = 2) -> Prio3:
    """Prio3Sum: an integer in ``0..2^bits − 1`` per report; the aggregate is the sum."""
    return Prio3("Prio3Sum", PRIO3_SUM_ID, SumCircuit(bits), shares)


def prio3_histogram(length: int, chunk_length: int | None = None, shares: int = 2) -> Prio3:
    """Prio3Histogram: a bucket index in ``0..length − 1`` per report; the aggregate is the
    count per bucket. ``chunk_length`` defaults to :func:`optimal_chunk_length`."""
    chunk = optimal_chunk_length(length) if chunk_length is None else chunk_length
    return Prio3("Prio3Histogram", PRIO3_HISTOGRAM_ID, HistogramCircuit(length, chunk), shares)


def optimal_chunk_length(measurement_length: int) -> int:
    """The chunk length libprio (and so Divvi Up) picks for a histogram of this length
    (``prio::vdaf::prio3::optimal_chunk_length``): of the choices with ``2^k − 1`` gadget
    calls, the one with the shortest proof, ties going to more calls."""
    if measurement_length <= 1:
        return 1
    best_cost, best_chunk = 0, 0
    for log2 in range((measurement_length + 1).bit_length() - 1, 0, -1):
        calls = (1 << log2) - 1
        chunk = -(-measurement_length // calls)
        cost = 2 * chunk + 2 * (next_power_of_2(1 + calls) - 1)
        if best_chunk == 0 or cost < best_cost:
            best_cost, best_chunk = cost, chunk
    return best_chunk


def clamp_to_bits(value: int, bits: int) -> tuple[int, bool]:
    """``value`` clamped to what Prio3Sum with ``bits`` can carry, ``0..2^bits − 1``, and
    whether it had to be (so the review can say so)."""
    clamped = min(max(value, 0), 2**bits - 1)
    return clamped, clamped != value
