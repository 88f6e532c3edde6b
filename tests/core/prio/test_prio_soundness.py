"""The proof is sound: what a cheating client makes is refused by the (tests') aggregators,
and what an honest one makes is accepted and adds up."""

from __future__ import annotations

import secrets

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.core.prio import aggregator
from tray_app.core.errors import ReportError
from tray_app.core.rules.prio.flp import CountCircuit, HistogramCircuit, SumCircuit
from tray_app.core.rules.prio.prio3 import (
    PRIO3_COUNT_ID,
    PRIO3_HISTOGRAM_ID,
    PRIO3_SUM_ID,
    Prio3,
    clamp_to_bits,
    optimal_chunk_length,
    prio3_count,
    prio3_histogram,
    prio3_sum,
)

VERIFY_KEY = bytes(range(16))


def _run(vdaf: Prio3, shares_of: Prio3, measurement: int) -> list[list[int]]:
    """Shard with ``shares_of`` (maybe a cheat), prepare with the honest ``vdaf``."""
    nonce = secrets.token_bytes(16)
    shares = shares_of.shard(measurement, nonce, secrets.token_bytes(shares_of.rand_size))
    return aggregator.prepare(vdaf, VERIFY_KEY, nonce, shares.public_share, shares.input_shares)


class _RawCount(CountCircuit):
    def encode(self, measurement: int) -> list[int]:
        return [measurement % self.field.modulus]


class _RawSum(SumCircuit):
    def encode(self, measurement: int) -> list[int]:
        return [2 if i == 0 else 0 for i in range(self.bits)] if measurement < 0 else super().encode(measurement)


class _RawHistogram(HistogramCircuit):
    def encode(self, measurement: int) -> list[int]:
        return [1 if i in (0, measurement) else 0 for i in range(self.length)]  # two-hot when measurement != 0


@pytest.mark.parametrize(
    ("honest", "cheat", "measurement"),
    [
        (prio3_count(), Prio3("cheat", PRIO3_COUNT_ID, _RawCount()), 2),
        (prio3_sum(8), Prio3("cheat", PRIO3_SUM_ID, _RawSum(8)), -1),
        (prio3_histogram(10), Prio3("cheat", PRIO3_HISTOGRAM_ID, _RawHistogram(10, optimal_chunk_length(10))), 3),
    ],
    ids=["count=2", "sum-bit=2", "histogram-two-hot"],
)
def test_an_invalid_measurement_is_refused_by_the_verifier(honest: Prio3, cheat: Prio3, measurement: int) -> None:
    with pytest.raises(aggregator.VerifyError, match="does not verify"):
        _run(honest, cheat, measurement)
    # and the cheat's circuit shards a valid one that verifies (the cheat is only in encode)
    _run(honest, cheat, 0 if measurement != -1 else 5)


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]


@pytest.mark.parametrize("vdaf", [prio3_sum(8), prio3_histogram(5, 2)], ids=repr)
def test_a_changed_public_share_fails_the_joint_randomness_check(vdaf: Prio3) -> None:
    nonce = secrets.token_bytes(16)
    shares = vdaf.shard(1, nonce, secrets.token_bytes(vdaf.rand_size))
    with pytest.raises(aggregator.VerifyError):
        aggregator.prepare(vdaf, VERIFY_KEY, nonce, _flip(shares.public_share, 3), shares.input_shares)
    # the helper's seed or the leader's proof share changed: the proof fails
    for leader, helper in (
        (shares.leader, _flip(shares.helpers[0], 20)),
        (_flip(shares.leader, 100), shares.helpers[0]),
    ):
        with pytest.raises(aggregator.VerifyError):
            aggregator.prepare(vdaf, VERIFY_KEY, nonce, shares.public_share, [leader, helper])


def test_the_nonce_binds_the_shares() -> None:
    vdaf = prio3_histogram(4, 2)
    shares = vdaf.shard(2, bytes(16), secrets.token_bytes(vdaf.rand_size))
    with pytest.raises(aggregator.VerifyError):
        aggregator.prepare(vdaf, VERIFY_KEY, bytes([1]) + bytes(15), shares.public_share, shares.input_shares)


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_honest_reports_add_up_to_the_plaintext(data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(["count", "sum", "histogram"]))
    vdaf = {"count": prio3_count(), "sum": prio3_sum(8), "histogram": prio3_histogram(7)}[kind]
    top = {"count": 1, "sum": 255, "histogram": 6}[kind]
    measurements = data.draw(st.lists(st.integers(0, top), min_size=1, max_size=4))
    outs: list[list[list[int]]] = [[], []]
    for m in measurements:
        for j, out in enumerate(_run(vdaf, vdaf, m)):
            outs[j].append(out)
    result = aggregator.unshard(vdaf, [aggregator.aggregate(vdaf, o) for o in outs], len(measurements))
    if kind == "histogram":
        assert result == [measurements.count(i) for i in range(7)]
    else:
        assert result == sum(measurements)


@pytest.mark.parametrize(
    ("vdaf", "measurement"),
    [(prio3_count(), 2), (prio3_count(), -1), (prio3_sum(8), 256), (prio3_sum(8), -1), (prio3_histogram(3), 3)],
    ids=["count=2", "count=-1", "sum=256", "sum=-1", "histogram=3"],
)
def test_sharding_refuses_a_measurement_out_of_range(vdaf: Prio3, measurement: int) -> None:
    with pytest.raises(ReportError):
        vdaf.shard(measurement, bytes(16), bytes(vdaf.rand_size))


def test_sum_values_are_clamped_to_the_bits_and_say_so() -> None:
    assert clamp_to_bits(300, 8) == (255, True)
    assert clamp_to_bits(-4, 8) == (0, True)
    assert clamp_to_bits(255, 8) == (255, False)
    assert clamp_to_bits(0, 1) == (0, False)


def test_chunk_lengths_are_those_libprio_picks() -> None:
    # libprio-rs's own test_optimal_chunk_length, plus the 10 and 4 of the vectors' sizes
    got = [optimal_chunk_length(n) for n in (0, 1, 2, 3, 18, 19, 40, 10_000, 100_000, 4, 10)]
    assert got == [1, 1, 2, 1, 6, 3, 6, 79, 393, 2, 4]


def test_randomness_and_nonce_of_the_wrong_size_are_refused() -> None:
    vdaf = prio3_count()
    with pytest.raises(ValueError, match="randomness"):
        vdaf.shard(1, bytes(16), bytes(vdaf.rand_size - 1))
    with pytest.raises(ValueError, match="nonce"):
        vdaf.shard(1, bytes(15), bytes(vdaf.rand_size))


def test_a_count_takes_a_boolean() -> None:
    vdaf = prio3_count()
    rand = secrets.token_bytes(vdaf.rand_size)
    assert vdaf.shard(True, bytes(16), rand) == vdaf.shard(1, bytes(16), rand)
    assert vdaf.shard(False, bytes(16), rand) == vdaf.shard(0, bytes(16), rand)
