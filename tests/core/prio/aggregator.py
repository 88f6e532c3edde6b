"""The aggregators' side of DAP-09 / VDAF-08, for tests only (never in the product).

Written from the drafts (draft-irtf-cfrg-vdaf-08: Prio3's ``prep_init``, ``prep_shares_to_prep``,
``prep_next``, ``aggregate``, ``unshard``, the FLP's ``query``/``decide``; draft-ietf-ppm-dap-09,
"Upload Request", for the report), so that the client's
shares are checked a second way: the official vectors' ``prep_shares``, ``prep_messages``,
``out_shares`` and ``agg_shares`` come out of these functions, and a report our client made
decrypts, verifies and adds up to the plaintext measurements. An independent implementation
(divviup-ts) will be the real peer later.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tray_app.core.rules.prio.dap_report import (
    ROLE_HELPER,
    ROLE_LEADER,
    input_share_aad,
    input_share_info,
)
from tray_app.core.rules.prio.flp import Circuit
from tray_app.core.rules.prio.hpke import open_base
from tray_app.core.rules.prio.prime_field import interpolate_on_roots, next_power_of_2, poly_eval
from tray_app.core.rules.prio.prio3 import USAGE_QUERY_RANDOMNESS, Prio3
from tray_app.core.rules.prio.xof import SEED_SIZE, expand_into_vec


class VerifyError(Exception):
    """The aggregators refuse the report (proof, joint randomness or decoding)."""


# ---------------------------------------------------------------------------------------
# FLP: query and decide


def query(
    circuit: Circuit,
    meas: Sequence[int],
    proof: Sequence[int],
    query_rand: Sequence[int],
    joint_rand: Sequence[int],
    num_shares: int,
) -> list[int]:
    """The verifier share of (a share of) a measurement and proof (the draft's ``query``)."""
    field = circuit.field
    p = field.modulus
    if len(proof) != circuit.proof_len or len(query_rand) != circuit.query_rand_len:
        raise VerifyError("proof or query randomness of the wrong length")
    wires: list[list[list[int]]] = []
    gadget_polys: list[list[int]] = []
    alphas: list[int] = []
    rest = list(proof)
    for g, calls in zip(circuit.gadgets, circuit.gadget_calls, strict=True):
        size = next_power_of_2(1 + calls)
        seeds, rest = rest[: g.arity], rest[g.arity :]
        poly_len = g.degree * (size - 1) + 1
        gadget_polys.append(rest[:poly_len])
        rest = rest[poly_len:]
        wires.append([[seed] + [0] * (size - 1) for seed in seeds])
        alphas.append(field.root_of_unity(size))
    counts = [0] * len(circuit.gadgets)

    def answer(index: int, inputs: list[int]) -> int:
        counts[index] += 1
        k = counts[index]
        for j, x in enumerate(inputs):
            wires[index][j][k] = x
        return poly_eval(field, gadget_polys[index], pow(alphas[index], k, p))

    v = circuit.eval(meas, joint_rand, num_shares, answer)
    verifier = [v]
    for index, t in enumerate(query_rand):
        size = len(wires[index][0])
        if pow(t, size, p) == 1:
            raise VerifyError("degenerate query point")
        for wire in wires[index]:
            verifier.append(poly_eval(field, interpolate_on_roots(field, wire), t))
        verifier.append(poly_eval(field, gadget_polys[index], t))
    return verifier


def decide(circuit: Circuit, verifier: Sequence[int]) -> bool:
    """Whether the summed verifier accepts (the draft's ``decide``)."""
    if len(verifier) != circuit.verifier_len:
        raise VerifyError("verifier of the wrong length")
    if verifier[0] != 0:
        return False
    at = 1
    for g in circuit.gadgets:
        x = list(verifier[at : at + g.arity])
        y = verifier[at + g.arity]
        at += g.arity + 1
        if g.eval(circuit.field, x) != y:
            return False
    return True


# ---------------------------------------------------------------------------------------
# Prio3 preparation and aggregation


@dataclass(frozen=True)
class InputShare:
    meas_share: list[int]
    proofs_share: list[int]
    blind: bytes | None


@dataclass(frozen=True)
class PrepState:
    out_share: list[int]
    corrected_joint_rand_seed: bytes | None


@dataclass(frozen=True)
class PrepShare:
    verifiers_share: list[int]
    joint_rand_part: bytes | None

    def encode(self, vdaf: Prio3) -> bytes:
        return vdaf.circuit.field.encode_vec(self.verifiers_share) + (self.joint_rand_part or b"")


def decode_input_share(vdaf: Prio3, agg_id: int, data: bytes) -> InputShare:
    """An encoded input share, a helper's seeds expanded (the draft's encodings)."""
    field = vdaf.circuit.field
    blind_size = SEED_SIZE if vdaf.uses_joint_rand else 0
    if agg_id == 0:
        meas_size = vdaf.circuit.meas_len * field.encoded_size
        proof_size = vdaf.circuit.proof_len * vdaf.proofs * field.encoded_size
        if len(data) != meas_size + proof_size + blind_size:
            raise VerifyError("leader share of the wrong length")
        return InputShare(
            field.decode_vec(data[:meas_size]),
            field.decode_vec(data[meas_size : meas_size + proof_size]),
            data[meas_size + proof_size :] or None,
        )
    if len(data) != 2 * SEED_SIZE + blind_size:
        raise VerifyError("helper share of the wrong length")
    return InputShare(
        vdaf.helper_meas_share(agg_id, data[:SEED_SIZE]),
        vdaf.helper_proofs_share(agg_id, data[SEED_SIZE : 2 * SEED_SIZE]),
        data[2 * SEED_SIZE :] or None,
    )


def query_rands(vdaf: Prio3, verify_key: bytes, nonce: bytes) -> list[int]:
    return expand_into_vec(
        vdaf.circuit.field,
        verify_key,
        vdaf.dst(USAGE_QUERY_RANDOMNESS),
        bytes([vdaf.proofs]) + nonce,
        vdaf.circuit.query_rand_len * vdaf.proofs,
    )


def prep_init(
    vdaf: Prio3, verify_key: bytes, agg_id: int, nonce: bytes, public_share: bytes, input_share: bytes
) -> tuple[PrepState, PrepShare]:
    """One aggregator's first step (``prep_init``)."""
    share = decode_input_share(vdaf, agg_id, input_share)
    circuit = vdaf.circuit
    out_share = circuit.truncate(share.meas_share)
    joint_rand: list[int] = []
    corrected: bytes | None = None
    part: bytes | None = None
    if vdaf.uses_joint_rand:
        if len(public_share) != SEED_SIZE * vdaf.shares or share.blind is None:
            raise VerifyError("public share of the wrong length")
        parts = [public_share[i : i + SEED_SIZE] for i in range(0, len(public_share), SEED_SIZE)]
        part = vdaf.joint_rand_part(agg_id, share.blind, share.meas_share, nonce)
        parts[agg_id] = part
        corrected = vdaf.joint_rand_seed(parts)
        joint_rand = vdaf.joint_rands(corrected)
    elif public_share:
        raise VerifyError("a public share where none belongs")
    verifiers = query(
        circuit, share.meas_share, share.proofs_share, query_rands(vdaf, verify_key, nonce), joint_rand, vdaf.shares
    )
    return PrepState(out_share, corrected), PrepShare(verifiers, part)


def prep_shares_to_prep(vdaf: Prio3, prep_shares: Sequence[PrepShare]) -> bytes:
    """The preparation message from all prep shares (``prep_shares_to_prep``): FLP decide, then the joint
    randomness seed the aggregators agree on (empty without joint randomness)."""
    p = vdaf.circuit.field.modulus
    verifier = [sum(column) % p for column in zip(*(s.verifiers_share for s in prep_shares), strict=True)]
    if not decide(vdaf.circuit, verifier):
        raise VerifyError("the proof does not verify")
    if not vdaf.uses_joint_rand:
        return b""
    return vdaf.joint_rand_seed([s.joint_rand_part or b"" for s in prep_shares])


def prep_next(state: PrepState, prep_msg: bytes) -> list[int]:
    """The output share, once the joint randomness seed checks out (``prep_next``)."""
    if (state.corrected_joint_rand_seed or b"") != prep_msg:
        raise VerifyError("the joint randomness check failed")
    return state.out_share


def aggregate(vdaf: Prio3, out_shares: Sequence[Sequence[int]]) -> list[int]:
    p = vdaf.circuit.field.modulus
    agg = [0] * vdaf.circuit.output_len
    for out in out_shares:
        agg = [(a + b) % p for a, b in zip(agg, out, strict=True)]
    return agg


def unshard(vdaf: Prio3, agg_shares: Sequence[Sequence[int]], num_measurements: int) -> int | list[int]:
    return vdaf.circuit.decode(aggregate(vdaf, agg_shares), num_measurements)


def prepare(
    vdaf: Prio3, verify_key: bytes, nonce: bytes, public_share: bytes, input_shares: Sequence[bytes]
) -> list[list[int]]:
    """Every aggregator's output share of one report (raises VerifyError when refused)."""
    states, shares = zip(
        *(prep_init(vdaf, verify_key, j, nonce, public_share, s) for j, s in enumerate(input_shares)), strict=True
    )
    msg = prep_shares_to_prep(vdaf, shares)
    return [prep_next(state, msg) for state in states]


# ---------------------------------------------------------------------------------------
# DAP-09 reports


@dataclass(frozen=True)
class Ciphertext:
    config_id: int
    enc: bytes
    payload: bytes


@dataclass(frozen=True)
class ParsedReport:
    report_id: bytes
    time: int
    public_share: bytes
    leader: Ciphertext
    helper: Ciphertext


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.data):
            raise VerifyError("report truncated")
        out = self.data[self.at : self.at + n]
        self.at += n
        return out

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def vector(self, n: int) -> bytes:
        return self.take(self.uint(n))


def decode_report(data: bytes) -> ParsedReport:
    """A DAP-09 ``Report`` as a leader parses it (decoded independently of the encoder)."""
    c = _Cursor(data)
    report_id, time, public_share = c.take(16), c.uint(8), c.vector(4)
    leader = Ciphertext(c.uint(1), c.vector(2), c.vector(4))
    helper = Ciphertext(c.uint(1), c.vector(2), c.vector(4))
    if c.at != len(data):
        raise VerifyError("bytes after the report")
    return ParsedReport(report_id, time, public_share, leader, helper)


def open_input_share(report: ParsedReport, task_id: bytes, role: int, private_key: bytes) -> bytes:
    """Decrypt one input share with DAP-09's info and AAD and unwrap its PlaintextInputShare."""
    sealed = report.leader if role == ROLE_LEADER else report.helper
    aad = input_share_aad(task_id, report.report_id, report.time, report.public_share)
    plaintext = open_base(sealed.enc, private_key, input_share_info(role), aad, sealed.payload)
    c = _Cursor(plaintext)
    extensions = c.vector(2)
    payload = c.vector(4)
    if extensions or c.at != len(plaintext):
        raise VerifyError("unexpected extensions or trailing bytes in the plaintext input share")
    return payload


def aggregate_reports(
    vdaf: Prio3, verify_key: bytes, task_id: bytes, reports: Sequence[bytes], leader_key: bytes, helper_key: bytes
) -> int | list[int]:
    """What the collector would learn from these uploaded reports: both aggregators decrypt,
    verify and aggregate, and the aggregate shares are unsharded."""
    leader_out: list[list[int]] = []
    helper_out: list[list[int]] = []
    for data in reports:
        report = decode_report(data)
        shares = [
            open_input_share(report, task_id, ROLE_LEADER, leader_key),
            open_input_share(report, task_id, ROLE_HELPER, helper_key),
        ]
        leader, helper = prepare(vdaf, verify_key, report.report_id, report.public_share, shares)
        leader_out.append(leader)
        helper_out.append(helper)
    return unshard(vdaf, [aggregate(vdaf, leader_out), aggregate(vdaf, helper_out)], len(reports))
